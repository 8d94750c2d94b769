"""Long recordings with the trained test AED: VAD segmentation, batched decoding, timestamps, the CLI's srt/jsonl,
and the robustness cases (silence, stereo, other rates, bad values and files). The same long-recording checks with
the bundled demo model are in `test_demo_model.py`."""

from __future__ import annotations

import json
import re
import struct
import subprocess

import numpy as np
import pytest
from transformers import pipeline

from tests.audio import join_with_pauses, requires_espeak, skip_without_espeak, write_wav
from transformers_fireredasr import cli
from transformers_fireredasr.segmentation import fixed_segments, segment_audio, vad_available
from transformers_fireredasr.training import character_error_rate

RATE = 16000


@pytest.fixture(scope="module")
def asr(converted_aed_dir):
    """The trained test AED (it transcribes the fixture's sentences, which the demo model's vocabulary lacks)."""
    return pipeline("automatic-speech-recognition", model=str(converted_aed_dir))


@pytest.fixture(scope="module")
def recording(speech, tmp_path_factory):
    """Over four minutes: the fixture's spoken utterances five times over in shuffled order, separated by 1.0-1.6 s
    pauses with faint noise. Returns the audio, its wav path, the sentences, their placed (start, end) seconds and
    each utterance's own waveform."""
    skip_without_espeak()
    spoken = [u for u in speech if u.text]
    rng = np.random.default_rng(11)
    order = [spoken[i] for _ in range(5) for i in rng.permutation(len(spoken))]
    audio, spans = join_with_pauses([utterance.audio for utterance in order], rng, (1.0, 1.6), RATE)
    assert len(audio) / RATE > 240
    path = tmp_path_factory.mktemp("long") / "long.wav"
    write_wav(path, audio)
    return {
        "audio": audio, "path": path, "sentences": [u.text for u in order], "spans": spans,
        "singles": [u.audio for u in order],
    }  # fmt: skip


@requires_espeak
@pytest.mark.skipif(not vad_available(), reason="silero-vad is not installed")
def test_long_recording_through_the_pipeline(asr, recording):
    result = asr(str(recording["path"]), return_timestamps=True, batch_size=16)
    chunks = result["chunks"]
    starts = [chunk["timestamp"][0] for chunk in chunks]
    ends = [chunk["timestamp"][1] for chunk in chunks]
    assert starts == sorted(starts) and all(end > start for start, end in zip(starts, ends, strict=True))
    assert all(ends[i] <= starts[i + 1] for i in range(len(chunks) - 1)), "chunks overlap"
    # Every placed utterance is found, once, within 0.5 s of where it was put.
    assert len(chunks) == len(recording["sentences"])
    for (start, end), (placed_start, placed_end) in zip(
        zip(starts, ends, strict=True), recording["spans"], strict=True
    ):
        assert abs(start - placed_start) <= 0.5 and abs(end - placed_end) <= 0.5
    assert result["text"] == "".join(chunk["text"] for chunk in chunks)

    # The long-form text equals the segments transcribed one by one (batching and reassembly lose nothing).
    audio = recording["audio"]
    segments = [audio[round(start * RATE) : round(end * RATE)] for start, end in zip(starts, ends, strict=True)]
    one_by_one = [asr(segment)["text"] for segment in segments]
    assert character_error_rate([result["text"]], ["".join(one_by_one)]) <= 0.05
    # The test model memorised 16 exact clips, so trimmed segments cost it some accuracy; most still come out right.
    assert character_error_rate([result["text"]], ["".join(recording["sentences"])]) <= 0.6
    assert sum(c["text"] == s for c, s in zip(chunks, recording["sentences"], strict=True)) >= len(chunks) // 3

    # Without timestamps the long input is segmented the same way; a plain call returns the same text.
    assert asr(audio, batch_size=16)["text"] == result["text"]


@requires_espeak
def test_long_recording_through_the_cli(converted_aed_dir, recording, tmp_path, capsys):
    path = str(recording["path"])
    model = ["--model", str(converted_aed_dir), "--no-progress"]
    assert cli.main([path, "--output-format", "srt", "--output-dir", str(tmp_path), *model]) == 0
    srt = (tmp_path / "long.srt").read_text(encoding="utf-8")
    cues = re.findall(r"(\d+)\n(\d\d:\d\d:\d\d,\d\d\d) --> (\d\d:\d\d:\d\d,\d\d\d)\n(.+)\n", srt)
    assert len(cues) >= 50 and [int(cue[0]) for cue in cues] == list(range(1, len(cues) + 1))
    capsys.readouterr()
    assert cli.main([path, "--output-format", "jsonl", *model]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["path"] == path and [chunk["text"] for chunk in row["chunks"]] == [cue[3] for cue in cues]
    assert row["text"] == "".join(cue[3] for cue in cues)
    assert cues[0][1] == cli.srt_timestamp(row["chunks"][0]["start"])


def test_over_200_seconds_without_segmentation_does_not_crash(converted_aed_dir, speech):
    """The model itself takes 205 s in one piece (no VAD); upstream crashed past 200 s."""
    asr = pipeline("automatic-speech-recognition", model=str(converted_aed_dir))
    audio = np.tile(speech[0].audio, int(np.ceil(205 * RATE / len(speech[0].audio))))[: 205 * RATE]
    result = asr(audio, chunk_length_s=300, generate_kwargs={"num_beams": 1, "max_new_tokens": 8})
    assert isinstance(result["text"], str)


def test_fixed_chunks_when_vad_is_missing(monkeypatch, speech):
    audio = np.concatenate([speech[0].audio, np.zeros(RATE, np.float32)] * 8)
    spans = fixed_segments(audio, RATE, max_segment_s=5.0)
    assert spans[0][0] == 0 and spans[-1][1] == len(audio)
    assert all(b - a <= 5 * RATE for a, b in spans) and all(
        spans[i][1] == spans[i + 1][0] for i in range(len(spans) - 1)
    )
    monkeypatch.setattr("transformers_fireredasr.segmentation.vad_available", lambda: False)
    assert segment_audio(audio, RATE, 5.0) == spans
    with pytest.raises(ImportError, match="silero-vad"):
        segment_audio(audio, RATE, 5.0, method="vad")


def test_silence_gives_an_empty_transcript(converted_aed_dir):
    asr = pipeline("automatic-speech-recognition", model=str(converted_aed_dir))
    assert asr(np.zeros(3 * RATE, np.float32)) == {"text": ""}
    assert asr(np.zeros(90 * RATE, np.float32), return_timestamps=True) == {"text": "", "chunks": []}
    faint = np.random.default_rng(0).normal(0, 1e-5, 2 * RATE).astype(np.float32)
    assert asr([faint, np.zeros(RATE, np.float32)], batch_size=2) == [{"text": ""}, {"text": ""}]


def test_stereo_and_other_rates_are_converted(converted_aed_dir, speech):
    from scipy.signal import resample_poly

    asr = pipeline("automatic-speech-recognition", model=str(converted_aed_dir))
    audio = speech[2].audio
    stereo_48k = np.stack([resample_poly(audio, 3, 1)] * 2).astype(np.float32)
    expected = asr(audio)["text"]
    assert expected == speech[2].text
    assert asr({"raw": stereo_48k, "sampling_rate": 48000})["text"] == expected
    assert asr({"array": stereo_48k.T.copy(), "sampling_rate": 48000})["text"] == expected


# Integer PCM, as a wav file of that sample type stores it: full scale, 8-bit unsigned around 128.
PCM_TYPES = {np.int8: (0, 2**7), np.int16: (0, 2**15), np.int32: (0, 2**31), np.uint8: (128, 2**7)}


@pytest.mark.parametrize("dtype", list(PCM_TYPES), ids=lambda d: np.dtype(d).name)
def test_integer_pcm_is_scaled_by_its_full_range(asr, speech, dtype):
    """Integer arrays are PCM samples: taken as float they would be thousands of times too loud (the transcript of
    int16 speech was `费费费费费费`). Each is scaled by its type's full range, like the wav file of that type."""
    import torch

    from transformers_fireredasr.audio_io import load_waveform

    audio = speech[2].audio
    offset, scale = PCM_TYPES[dtype]
    limit = np.iinfo(dtype)
    pcm = np.clip(np.round(audio * scale + offset), limit.min, limit.max).astype(dtype)
    expected = ((pcm.astype(np.float64) - offset) / scale).astype(np.float32)
    np.testing.assert_array_equal(load_waveform({"raw": pcm, "sampling_rate": RATE}), expected)
    np.testing.assert_array_equal(load_waveform(torch.from_numpy(pcm)), expected)
    assert np.abs(expected - audio).max() <= 1.0 / scale  # the same waveform, to the type's resolution
    if dtype is not np.int8 and dtype is not np.uint8:  # 8 bits are too coarse for the fixture to be exact
        assert asr({"raw": pcm, "sampling_rate": RATE})["text"] == speech[2].text


@pytest.mark.parametrize(
    "dtype", [np.int64, np.uint16, np.uint32, np.uint64, np.bool_], ids=lambda d: np.dtype(d).name
)
def test_integer_types_that_are_no_pcm_format_are_refused(asr, dtype):
    with pytest.raises(ValueError, match=f"{np.dtype(dtype).name} samples are not a PCM format"):
        asr({"raw": np.zeros(RATE, dtype), "sampling_rate": RATE})


@pytest.mark.parametrize(
    ("audio", "message"),
    [
        (np.zeros(0, np.float32), "empty"),
        (np.array([0.1, np.nan, 0.2] * 1000, np.float32), "NaN or infinite"),
        (np.array([0.1, np.inf] * 1000, np.float32), "NaN or infinite"),
        (np.zeros((3, 3, 3), np.float32), "shape"),
    ],
)
def test_bad_arrays_raise_a_clear_error(converted_aed_dir, audio, message):
    asr = pipeline("automatic-speech-recognition", model=str(converted_aed_dir))
    with pytest.raises(ValueError, match=message):
        asr(audio)


def test_bad_files_name_the_file(converted_aed_dir, speech, tmp_path):
    asr = pipeline("automatic-speech-recognition", model=str(converted_aed_dir))
    good = speech[0].path.read_bytes()
    truncated_wav = tmp_path / "truncated.wav"
    truncated_wav.write_bytes(good[: len(good) // 2])
    flac = tmp_path / "good.flac"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(speech[0].path), str(flac)], check=True)
    truncated_flac = tmp_path / "truncated.flac"
    truncated_flac.write_bytes(flac.read_bytes()[: len(flac.read_bytes()) // 2])
    text_file = tmp_path / "notes.mp3"
    text_file.write_text("not audio at all")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    cases = [
        (truncated_wav, "truncated"),
        (truncated_flac, "corrupt or truncated"),
        (text_file, "not readable as audio"),
        (empty, "empty"),
        (tmp_path / "missing.wav", "no such file"),
        (tmp_path, "is a directory, not an audio file"),
    ]
    for path, message in cases:
        with pytest.raises(ValueError, match=message) as error:
            asr(str(path))
        assert str(path) in str(error.value)
    assert asr(str(flac))["text"] == speech[0].text


def write_float_wav(path, samples: np.ndarray, rate: int = RATE) -> None:
    """A 32-bit IEEE-float mono wav (format 3), which can hold NaN."""
    data = samples.astype("<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, rate, rate * 4, 4, 32)
    path.write_bytes(
        b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(data)) + b"WAVE"
        + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    )  # fmt: skip


def test_cli_mixed_batch_reports_failures_at_the_end(converted_aed_dir, speech, tmp_path, capsys):
    nan_wav = tmp_path / "nan.wav"
    write_float_wav(nan_wav, np.where(np.arange(8000) % 7 == 0, np.nan, 0.1).astype("<f4"))
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(speech[1].path.read_bytes()[:2000])
    paths = [str(speech[0].path), str(truncated), str(speech[2].path), str(nan_wav), str(speech[4].path)]
    code = cli.main([*paths, "--model", str(converted_aed_dir), "--batch-size", "2", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 1
    good = [speech[0], speech[2], speech[4]]
    assert captured.out.splitlines() == [f"{u.path}\t{u.text}" for u in good]
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and str(truncated) in errors[0] and str(nan_wav) in errors[1]


def test_stock_pipeline_for_other_models(tmp_path):
    """Registering FireRedASR leaves every other ASR model on the stock pipeline class."""
    from transformers import AutomaticSpeechRecognitionPipeline, Wav2Vec2Config, Wav2Vec2CTCTokenizer, Wav2Vec2ForCTC

    from transformers_fireredasr.pipeline_fireredasr import FireRedAsrPipeline

    config = Wav2Vec2Config(
        vocab_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
        conv_dim=(8,), conv_stride=(5,), conv_kernel=(10,), num_feat_extract_layers=1,
    )  # fmt: skip
    from transformers import Wav2Vec2FeatureExtractor

    vocab = tmp_path / "vocab.json"
    vocab.write_text(json.dumps({"<pad>": 0, "<unk>": 1, "|": 2, "A": 3, "B": 4, "C": 5, "D": 6, "E": 7}))
    asr = pipeline(
        "automatic-speech-recognition",
        model=Wav2Vec2ForCTC(config),
        feature_extractor=Wav2Vec2FeatureExtractor(),
        tokenizer=Wav2Vec2CTCTokenizer(str(vocab)),
    )
    assert isinstance(asr(np.zeros(RATE, np.float32))["text"], str)
    assert type(asr) is AutomaticSpeechRecognitionPipeline and not isinstance(asr, FireRedAsrPipeline)
