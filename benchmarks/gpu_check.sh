#!/usr/bin/env bash
# The GPU measurements of issue #6 in one script, most important first, for a session that is lent a GPU for a few
# minutes (README.md: "GPU"). Every step has its own time limit and writes its output under $OUT (default ./gpu_out),
# so a step that runs out of time loses only itself. Needs the project installed with its test extra and
# `fireredasr==0.0.2` (--no-deps), as .ci/run installs them.
#
#   OUT=/some/dir bash benchmarks/gpu_check.sh            # all steps (about 8 minutes on an H100)
#   STEPS="aed_b1 llm" bash benchmarks/gpu_check.sh       # some steps
set -u
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
STEPS=${STEPS:-"env aed_b1 aed_b1_static aed_b16 aed_b16_static aed_greedy64 llm memory4bit"}

run() {  # run NAME SECONDS COMMAND...: one step, its output in $OUT/NAME.txt
  local name=$1 limit=$2
  shift 2
  case " $STEPS " in *" $name "*) ;; *) return 0 ;; esac
  echo "== $name ($(date -u +%H:%M:%S), limit ${limit}s): $*" | tee -a "$OUT/summary.txt"
  timeout "$limit" "$@" >"$OUT/$name.txt" 2>&1
  echo "   exit $? after $SECONDS s of the script" | tee -a "$OUT/summary.txt"
  grep -E '^\| |identical|DIFFER|target' "$OUT/$name.txt" | tail -8 | tee -a "$OUT/summary.txt"
}

run env 30 bash -c 'nvidia-smi; python -c "import torch, transformers; print(torch.__version__, transformers.__version__, torch.cuda.get_device_name())"; git log -1 --oneline'
# AED-L, batch 1 beam 3 fp32 (target >= 4x) and batch 16 beam 3 fp16 (target >= 5x), dynamic then static+compiled.
run aed_b1 150 python benchmarks/bench_speed.py --device cuda --size L --dtype float32 --batch 1 --beam 3 --seconds 10 --repeats 3
run aed_b1_static 150 python benchmarks/bench_speed.py --device cuda --size L --dtype float32 --batch 1 --beam 3 --seconds 10 --repeats 3 --cache static
run aed_b16 150 python benchmarks/bench_speed.py --device cuda --size L --dtype float16 --batch 16 --beam 3 --seconds 10 --repeats 3
run aed_b16_static 150 python benchmarks/bench_speed.py --device cuda --size L --dtype float16 --batch 16 --beam 3 --seconds 10 --repeats 3 --cache static
run aed_greedy64 120 python benchmarks/bench_speed.py --device cuda --size L --dtype float16 --batch 64 --beam 1 --seconds 10 --repeats 3
# LLM-L bf16 batch 16 beam 3 (target >= 2x) and batch 1.
run llm 240 python benchmarks/bench_speed_llm.py --device cuda --size L --dtype bfloat16 --batch 1 16 --beam 3 --seconds 10 --repeats 2
# LLM-L 4-bit peak memory on 30 s (target <= 9 GB); the bf16 and 8-bit rows are skipped to save time.
run memory4bit 300 python benchmarks/bench_memory.py --size L --device cuda --modes 4bit --json "$OUT/bench_memory_L.json"
echo "done in $SECONDS s" | tee -a "$OUT/summary.txt"
