"""The transcript writers: a TextGrid that Praat's format readers parse back to the same tiers."""

from __future__ import annotations

import pytest

from transformers_fireredasr.formats import to_textgrid

textgrid = pytest.importorskip("praatio.textgrid")

SEGMENTS = [{"text": "今天 天气", "timestamp": (0.5, 2.0)}, {"text": 'say "hi"', "timestamp": (2.6, 3.1)}]
WORDS = [
    {"text": "今天", "timestamp": (0.5, 1.0)},
    {"text": "天气", "timestamp": (1.2, 2.0)},
    {"text": "", "timestamp": (2.0, 2.1)},  # nothing to show: left out, as in subtitles
    {"text": 'say "hi"', "timestamp": (2.6, 3.1)},
]


def test_a_textgrid_reads_back_with_its_tiers_and_gaps(tmp_path):
    path = tmp_path / "a.TextGrid"
    path.write_text(to_textgrid({"segments": SEGMENTS, "words": WORDS}, duration=4.0), encoding="utf-8")
    grid = textgrid.openTextgrid(str(path), includeEmptyIntervals=True)
    assert list(grid.tierNames) == ["segments", "words"] and (grid.minTimestamp, grid.maxTimestamp) == (0, 4.0)
    words = [(entry.start, entry.end, entry.label) for entry in grid.getTier("words").entries]
    assert words == [
        (0, 0.5, ""),
        (0.5, 1.0, "今天"),
        (1.0, 1.2, ""),
        (1.2, 2.0, "天气"),
        (2.0, 2.6, ""),
        (2.6, 3.1, 'say "hi"'),
        (3.1, 4.0, ""),
    ]
    assert [entry.label for entry in grid.getTier("segments").entries if entry.label] == ["今天 天气", 'say "hi"']


def test_times_past_the_recording_or_overlapping_stay_a_valid_tier(tmp_path):
    chunks = [{"text": "a", "timestamp": (0.0, 1.2)}, {"text": "b", "timestamp": (1.0, 2.5)}]  # overlap; past 2.0
    path = tmp_path / "b.TextGrid"
    path.write_text(to_textgrid({"words": chunks}, duration=2.0), encoding="utf-8")
    grid = textgrid.openTextgrid(str(path), includeEmptyIntervals=True)
    assert grid.maxTimestamp == 2.5  # the recording is taken to last as long as its last word
    assert [(e.start, e.end, e.label) for e in grid.getTier("words").entries] == [(0, 1.2, "a"), (1.2, 2.5, "b")]


def test_an_empty_transcript_is_one_empty_interval(tmp_path):
    path = tmp_path / "c.TextGrid"
    path.write_text(to_textgrid({"segments": []}, duration=1.5), encoding="utf-8")
    grid = textgrid.openTextgrid(str(path), includeEmptyIntervals=True)
    assert [(e.start, e.end, e.label) for e in grid.getTier("segments").entries] == [(0, 1.5, "")]


def test_the_command_writes_a_textgrid_with_segment_and_word_tiers(tmp_path, capsys):
    """The demo model times words: its TextGrid has both tiers, over the whole recording, with the transcript."""
    import wave
    from pathlib import Path

    from transformers_fireredasr import cli

    audio = Path(__file__).resolve().parents[1] / "examples" / "audio" / "held_out_1.wav"
    assert cli.main([str(audio), "--output-format", "textgrid", "--output-dir", str(tmp_path), "--no-progress"]) == 0
    target = tmp_path / "held_out_1.TextGrid"
    assert capsys.readouterr().out.strip() == str(target)
    grid = textgrid.openTextgrid(str(target), includeEmptyIntervals=False)
    with wave.open(str(audio)) as recording:
        seconds = recording.getnframes() / recording.getframerate()
    assert list(grid.tierNames) == ["segments", "words"] and abs(grid.maxTimestamp - seconds) < 1e-3
    words = [entry.label for entry in grid.getTier("words").entries]
    assert "".join(words) == "".join(entry.label for entry in grid.getTier("segments").entries) == "时人目飞快网产"
