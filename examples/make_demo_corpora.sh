#!/usr/bin/env bash
# Builds the demo's training corpora under WORK_DIR, each once (tools/synthetic_corpus.py is deterministic: the same
# folders byte for byte on any machine). The 8,000 training and 300 held-out sentences of seed 0, recorded
#   corpus/        with 0-1 s of silence at both ends and up to three pauses;
#   corpus-plain/  plain, as stage 1 heard them;
#   corpus-words/  word by word (4,000 of the training sentences and the 300 held-out ones).
# Usage: bash examples/make_demo_corpora.sh WORK_DIR [NAME...]   (default: all three; called by the stage scripts)
set -euo pipefail
work="$1"
repo="$(cd "$(dirname "$0")/.." && pwd)"
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
    # The corpus generator is the checkout's development tooling (tools/, not in the installed package): the root
    # on PYTHONPATH makes `python -m tools.synthetic_corpus` (formerly `fireredasr-make-corpus`) run from any folder.
    [ -f "$work/$name/test/metadata.csv" ] || PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" \
        python -m tools.synthetic_corpus "$work/$name" --num-test 300 --seed 0 "${options[@]}"
done
