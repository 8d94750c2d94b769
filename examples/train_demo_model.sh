#!/usr/bin/env bash
# Trains the planned bundled demo model (src/transformers_fireredasr/demo/) from nothing. Status: in about one
# CPU hour this schedule has NOT reached a usable model (the loss stays near the unigram entropy; see README,
# "Training from scratch"); it needs many more steps or a GPU. Kept as the reproducible starting point.
# Usage: bash examples/train_demo_model.sh [WORK_DIR]   (needs espeak-ng, sox and the test extra's packages)
set -euo pipefail
work="${1:-demo-work}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
fireredasr-make-corpus "$work/corpus" --num-train 8000 --num-test 300 --seed 0
# One thread: on a 2-core machine shared with other work it is faster than two (no OpenMP barrier stalls).
OMP_NUM_THREADS=1 python "$repo/examples/finetune_aed.py" --data_dir "$work/corpus" --output_dir "$work/run" --seed 0 \
    --max_steps 2700 --per_device_train_batch_size 32 --learning_rate 1e-3 --warmup_steps 800 --ctc_weight 0.5 \
    --eval_strategy steps --eval_steps 900 --save_steps 900
demo="$repo/src/transformers_fireredasr/demo"
mkdir -p "$demo"
for file in model.safetensors config.json generation_config.json processor_config.json tokenizer_config.json dict.txt; do
    cp "$work/run/$file" "$demo/"
done
python "$repo/examples/evaluate_cer.py" --model "$demo" --data_dir "$work/corpus" --split test
