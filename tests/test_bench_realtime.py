"""The live transcription benchmark at a tiny size and eight times real time: one session's latencies, two concurrent
sessions' lag, every completed transcript equal to the HTTP endpoint's (speed is not asserted here;
benchmarks/RESULTS.md has the measurements)."""

from __future__ import annotations

import pytest

from tests.audio import skip_without_espeak
from tests.benchmark_scripts import benchmark_module
from transformers_fireredasr.segmentation import vad_available

pytest.importorskip("fastapi")
pytest.importorskip("websockets")
pytestmark = pytest.mark.skipif(not vad_available(), reason="the server segments with silero-vad (the vad extra)")


@pytest.fixture(scope="module")
def bench():
    skip_without_espeak()
    yield from benchmark_module("bench_realtime")


def test_tiny_run(bench, capsys):
    argv = ["--utterances", "2", "--sessions", "2", "--long-minutes", "0.25", "--window-minutes", "0.1"]
    assert bench.main([*argv, "--clips", "2", "--speed", "8"]) == 0
    output = capsys.readouterr().out
    lines = [line for line in output.splitlines() if line.startswith("|")]
    assert [cell.strip() for cell in lines[0].strip("|").split("|")] == bench.COLUMNS
    row = dict(zip(bench.COLUMNS, [cell.strip() for cell in lines[2].strip("|").split("|")], strict=True))
    assert row["model"] == "demo" and row["sentences"] == "2" and row["sessions"] == "2"
    assert row["= HTTP"] == "2/2" and row["deltas = completed"].endswith("/2")
    for column in ("committed text p50 s", "completed p50 s", "lag first p50 s", "lag last p50 s"):
        assert float(row[column]) > 0
    assert "one session: 2/2 sentences matched" in output and "2 sessions:" in output
