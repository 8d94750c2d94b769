"""benchmarks/bench_batch_pooling.py at a tiny size: both commands run, the texts are compared, the table is whole."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.audio import requires_espeak
from tests.benchmark_scripts import benchmark_module


@pytest.fixture(scope="module")
def bench():
    yield from benchmark_module("bench_batch_pooling")


@requires_espeak
def test_tiny_run_compares_every_path_with_the_cli(bench, tmp_path, capsys):
    out = tmp_path / "pooling.json"
    argv = ["--files", "3", "--rounds", "1", "--no-warm-up", "--ranks", "2", "--rank-threads", "1"]
    assert bench.main([*argv, "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    rows = results["rows"]
    assert [row["workload"] for row in rows] == [
        "in process (loaded model)",
        "in process, 2 ranks x 1 thread (loaded models)",
        "end to end (fresh process)",
        "end to end, torchrun 2 ranks x 1 thread",
    ]
    walls = [results["walls"][workload] for workload in ("in process", "end to end") for _ in range(2)]
    for row, workload_walls, variant in zip(rows, walls, ["pooled", "ranks"] * 2, strict=True):
        assert row["files"] == 3 and row["texts"] == "identical" and row["CLI s"] > 0 and row["pooled s"] > 0
        assert row["ratio"] == pytest.approx(workload_walls["cli"][0] / workload_walls[variant][0], abs=0.006)
    assert not bench.LIVE_CHILDREN  # every local rank was closed
    assert "| workload | files | audio s | CLI s |" in capsys.readouterr().out


def test_live_local_ranks_count_as_the_benchmarks_own_cpu_time(bench):
    """Otherwise the ranks' work would be reported as other processes' and flag every run as on a busy machine."""
    # The spinner spins until stopped, and the test waits until it has had 0.3 s of a core: on a busy machine (the
    # suite's other workers) that takes longer than 0.3 s, while this process itself stays near idle.
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    bench.LIVE_CHILDREN.append(spinner.pid)
    try:
        before = bench.own_cpu_seconds()
        deadline = time.monotonic() + 30
        while bench.own_cpu_seconds() - before <= 0.3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert bench.own_cpu_seconds() - before > 0.3
    finally:
        bench.LIVE_CHILDREN.remove(spinner.pid)
        spinner.kill()
        spinner.wait()


def test_a_rank_that_dies_is_an_error_that_names_it(bench, tmp_path):
    options = bench.parse_args(["--ranks", "1", "--model", str(tmp_path / "no-such-model")])
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("")
    with pytest.raises(RuntimeError, match="local rank 0 exited"):
        bench.LocalRanks(options, manifest)
    assert not bench.LIVE_CHILDREN
