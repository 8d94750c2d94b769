"""benchmarks/gpu_check.sh in its CPU dry run (`DRY_RUN=1`): every step of both parts runs at the tiny size and
exits 0, so that a session lent a GPU spends its minutes measuring, not debugging; part 1's limits fit one device call."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.audio import requires_espeak

ROOT = Path(__file__).resolve().parents[1]
STEPS = {
    "1": ["env", "aed_b16", "aed_b16_static", "aed_b1", "llm", "memory4bit", "aed_greedy64"],
    "2": ["env", "aed_b1_static", "hotwords"],
}
PART_1_LIMIT_S = 480  # part 1 is one device call of about 8 minutes


@requires_espeak
@pytest.mark.parametrize("part", sorted(STEPS))
def test_dry_run_of_every_step(part, tmp_path):
    env = {**os.environ, "DRY_RUN": "1", "PART": part, "OUT": str(tmp_path), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = (tmp_path / "summary.txt").read_text()
    ran = re.findall(r"^== (\w+) ", summary, flags=re.MULTILINE)
    assert ran == STEPS[part]
    exits = re.findall(r"^   exit (\d+) after", summary, flags=re.MULTILINE)
    assert exits == ["0"] * len(STEPS[part]), summary
    for step in STEPS[part]:
        assert (tmp_path / f"{step}.txt").stat().st_size > 0, step
    if part == "1":
        assert summary.count("all transcripts identical") == 5  # the LLM and four AED settings
        assert (tmp_path / "bench_memory_L.json").is_file()
        limits = re.findall(r"^== \w+ \(\S+, limit (\d+)s\)", summary, flags=re.MULTILINE)
        assert sum(map(int, limits)) <= PART_1_LIMIT_S, limits
    else:
        assert summary.count("all transcripts identical") == 1 and "| phrase + 10 distractors |" in summary
