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


def timed(texts_and_times):
    return [{"text": text, "timestamp": (start, end)} for text, start, end in texts_and_times]


def test_cues_end_at_sentence_ends_and_cut_at_pauses_inside_one():
    from transformers_fireredasr.formats import subtitle_cues

    sentences = [
        {"text": "今天天气很好，我们去公园吧。", "start": 0.0, "end": 3.9},
        {"text": "你来不来？", "start": 4.0, "end": 5.0},
    ]
    chars = "今天天气很好我们去公园吧你来不来"
    times = [(0.0 + 0.3 * i, 0.25 + 0.3 * i) for i in range(6)]  # 今天天气很好, then a 0.9 s pause
    times += [(2.5 + 0.2 * i, 2.65 + 0.2 * i) for i in range(6)]  # 我们去公园吧, ending 3.65
    times += [(3.7 + 0.3 * i, 3.95 + 0.3 * i) for i in range(4)]  # 你来不来: no pause before it
    words = timed([(char, start, end) for char, (start, end) in zip(chars, times, strict=True)])
    cues = subtitle_cues([], words, max_cue_s=7.0, max_pause_s=0.6, sentences=sentences)
    assert [cue["text"] for cue in cues] == ["今天天气很好，", "我们去公园吧。", "你来不来？"]
    assert [cue["timestamp"] for cue in cues] == [(0.0, 1.75), (2.5, 3.65), (3.7, 4.85)]


def test_english_sentences_keep_their_case_and_marks_and_long_ones_cut_at_the_limit():
    from transformers_fireredasr.formats import cues_from_sentences

    sentences = [{"text": "Hello world. How are you today?", "start": 0.0, "end": 6.0}]
    words = timed([("hello", 0, 1), ("world.", 1, 2), ("how", 2, 3), ("are", 3, 4), ("you", 4, 5), ("today", 5, 6)])
    cues = cues_from_sentences(sentences, words, max_pause_s=0.6, max_cue_s=2.5)
    assert [cue["text"] for cue in cues] == ["Hello world.", "How are", "you today?"]
    assert [cue["timestamp"] for cue in cues] == [(0, 2), (2, 4), (4, 6)]


def test_without_word_times_a_long_sentence_is_cut_evenly_and_still_ends_a_cue():
    from transformers_fireredasr.formats import cues_from_sentences

    sentences = [{"text": "一二三四五六。", "start": 0.0, "end": 6.0}, {"text": "七八。", "start": 6.5, "end": 7.0}]
    cues = cues_from_sentences(sentences, None, max_cue_s=3.0)
    assert [cue["timestamp"][1] for cue in cues] == [3.0, 6.0, 7.0]
    assert "".join(cue["text"] for cue in cues[:2]).startswith("一二三四五六") and cues[2]["text"] == "七八。"


def test_a_punctuated_result_gets_a_sentence_tier_first(tmp_path, capsys):
    import argparse

    from transformers_fireredasr.cli import write_result

    result = {
        "text": "你好。再见。",
        "segments": [{"text": "你好再见", "timestamp": (0.2, 1.8)}],
        "chunks": timed([("你", 0.2, 0.4), ("好", 0.4, 0.7), ("再", 1.3, 1.5), ("见", 1.5, 1.8)]),
        "sentences": [{"text": "你好。", "start": 0.2, "end": 0.7}, {"text": "再见。", "start": 1.3, "end": 1.8}],
    }
    options = argparse.Namespace(output_format="textgrid", output_dir=str(tmp_path))
    write_result("talk.wav", result, options, several=False, duration=2.0)
    grid = textgrid.openTextgrid(str(tmp_path / "talk.TextGrid"), includeEmptyIntervals=False)
    assert list(grid.tierNames) == ["sentences", "segments", "words"]
    assert [(e.start, e.end, e.label) for e in grid.getTier("sentences").entries] == [
        (0.2, 0.7, "你好。"),
        (1.3, 1.8, "再见。"),
    ]


def test_languages_reach_vtt_spans_cues_and_a_textgrid_tier_and_srt_stays_plain(tmp_path):
    from transformers_fireredasr.formats import language_tag, language_tier, subtitle_cues, to_srt, to_vtt

    assert [language_tag(label) for label in ("zh mandarin", "zh xinan", "en", "haw", "lang7", "", "zh 7-x")] == [
        "zh-x-mandarin", "zh-x-xinan", "en", "haw", None, None, "zh",
    ]  # fmt: skip
    tagged = [
        {**SEGMENTS[0], "language": "zh mandarin", "language_confidence": 0.9},
        {**SEGMENTS[1], "language": "en"},
    ]
    vtt = to_vtt(tagged)
    assert "<lang zh-x-mandarin>今天 天气</lang>" in vtt and '<lang en>say "hi"</lang>' in vtt
    assert to_vtt(SEGMENTS) == to_vtt([{**SEGMENTS[0], "language": "lang7"}, SEGMENTS[1]])  # no tag: no span
    assert to_srt(tagged) == to_srt(SEGMENTS)  # SubRip has no language markup
    # Every way of cutting cues keeps the language: of the segment (evenly, at word pauses) or of the sentence.
    long = [{"text": "一二三四五六", "timestamp": (0.0, 12.0), "language": "zh yue"}]
    assert {cue["language"] for cue in subtitle_cues(long, None, max_cue_s=5.0)} == {"zh yue"}
    words = [{"text": "一", "timestamp": (0.0, 0.5)}, {"text": "二", "timestamp": (3.0, 3.5)}]
    assert [cue["language"] for cue in subtitle_cues(long, words)] == ["zh yue", "zh yue"]
    sentences = [
        {"text": "一。", "start": 0.0, "end": 0.5, "language": "zh wu"},
        {"text": "二。", "start": 3.0, "end": 3.5},
    ]
    cues = subtitle_cues(long, words, sentences=sentences)
    assert [cue.get("language") for cue in cues] == ["zh wu", None]
    path = tmp_path / "languages.TextGrid"
    path.write_text(to_textgrid({"segments": tagged, "language": language_tier(tagged)}, duration=4.0), "utf-8")
    tier = textgrid.openTextgrid(str(path), includeEmptyIntervals=False).getTier("language")
    assert [(entry.start, entry.end, entry.label) for entry in tier.entries] == [
        (0.5, 2.0, "zh mandarin"),
        (2.6, 3.1, "en"),
    ]
