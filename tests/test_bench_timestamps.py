"""The word-timestamp benchmark runs at a tiny size (accuracy is not asserted here: the fixture's CTC head is random)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.audio import skip_without_espeak
from tests.benchmark_scripts import benchmark_module

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_timestamps.py"


@pytest.fixture(scope="module")
def bench():
    skip_without_espeak()
    yield from benchmark_module("bench_timestamps")


def test_recordings_have_the_boundaries_they_claim(bench, tmp_path):
    recording = bench.make_recording("老妈妈手工", seed=3, folder=tmp_path)
    words = recording["words"]
    assert [w for w, _, _ in words] == bench.split_words("老妈妈手工", set(bench.word_list()))
    audio = recording["audio"]
    for _, start, end in words:  # speech inside each word's span, (near) silence right outside it
        inside = audio[int(start * 16000) : int(end * 16000)]
        assert np.sqrt((inside**2).mean()) > 0.01
    assert all(words[i][2] <= words[i + 1][1] for i in range(len(words) - 1))
    assert bench.energy_bounds(np.concatenate([np.zeros(1600), np.ones(800), np.zeros(1600)]).astype(np.float32)) == (
        0.1,
        0.15,
    )


def test_tiny_run_reports_both_rules(bench, converted_aed2_dir, tmp_path, capsys):
    out = tmp_path / "result.json"
    texts = "今天天气很好,请把门关上"
    argv = ["--model", str(converted_aed2_dir), "--recordings", "2", "--texts", texts, "--json", str(out)]
    assert bench.main(argv) == 0  # transcripts unchanged by asking for timestamps
    report = json.loads(out.read_text())
    assert set(report["scores"]) == {"ours (config)", "upstream rule"}
    assert report["transcripts_unchanged"] == "2/2" and report["timestamp_pass_share"] > 0
    printed = capsys.readouterr().out
    assert "| upstream rule |" in printed and "pause recall" in printed
