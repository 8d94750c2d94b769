#!/usr/bin/env bash
# Puts the trained demo punctuation model into the package (src/transformers_fireredasr/demo_punctuation/) and prints
# its held-out F1 per mark (eval_results.json, written by examples/finetune_punctuation.py), for the model card.
# Usage: bash examples/ship_demo_punctuation.sh MODEL_DIR   (WORK_DIR/model of examples/train_demo_punctuation.sh)
set -euo pipefail
model="$1"
repo="$(cd "$(dirname "$0")/.." && pwd)"
demo="$repo/src/transformers_fireredasr/demo_punctuation"
mkdir -p "$demo"
for file in config.json model.safetensors tokenizer.json tokenizer_config.json vocab.txt eval_results.json; do
    install -m 644 "$model/$file" "$demo/$file"
done
python - "$demo" <<'PY'
import json, sys
from transformers_fireredasr.punctuation import Punctuator

folder = sys.argv[1]
results = json.load(open(f"{folder}/eval_results.json", encoding="utf-8"))
after = results["after"]
for mark in ("，", "。", "？", "！"):
    print(f"{mark}: P {after[f'eval_precision_{mark}']:.1f} R {after[f'eval_recall_{mark}']:.1f} F1 {after[f'eval_f1_{mark}']:.1f}")
print(f"all marks: F1 {after['eval_f1']:.1f} (before training {results['before']['eval_f1']:.1f})")
print(Punctuator.from_pretrained(folder).punctuate(["这本书写得很好我很喜欢你看过吗"]))
PY
