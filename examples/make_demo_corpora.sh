#!/usr/bin/env bash
# Builds the demo's training corpora under WORK_DIR, each once (fireredasr-make-corpus is deterministic: the same
# folders byte for byte on any machine). The 8,000 training and 300 held-out sentences of seed 0, recorded
#   corpus/        with 0-1 s of silence at both ends and up to three pauses;
#   corpus-plain/  plain, as stage 1 heard them;
#   corpus-words/  word by word (4,000 of the training sentences and the 300 held-out ones).
# Usage: bash examples/make_demo_corpora.sh WORK_DIR [NAME...]   (default: all three; called by the stage scripts)
set -euo pipefail
work="$1"
shift
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(corpus corpus-plain corpus-words)
for name in "${names[@]}"; do
    case "$name" in
        corpus) options=(--num-train 8000) ;;
        corpus-plain) options=(--num-train 8000 --plain) ;;
        corpus-words) options=(--num-train 4000 --word-by-word) ;;
        *) echo "make_demo_corpora.sh: unknown corpus $name (corpus, corpus-plain, corpus-words)" >&2; exit 2 ;;
    esac
    # The test split's metadata is written last: when it is there, the corpus is complete.
    [ -f "$work/$name/test/metadata.csv" ] || fireredasr-make-corpus "$work/$name" --num-test 300 --seed 0 "${options[@]}"
done
