"""benchmarks/bench_hotwords.py at its tiny size: it runs on the bundled demo and its numbers are sane."""

from __future__ import annotations

import json

import pytest

from tests.audio import requires_espeak
from tests.benchmark_scripts import benchmark_module


@pytest.fixture(scope="module")
def bench_hotwords():
    yield from benchmark_module("bench_hotwords")


@requires_espeak
def test_tiny_run_reports_every_setting(bench_hotwords, tmp_path):
    out = tmp_path / "hotwords.json"
    assert bench_hotwords.main(["--tiny", "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    rows = {row["setting"]: row for row in results["settings"]}
    assert list(rows) == ["no hotwords", "phrase + 0 distractors", "phrase + 10 distractors"]
    assert results["A utterances"] >= 1  # the demo misses some rare phrases on its own
    assert rows["no hotwords"]["recall A"] == 0.0  # (A) holds exactly the misses
    assert rows["phrase + 0 distractors"]["recall A"] > 0.0
    for row in rows.values():
        assert row["decode s (median)"] > 0 and 0 <= row["U-CER B"] <= 1
