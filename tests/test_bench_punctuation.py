"""benchmarks/bench_punctuation.py at its tiny size: both settings transcribe the same clips (the script checks that
punctuation changed no word), and the overhead it reports is the ratio of its two medians."""

from __future__ import annotations

import json

import pytest

from tests.audio import requires_espeak
from tests.benchmark_scripts import benchmark_module


@pytest.fixture(scope="module")
def bench_punctuation():
    yield from benchmark_module("bench_punctuation")


@requires_espeak
def test_tiny_run_times_both_settings(bench_punctuation, tmp_path):
    out = tmp_path / "punctuation.json"
    assert bench_punctuation.main(["--tiny", "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    without, with_marks = results["transcribe s (median), without"], results["transcribe s (median), with"]
    assert results["clips"] == 4 and without > 0 and with_marks > 0
    assert results["overhead"] == pytest.approx(with_marks / without - 1, abs=1e-3)
    assert 0 <= results["transcripts with a mark"] <= 4 and len(results["examples"]) == 4
