"""benchmarks/bench_vad.py at a smoke size: FireRedVAD and silero-vad time the same recording and find its speech."""

from __future__ import annotations

import json

import pytest

from tests.benchmark_scripts import benchmark_module


@pytest.fixture(scope="module")
def bench_vad():
    yield from benchmark_module("bench_vad")


def test_both_segmenters_on_the_same_recording(bench_vad, converted_vad_dir, tmp_path):
    out = tmp_path / "vad.json"
    argv = ["--minutes", "0.2", "--repeats", "1", "--vad-model", str(converted_vad_dir), "--json", str(out)]
    assert bench_vad.main(argv) == 0
    results = json.loads(out.read_text())
    rows = {row["segmenter"]: row for row in results["rows"]}
    assert set(rows) == {"FireRedVAD", "silero-vad"}
    for row in rows.values():
        assert row["audio s"] == 12.0 and row["median s"] > 0 and len(results["times"][row["segmenter"]]) == 1
        assert row["RTF"] == pytest.approx(row["median s"] / row["audio s"], rel=0.01, abs=1e-4)
    assert rows["silero-vad"]["segments"] >= 2  # the held-out clips with pauses between them
    assert rows["silero-vad"]["speed-up"] == 1.0


def test_random_weights_at_the_published_sizes(bench_vad):
    detector = bench_vad.random_detector()
    # upstream's DetectModel at the published sizes has as many (about 0.6M)
    assert sum(p.numel() for p in detector.model.parameters()) == 588_417
    assert len(bench_vad.make_recording(0.1, seed=1)) == 0.1 * 60 * 16000
