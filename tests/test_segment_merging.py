"""Merging neighbouring speech segments into longer pieces (`merge_segments`, `segment_audio(merge_up_to_s=...)`,
the pipeline's `merge_segments_s` and the CLI's `--merge-segments-seconds`).

The tiny test AED memorised single clips and stops after one or two sentences, so a merged piece of several
utterances is not transcribed as well as the utterances one by one: the pipeline tests check that the merged pieces
are what segmentation gives and that their texts are exactly those of the pieces decoded one by one, not that the
merged transcript matches the unmerged one (a real FireRedASR model is needed for that).
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from transformers import pipeline

from tests.audio import join_with_pauses, requires_espeak, skip_without_espeak, write_wav
from transformers_fireredasr import cli
from transformers_fireredasr.engine import join_segment_texts
from transformers_fireredasr.segmentation import fixed_segments, merge_segments, segment_audio, vad_available

RATE = 16000
MERGE_S = 10.0
requires_vad = pytest.mark.skipif(not vad_available(), reason="silero-vad is not installed")


# merge_segments: a pure function of spans


def test_merge_joins_neighbours_under_the_limit():
    assert merge_segments([(0, 10), (15, 25), (30, 40)], 100) == [(0, 40)]
    # Greedy, left to right: a piece closes when the next span would take it past the limit.
    assert merge_segments([(0, 10), (12, 20), (22, 30), (32, 40)], 20) == [(0, 20), (22, 40)]


def test_merge_limit_is_inclusive():
    """The joined length, pauses included, may equal the limit but not pass it."""
    assert merge_segments([(0, 10), (20, 30)], 30) == [(0, 30)]
    assert merge_segments([(0, 10), (20, 30)], 29) == [(0, 10), (20, 30)]


def test_merge_respects_the_longest_pause():
    spans = [(0, 10), (12, 20), (30, 40), (42, 50)]
    assert merge_segments(spans, 100, max_gap_samples=2) == [(0, 20), (30, 50)]
    assert merge_segments(spans, 100, max_gap_samples=1) == spans
    assert merge_segments(spans, 100, max_gap_samples=10) == [(0, 50)]
    assert merge_segments(spans, 100, max_gap_samples=0) == spans


def test_merge_of_nothing_is_nothing():
    assert merge_segments([], 100) == []
    assert merge_segments([(5, 9)], 1) == [(5, 9)]


def test_merge_leaves_long_spans_as_they_are():
    assert merge_segments([(0, 50), (55, 60), (61, 200)], 40) == [(0, 50), (55, 60), (61, 200)]
    assert merge_segments([(0, 100), (101, 105), (106, 110)], 20) == [(0, 100), (101, 110)]


def test_merge_does_not_touch_its_input():
    spans = [(0, 10), (12, 20)]
    assert merge_segments(spans, 100) == [(0, 20)] and spans == [(0, 10), (12, 20)]


@pytest.mark.parametrize("seed", range(20))
def test_merge_groups_consecutive_spans_in_order(seed):
    """On random spans: every merged piece is a run of consecutive inputs (none split, none reordered or lost),
    no piece passes the limits unless it is one input, and no two neighbouring pieces could have been joined."""
    rng = np.random.default_rng(seed)
    bounds = np.cumsum(rng.integers(1, 30, 2 * int(rng.integers(0, 15))))
    spans = [(int(a), int(b)) for a, b in zip(bounds[::2], bounds[1::2], strict=True)]
    limit, gap = int(rng.integers(1, 120)), (None if seed % 2 else int(rng.integers(0, 20)))
    merged = merge_segments(spans, limit, gap)

    groups, index = [], 0
    for start, end in merged:
        first = index
        while spans[index][1] != end:
            index += 1
        assert spans[first][0] == start
        groups.append(spans[first : index + 1])
        index += 1
    assert index == len(spans)
    for group, (start, end) in zip(groups, merged, strict=True):
        assert end - start <= limit or len(group) == 1
        if gap is not None:
            assert all(b[0] - a[1] <= gap for a, b in zip(group, group[1:], strict=False))
    for (start, end), after in zip(merged, groups[1:], strict=False):
        assert after[0][1] - start > limit or (gap is not None and after[0][0] - end > gap)


# segment_audio(merge_up_to_s=...)


@pytest.mark.parametrize("bad", [0, -1.5, float("nan"), "10", True])
def test_segment_audio_rejects_a_bad_merge_length(bad):
    with pytest.raises(ValueError, match="merge_up_to_s must be a positive number of seconds"):
        segment_audio(np.zeros(RATE, np.float32), RATE, 60.0, merge_up_to_s=bad)


def test_merging_fixed_chunks_changes_nothing(speech):
    audio = np.concatenate([speech[0].audio, np.zeros(RATE, np.float32)] * 8)
    assert segment_audio(audio, RATE, 5.0, "fixed", merge_up_to_s=5.0) == fixed_segments(audio, RATE, 5.0)
    assert segment_audio(audio, RATE, 5.0, "fixed", merge_up_to_s=None) == fixed_segments(audio, RATE, 5.0)


@pytest.fixture(scope="module")
def recording(speech, tmp_path_factory):
    """About 47 s: each of the fixture's 16 spoken utterances once, shuffled, separated by 0.6-1.0 s of faint
    noise (each pause ends a VAD segment). Returns the audio and its wav path."""
    skip_without_espeak()
    spoken = [u for u in speech if u.text]
    rng = np.random.default_rng(5)
    order = rng.permutation(len(spoken))
    audio, _ = join_with_pauses([spoken[index].audio for index in order], rng, (0.6, 1.0), RATE)
    assert 30 < len(audio) / RATE < 60
    path = tmp_path_factory.mktemp("merging") / "talk.wav"
    write_wav(path, audio)
    return {"audio": audio, "path": path}


@requires_espeak
@requires_vad
def test_segment_audio_merges_vad_segments(recording):
    audio = recording["audio"]
    spans = segment_audio(audio, RATE, 60.0)
    merged = segment_audio(audio, RATE, 60.0, merge_up_to_s=MERGE_S)
    assert merged == merge_segments(spans, int(MERGE_S * RATE))
    assert 1 < len(merged) <= len(spans) // 2
    assert all(end - start <= MERGE_S * RATE for start, end in merged)
    # Each merged piece starts where a VAD segment starts and ends where one ends.
    assert {start for start, _ in merged} <= {start for start, _ in spans}
    assert {end for _, end in merged} <= {end for _, end in spans}
    # The merge length is capped at the longest segment allowed.
    capped = segment_audio(audio, RATE, 6.0, merge_up_to_s=1000.0)
    assert capped == merge_segments(segment_audio(audio, RATE, 6.0), 6 * RATE)
    assert all(end - start <= 6 * RATE for start, end in capped)


# The pipeline and the command line


@pytest.fixture(scope="module")
def asr(converted_aed_dir):
    return pipeline("automatic-speech-recognition", model=str(converted_aed_dir))


def assert_ordered_pieces(chunks: list[dict], limit_s: float) -> None:
    """Chunks in time order, none empty, none overlapping the next, none longer than `limit_s`."""
    times = [chunk["timestamp"] for chunk in chunks]
    assert all(0 < end - start <= limit_s + 1e-3 for start, end in times)
    assert all(times[i][1] <= times[i + 1][0] for i in range(len(times) - 1)), "chunks overlap or are out of order"


@requires_espeak
@requires_vad
def test_pipeline_merges_segments(asr, converted_aed_dir, recording):
    audio = recording["audio"]
    unmerged = asr(str(recording["path"]), return_timestamps=True, batch_size=8)
    merged = asr(str(recording["path"]), return_timestamps=True, batch_size=8, merge_segments_s=MERGE_S)
    assert len(merged["chunks"]) <= len(unmerged["chunks"]) // 2
    assert_ordered_pieces(merged["chunks"], MERGE_S)

    # The chunks are the merged segments, each decoded as if transcribed on its own, joined in order.
    spans = segment_audio(audio, RATE, 60.0, merge_up_to_s=MERGE_S)
    one_by_one = [asr(audio[start:end])["text"] for start, end in spans]
    expected = [
        {"text": text, "timestamp": (round(start / RATE, 3), round(end / RATE, 3))}
        for (start, end), text in zip(spans, one_by_one, strict=True)
        if text
    ]
    assert merged["chunks"] == expected
    assert merged["text"] == join_segment_texts(one_by_one)

    # Long audio without timestamps is merged the same way; a constructor default works like the call kwarg.
    assert asr(audio, chunk_length_s=20.0, merge_segments_s=MERGE_S, batch_size=8)["text"] == merged["text"]
    merging = pipeline("automatic-speech-recognition", model=str(converted_aed_dir), merge_segments_s=MERGE_S)
    assert merging(audio, return_timestamps=True, batch_size=8) == merged


@pytest.mark.parametrize("bad", [0, -3.0, float("nan"), "10"])
def test_pipeline_rejects_a_bad_merge_length(asr, converted_aed_dir, bad):
    with pytest.raises(ValueError, match="merge_segments_s must be a positive number of seconds"):
        asr(np.zeros(RATE, np.float32), merge_segments_s=bad)
    with pytest.raises(ValueError, match="merge_segments_s"):
        pipeline("automatic-speech-recognition", model=str(converted_aed_dir), merge_segments_s=bad)


def srt_cues(path) -> list[tuple[str, str, str]]:
    """(start, end, text) of each cue of a SubRip file."""
    return re.findall(r"\d+\n(\S+) --> (\S+)\n(.+)\n", path.read_text(encoding="utf-8"))


@requires_espeak
@requires_vad
def test_cli_merges_segments(converted_aed_dir, recording, tmp_path, capsys):
    path = str(recording["path"])
    common = [path, "--model", str(converted_aed_dir), "--no-progress"]
    assert cli.main([*common, "--output-format", "srt", "--output-dir", str(tmp_path / "plain")]) == 0
    merge = ["--merge-segments-seconds", str(MERGE_S)]
    # Cues as long as a merged piece, so that each piece is one cue (by default cues are cut at 7 s).
    whole = ["--max-cue-seconds", str(MERGE_S)]
    assert cli.main([*common, *merge, *whole, "--output-format", "srt", "--output-dir", str(tmp_path / "merged")]) == 0
    plain, merged = srt_cues(tmp_path / "plain" / "talk.srt"), srt_cues(tmp_path / "merged" / "talk.srt")
    assert 1 < len(merged) <= len(plain) // 2

    capsys.readouterr()
    assert cli.main([*common, *merge, "--output-format", "jsonl"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert [chunk["text"] for chunk in row["chunks"]] == [cue[2] for cue in merged]
    assert_ordered_pieces([{"timestamp": (c["start"], c["end"])} for c in row["chunks"]], MERGE_S)


@pytest.mark.parametrize("bad", ["0", "-2", "nan"])
def test_cli_rejects_a_bad_merge_length(bad, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.parse_args(["a.wav", "--merge-segments-seconds", bad])
    assert exit_info.value.code == 2
    assert "merge_segments_seconds must be a positive number of seconds" in capsys.readouterr().err


def test_cli_help_mentions_merging(capsys):
    with pytest.raises(SystemExit):
        cli.parse_args(["--help"])
    assert "--merge-segments-seconds" in capsys.readouterr().out
