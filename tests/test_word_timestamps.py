"""Word and character timestamps and confidence through the pipeline and the command line (issue #14), on a
FireRedASR2-format model (the reference AED plus a CTC head), and subtitle cues cut at pauses."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from transformers import pipeline

from transformers_fireredasr import FireRedAedForConditionalGeneration, FireRedAsrProcessor, cli
from transformers_fireredasr.formats import cues_from_words, split_evenly

RATE = 16000


@pytest.fixture(scope="module")
def asr(converted_aed2_dir):
    return pipeline("automatic-speech-recognition", model=str(converted_aed2_dir))


def test_confidence_is_the_mean_token_probability(asr, converted_aed2_dir, speech):
    model = FireRedAedForConditionalGeneration.from_pretrained(converted_aed2_dir).eval()
    processor = FireRedAsrProcessor.from_pretrained(converted_aed2_dir)
    inputs = processor([speech[3].audio], sampling_rate=RATE, return_tensors="pt")
    out = model.generate(**inputs, return_dict_in_generate=True)
    # By hand: rerun the decoder teacher-forced on the chosen sequence; each step's smoothed log-softmax at the
    # chosen token (softmax smoothing 1.25, eos penalty 1.0) is that token's score.
    sequence = out.sequences[:1]
    length = int(sequence.ne(model.config.pad_token_id).sum())
    with torch.no_grad():
        logits = model(**inputs, decoder_input_ids=sequence[:, : length - 1]).logits[0]
    scores = (logits / 1.25).log_softmax(-1).gather(1, sequence[0, 1:length, None])[:, 0]
    assert torch.allclose(out.token_scores[0, : length - 1], scores, atol=1e-4)
    expected = float(scores.exp().mean())
    assert float(out.confidence[0]) == pytest.approx(expected, abs=1e-5)
    assert asr(speech[3].audio)["confidence"] == pytest.approx(expected, abs=1e-4)
    assert 0.0 < expected <= 1.0


def test_word_chunks_follow_the_tokens(asr, speech):
    for utterance in speech[:6]:
        plain = asr(utterance.audio)
        words = asr(utterance.audio, return_timestamps="word")
        chars = asr(utterance.audio, return_timestamps="char")
        assert words["text"] == plain["text"] == chars["text"]  # timestamps never change the transcript
        assert words["confidence"] == plain["confidence"]
        assert "".join(c["text"] for c in words["chunks"]).replace(" ", "") == plain["text"].replace(" ", "")
        assert len(chars["chunks"]) >= len(words["chunks"])
        times = [c["timestamp"] for c in words["chunks"]]
        assert all(0.0 <= a <= b <= len(utterance.audio) / RATE + 0.0005 for a, b in times)  # ms rounding
        assert all(times[i][1] <= times[i + 1][0] for i in range(len(times) - 1))
        assert all(0.0 < c["confidence"] <= 1.0 for c in words["chunks"])
        assert words["segments"] and words["segments"][0]["text"] == plain["text"]


def test_long_audio_word_times_are_offset_by_their_segment(asr, speech):
    """Two utterances 2 s apart with a 3 s segment limit: decoded as segments, word times from the recording start."""
    first, second = speech[0].audio, speech[4].audio
    gap = np.zeros(2 * RATE, np.float32)
    audio = np.concatenate([first, gap, second])
    result = asr(audio, return_timestamps="word", chunk_length_s=3.0)
    segments = result["segments"]
    assert len(segments) >= 2
    later = [c for c in result["chunks"] if c["timestamp"][0] >= (len(first) + len(gap)) / RATE - 0.3]
    assert later, "the second utterance's words are placed after the pause"
    for chunk in result["chunks"]:
        start, end = chunk["timestamp"]
        assert any(s - 1e-6 <= start <= end <= e + 1e-6 for s, e in (seg["timestamp"] for seg in segments))


def test_models_without_a_ctc_head_refuse_word_timestamps(converted_aed_dir, speech):
    asr = pipeline("automatic-speech-recognition", model=str(converted_aed_dir))
    for mode in ("word", "char"):
        with pytest.raises(ValueError, match="no CTC head.*return_timestamps=True"):
            asr(speech[0].audio, return_timestamps=mode)
    with pytest.raises(ValueError, match="'word' or 'char'"):
        asr(speech[0].audio, return_timestamps="words")
    assert "confidence" in asr(speech[0].audio)  # v1 models get a confidence too


def test_cues_are_cut_at_pauses_and_length():
    words = [
        {"text": "今", "timestamp": (0.0, 0.2)},
        {"text": "天", "timestamp": (0.25, 0.4)},
        {"text": "HELLO", "timestamp": (1.4, 1.8)},  # a 1 s pause before
        {"text": "WORLD", "timestamp": (1.85, 2.2)},
        {"text": "好", "timestamp": (2.3, 9.5)},  # would make the cue longer than 7 s
    ]
    segments = [{"text": "今天HELLO WORLD好", "timestamp": (0.0, 9.6)}]
    cues = cues_from_words(segments, words, max_pause_s=0.6, max_cue_s=7.0)
    assert [c["text"] for c in cues] == ["今天", "HELLO WORLD", "好"]
    assert cues[0]["timestamp"] == (0.0, 0.4) and cues[1]["timestamp"] == (1.4, 2.2)
    # Cues never cross a segment boundary, even without a pause between the words.
    two = [{"text": "今天", "timestamp": (0.0, 0.4)}, {"text": "HELLO", "timestamp": (0.45, 1.8)}]
    assert [c["text"] for c in cues_from_words(two, words[:3], max_pause_s=5.0)] == ["今天", "HELLO"]
    with pytest.raises(ValueError, match="positive"):
        cues_from_words(segments, words, max_pause_s=0)
    pieces = split_evenly({"text": "一二三四五六", "timestamp": (0.0, 15.0)}, max_cue_s=7.0)
    assert [p["text"] for p in pieces] == ["一二", "三四", "五六"] and pieces[-1]["timestamp"] == (10.0, 15.0)


def test_command_line_words_and_vtt(converted_aed2_dir, converted_aed_dir, speech, tmp_path, capsys):
    path = str(speech[2].path)
    assert (
        cli.main([path, "--model", str(converted_aed2_dir), "--output-format", "jsonl", "--timestamps", "word"]) == 0
    )
    row = json.loads(capsys.readouterr().out)
    assert row["words"] and {"start", "end", "text", "confidence"} == set(row["words"][0])
    assert "".join(w["text"] for w in row["words"]).replace(" ", "") == row["text"].replace(" ", "")
    assert 0 < row["confidence"] <= 1 and row["chunks"][0]["text"] == row["text"]
    code = cli.main(
        [path, "--model", str(converted_aed2_dir), "--output-format", "vtt", "--output-dir", str(tmp_path)]
    )
    assert code == 0
    vtt = (tmp_path / f"{speech[2].path.stem}.vtt").read_text(encoding="utf-8")
    cues = re.findall(r"(\d\d:\d\d:\d\d\.\d\d\d) --> (\d\d:\d\d:\d\d\.\d\d\d)\n(.+)\n", vtt)
    assert (
        vtt.startswith("WEBVTT\n")
        and cues
        and "".join(c[2] for c in cues).replace(" ", "") == row["text"].replace(" ", "")
    )
    capsys.readouterr()
    # No CTC head: word timestamps are refused with the reason; a typo in the option is an error.
    assert cli.main([path, "--model", str(converted_aed_dir), "--output-format", "jsonl", "--timestamps", "word"]) == 2
    assert "no CTC head" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main([path, "--timestamps", "words"])
    with pytest.raises(SystemExit):
        cli.main([path, "--max-cue-seconds", "0"])
