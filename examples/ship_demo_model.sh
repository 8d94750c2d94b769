#!/usr/bin/env bash
# Puts a trained demo model into the package (src/transformers_fireredasr/demo/) and measures it: the held-out CER in
# stage 1's plain recordings, in the recordings with silences and pauses and (from stage 4) in those spoken word by
# word, then word-timestamp accuracy with a calibration (write the calibrated `ctc_onset_offset_s` /
# `ctc_end_padding_s` it prints into the demo's config.json).
# Usage: bash examples/ship_demo_model.sh RUN_DIR WORK_DIR   (called by the stage scripts of the demo)
set -euo pipefail
run="$1"
work="$2"
repo="$(cd "$(dirname "$0")/.." && pwd)"
demo="$repo/src/transformers_fireredasr/demo"
for file in model.safetensors config.json generation_config.json processor_config.json tokenizer_config.json dict.txt; do
    cp "$run/$file" "$demo/"
done
python "$repo/examples/evaluate_cer.py" --model "$demo" --data_dir "$work/corpus-plain" --split test
python "$repo/examples/evaluate_cer.py" --model "$demo" --data_dir "$work/corpus" --split test
if [ -f "$work/corpus-words/test/metadata.csv" ]; then  # from stage 4 on
    python "$repo/examples/evaluate_cer.py" --model "$demo" --data_dir "$work/corpus-words" --split test
fi
python "$repo/benchmarks/bench_timestamps.py" --model "$demo" --recordings 60 --calibrate 40
