"""benchmarks/bench_batch_pooling.py at a tiny size: both commands run, the texts are compared, the table is whole."""

from __future__ import annotations

import json

import pytest

from tests.audio import requires_espeak
from tests.benchmark_scripts import benchmark_module
from transformers_fireredasr import cli


@pytest.fixture(scope="module")
def bench():
    yield from benchmark_module("bench_batch_pooling")


@requires_espeak
@pytest.mark.skipif(cli.bundled_model_dir() is None, reason="this build ships no demo model")
def test_tiny_run_compares_both_paths(bench, tmp_path, capsys):
    out = tmp_path / "pooling.json"
    assert bench.main(["--files", "3", "--rounds", "1", "--no-warm-up", "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    rows = results["rows"]
    assert [row["workload"] for row in rows] == ["in process (loaded model)", "end to end (fresh process)"]
    for row, walls in zip(rows, results["walls"].values(), strict=True):
        assert row["files"] == 3 and row["texts"] == "identical" and row["CLI s"] > 0 and row["pooled s"] > 0
        assert row["ratio"] == pytest.approx(walls["cli"][0] / walls["pooled"][0], abs=0.006)
    assert "| workload | files | audio s | CLI s |" in capsys.readouterr().out
