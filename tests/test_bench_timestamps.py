"""The word-timestamp benchmark runs at a tiny size (accuracy is not asserted here: the fixture's CTC head is random)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.audio import skip_without_espeak
from tests.benchmark_scripts import benchmark_module
from tools.synthetic_corpus import speak_word_by_word

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_timestamps.py"


@pytest.fixture(scope="module")
def bench():
    skip_without_espeak()
    yield from benchmark_module("bench_timestamps")


def test_recordings_are_the_corpus_word_by_word_speech(bench):
    recording = bench.make_recording("老妈妈手工", seed=3)
    audio, _, bounds = speak_word_by_word("老妈妈手工", seed=3)
    assert np.array_equal(recording["audio"], audio) and recording["words"] == bounds


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
