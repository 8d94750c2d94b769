"""The serving benchmark runs at a tiny size: both servers answer, the table is well formed, the texts are identical
(speed is not asserted here; benchmarks/RESULTS.md has the measurements)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.audio import skip_without_espeak
from tests.benchmark_scripts import benchmark_module
from transformers_fireredasr.segmentation import vad_available

pytest.importorskip("fastapi")
SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_serving.py"
pytestmark = pytest.mark.skipif(not vad_available(), reason="the server segments with silero-vad (the vad extra)")


@pytest.fixture(scope="module")
def bench():
    skip_without_espeak()
    yield from benchmark_module("bench_serving")


@pytest.mark.parametrize(
    "model", [[], ["--random-size", "tiny", "--max-new-tokens", "5"]], ids=["demo", "random-tiny"]
)
def test_tiny_run(bench, capsys, model):
    argv = ["--clients", "2", "--requests", "4", "--rounds", "1", "--clips", "3", *model]
    assert bench.main(argv) == 0
    output = capsys.readouterr().out
    lines = [line for line in output.splitlines() if line.startswith("|")]
    assert [cell.strip() for cell in lines[0].strip("|").split("|")] == bench.COLUMNS
    row = dict(zip(bench.COLUMNS, [cell.strip() for cell in lines[2].strip("|").split("|")], strict=True))
    assert row["texts"] == "identical" and row["clients"] == "2" and row["requests"] == "4"
    assert float(row["batching off req/s"]) > 0 and float(row["batching on req/s"]) > 0
    assert row["ratio"].endswith("x") and "all texts identical" in output
    assert "both servers --dtype float32" in output


def test_both_servers_take_the_dtype(bench, capsys):
    """`--dtype bfloat16` reaches both servers. bf16 batches need not decode like one clip alone (RESULTS.md), and
    which requests share a batch depends on timing, so the texts may differ here: the run then says so and exits 1."""
    argv = ["--clients", "2", "--requests", "4", "--rounds", "1", "--clips", "3"]
    status = bench.main([*argv, "--random-size", "tiny", "--max-new-tokens", "5", "--dtype", "bfloat16"])
    output = capsys.readouterr().out
    assert "both servers --dtype bfloat16" in output
    lines = [line for line in output.splitlines() if line.startswith("|")]
    row = dict(zip(bench.COLUMNS, [cell.strip() for cell in lines[2].strip("|").split("|")], strict=True))
    assert (status, row["texts"]) in ((0, "identical"), (1, "DIFFER"))
    assert float(row["batching off req/s"]) > 0 and float(row["batching on req/s"]) > 0
