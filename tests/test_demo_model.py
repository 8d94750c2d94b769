"""The bundled demo model (issue #4): what ships, its accuracy on fresh held-out speech, the command without
`--model`, and a long recording through the pipeline and the command line (issue #5's Done-when)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from transformers import pipeline

import transformers_fireredasr
from tests.audio import join_with_pauses, skip_without_espeak, write_wav
from tools.synthetic_corpus import corpus_sentences, random_voice, synthesize
from transformers_fireredasr import cli
from transformers_fireredasr.conversion.aed import AED_DECODING
from transformers_fireredasr.segmentation import vad_available
from transformers_fireredasr.training import character_error_rate

DEMO = transformers_fireredasr.demo_model_dir()
REPO = Path(__file__).resolve().parents[1]
RATE = 16000


def held_out_sentences() -> list[str]:
    """The demo corpus' test sentences (`python -m tools.synthetic_corpus --seed 0`): never in its training set."""
    return corpus_sentences(8000, 300, seed=0)[1]


@pytest.fixture(scope="module")
def asr():
    return pipeline("automatic-speech-recognition", model=str(DEMO))


@pytest.fixture(scope="module")
def fresh_speech(tmp_path_factory):
    """80 held-out sentences in new random voices (not the corpus' own recordings of them)."""
    skip_without_espeak()
    folder = tmp_path_factory.mktemp("held_out")
    rng = np.random.default_rng(2026)
    sentences = held_out_sentences()[-80:]
    audio = [synthesize(s, folder / f"{i}.wav", random_voice(rng), seed=i) for i, s in enumerate(sentences)]
    return sentences, audio


def test_what_ships():
    names = {path.name for path in DEMO.iterdir()}
    assert {"model.safetensors", "config.json", "generation_config.json", "processor_config.json", "dict.txt"} <= names
    assert (DEMO / "model.safetensors").stat().st_size <= 10.5e6
    generation = json.loads((DEMO / "generation_config.json").read_text())
    assert {key: generation.get(key) for key in AED_DECODING} == AED_DECODING  # the published decoding
    card = (DEMO / "README.md").read_text(encoding="utf-8")
    metadata = yaml.safe_load(card.split("---")[1])
    assert metadata["pipeline_tag"] == "automatic-speech-recognition" and "zh" in metadata["language"]
    cer = metadata["model-index"][0]["results"][0]["metrics"][0]
    assert cer["type"] == "cer" and cer["value"] <= 10.0  # the target, in percent
    assert "train_demo_model.sh" in card


def test_held_out_accuracy_on_fresh_voices(asr, fresh_speech):
    sentences, audio = fresh_speech
    texts = [result["text"] for result in asr(audio, batch_size=16)]
    assert character_error_rate(texts, sentences) <= 0.15


def test_command_without_model_transcribes_the_sample_audio(capsys):
    samples = sorted((REPO / "examples" / "audio").glob("held_out_*.wav"))
    expected = {"held_out_1.wav": "时人目飞快望产", "held_out_2.wav": "老妈妈旅拥手工"}
    assert cli.main([str(path) for path in samples] + ["--no-progress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(path) for path in samples]
    predicted = [line.split("\t")[1] for line in lines]
    assert character_error_rate(predicted, [expected[path.name] for path in samples]) <= 0.2


@pytest.fixture(scope="module")
def long_recording(fresh_speech, tmp_path_factory):
    """The 80 fresh utterances in a row with 1.0-1.6 s pauses of faint noise: over four minutes."""
    sentences, audio = fresh_speech
    recording, spans = join_with_pauses(audio, np.random.default_rng(7), (1.0, 1.6), RATE)
    assert len(recording) / RATE > 240
    path = tmp_path_factory.mktemp("long") / "long.wav"
    write_wav(path, recording)
    return {"audio": recording, "path": path, "sentences": sentences, "spans": spans}


@pytest.mark.skipif(not vad_available(), reason="silero-vad is not installed")
def test_long_recording_through_the_pipeline(asr, long_recording):
    result = asr(str(long_recording["path"]), return_timestamps=True, batch_size=16)
    chunks = result["chunks"]
    assert len(chunks) == len(long_recording["sentences"])
    for chunk, (placed_start, placed_end) in zip(chunks, long_recording["spans"], strict=True):
        start, end = chunk["timestamp"]
        assert abs(start - placed_start) <= 0.5 and abs(end - placed_end) <= 0.5
    assert all(chunks[i]["timestamp"][1] <= chunks[i + 1]["timestamp"][0] for i in range(len(chunks) - 1))
    # Within 5 CER points of the same segments transcribed one by one, and close to the true sentences.
    audio = long_recording["audio"]
    one_by_one = [
        asr(audio[round(c["timestamp"][0] * RATE) : round(c["timestamp"][1] * RATE)])["text"] for c in chunks
    ]
    reference = "".join(long_recording["sentences"])
    whole, separate = (
        character_error_rate([result["text"]], [reference]),
        character_error_rate(one_by_one, long_recording["sentences"]),
    )
    assert abs(whole - separate) <= 0.05 and whole <= 0.15


@pytest.mark.skipif(not vad_available(), reason="silero-vad is not installed")
def test_long_recording_through_the_command(long_recording, tmp_path, capsys):
    path = str(long_recording["path"])
    assert cli.main([path, "--output-format", "srt", "--output-dir", str(tmp_path), "--no-progress"]) == 0
    srt = (tmp_path / "long.srt").read_text(encoding="utf-8")
    cues = re.findall(r"(\d+)\n(\d\d:\d\d:\d\d,\d\d\d) --> (\d\d:\d\d:\d\d,\d\d\d)\n(.+)\n", srt)
    assert len(cues) == len(long_recording["sentences"])
    capsys.readouterr()
    assert cli.main([path, "--output-format", "jsonl", "--no-progress"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert [chunk["text"] for chunk in row["chunks"]] == [cue[3] for cue in cues]
    assert character_error_rate([row["text"]], ["".join(long_recording["sentences"])]) <= 0.15


def test_card_usage_block_runs():
    """The card's python example, run from the repository root as written, prints what its comment says."""
    import subprocess
    import sys

    card = (DEMO / "README.md").read_text(encoding="utf-8")
    code = re.search(r"```python\n(.*?)```", card, re.DOTALL).group(1)
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    # The output the card shows in its comment is the output the model gives.
    shown = re.search(r"# (\{'text': '[^']*', 'confidence': [0-9.]+\})", code).group(1)
    assert shown in result.stdout, result.stdout


@pytest.fixture(scope="module")
def silence_clips(tmp_path_factory):
    """Issue #14's clips: held-out sentences after 0.4 s of digital silence, and cut in two by a 0.3 s pause (each
    half spoken on its own, as a speaker pausing between two words)."""
    skip_without_espeak()
    from tools.synthetic_corpus import Voice

    folder = tmp_path_factory.mktemp("silence")
    sentences = held_out_sentences()[:12]
    voice = Voice(speed=170, pitch=50, variant="", noise_std=0.0)
    leading, paused = [], []
    for i, sentence in enumerate(sentences):
        speech = synthesize(sentence, folder / f"whole_{i}.wav", voice)
        leading.append(np.concatenate([np.zeros(int(0.4 * RATE), np.float32), speech]))
        cut = len(sentence) // 2
        first = synthesize(sentence[:cut], folder / f"a_{i}.wav", voice)
        second = synthesize(sentence[cut:], folder / f"b_{i}.wav", voice)
        paused.append((np.concatenate([first, np.zeros(int(0.3 * RATE), np.float32), second]), len(first) / RATE))
    return sentences, leading, paused, folder


def test_leading_silence_and_pauses_are_transcribed(asr, silence_clips, capsys):
    sentences, leading, paused, folder = silence_clips
    texts = [r["text"] for r in asr(leading, batch_size=12)]
    assert all(texts) and character_error_rate(texts, sentences) <= 0.15
    texts = [r["text"] for r in asr([audio for audio, _ in paused], batch_size=12)]
    assert all(len(text) >= len(sentence) - 2 for text, sentence in zip(texts, sentences, strict=True))
    assert character_error_rate(texts, sentences) <= 0.15
    # As a new user tries it: the command, without --model, on a recording that starts with 0.4 s of silence.
    path = folder / "leading.wav"
    write_wav(path, leading[0])
    assert cli.main([str(path), "--no-progress"]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed and character_error_rate([printed], [sentences[0]]) <= 0.3


def test_bundled_demo_gives_word_timestamps(asr, fresh_speech):
    """The demo's CTC head times every character of held-out speech, without changing the transcript."""
    _, audio = fresh_speech
    for clip in audio[:12]:
        plain = asr(clip)
        result = asr(clip, return_timestamps="word")
        assert result["text"] == plain["text"] and result["confidence"] == plain["confidence"]
        words = result["chunks"]
        assert [w["text"] for w in words] == list(plain["text"])  # one word per Hanzi
        times = [w["timestamp"] for w in words]
        assert all(0.0 <= a < b <= len(clip) / RATE + 0.0005 for a, b in times)  # times are rounded to the ms
        assert all(times[i][1] <= times[i + 1][0] for i in range(len(times) - 1))
        assert all(0.0 < w["confidence"] <= 1.0 for w in words)
        # The words cover the speech: the first starts in its first half second, the last ends near its end.
        assert times[0][0] < 0.5 and times[-1][1] > len(clip) / RATE - 0.6


def test_bundled_demo_word_timestamps_keep_the_pause(asr, silence_clips):
    """Issue #14: a 0.3 s pause between two words shows as a gap between them (FireRedASR2's rule closes it)."""
    sentences, _, paused, _ = silence_clips
    for (audio, pause_start), sentence in zip(paused, sentences, strict=True):
        times = [w["timestamp"] for w in asr(audio, return_timestamps="word")["chunks"]]
        gaps = [(end, start) for (_, end), (start, _) in zip(times[:-1], times[1:], strict=True)]
        # espeak-ng ends each half with a little silence of its own, so the gap may open before the inserted pause.
        assert any(
            end <= pause_start + 0.1 and start >= pause_start + 0.2 and start - end >= 0.25 for end, start in gaps
        ), (
            sentence,
            pause_start,
            times,
        )
