#!/usr/bin/env bash
# Trains the bundled demo model (src/transformers_fireredasr/demo/) from nothing: an 8,000-utterance synthetic
# corpus, a 2.5M-parameter AED trained for 4,000 steps with an auxiliary pinyin CTC loss (about 70 minutes on one
# CPU core), then the held-out CER with the model's default decoding; then stage 2
# (examples/train_demo_silence_ctc.sh: a character CTC head), stage 3 (examples/train_demo_pauses.sh: silence
# and pauses) and stage 4 (examples/train_demo_words.sh: speech spoken word by word). See the demo's README.md.
# Usage: bash examples/train_demo_model.sh [WORK_DIR]   (needs espeak-ng, sox and the `train` extra)
set -euo pipefail
work="${1:-demo-work}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
# Stage 1 learns from sentences without pauses (`--plain`: no silences or pauses).
bash "$repo/examples/make_demo_corpora.sh" "$work" corpus-plain
# One thread: on a 2-core machine shared with other work it is faster than two (no OpenMP barrier stalls).
# The pinyin CTC loss is what makes it learn in an hour: with character targets only, the loss sits at the
# unigram entropy for thousands of steps (see docs/finetuning.md).
OMP_NUM_THREADS=1 python "$repo/examples/finetune_aed.py" --data_dir "$work/corpus-plain" --output_dir "$work/run" --seed 0 \
    --max_steps 4000 --per_device_train_batch_size 32 --learning_rate 1e-3 --warmup_steps 300 \
    --ctc_weight 0.5 --ctc_targets pinyin --adam_beta2 0.98 --max_grad_norm 5 \
    --save_steps 1000 --eval_strategy steps --eval_steps 1000 --logging_steps 50
demo="$repo/src/transformers_fireredasr/demo"
mkdir -p "$demo"
for file in model.safetensors config.json generation_config.json processor_config.json tokenizer_config.json dict.txt; do
    cp "$work/run/$file" "$demo/"
done
python "$repo/examples/evaluate_cer.py" --model "$demo" --data_dir "$work/corpus-plain" --split test
bash "$repo/examples/train_demo_silence_ctc.sh" "$work/run" "$work"
bash "$repo/examples/train_demo_pauses.sh" "$work/run-head" "$work"
bash "$repo/examples/train_demo_words.sh" "$work/run-pauses" "$work"
