"""`audio_io.decode_bytes`: plain 16-bit mono wav at the target rate is read without starting ffmpeg, and gives
ffmpeg's samples bit for bit; every other file still goes through ffmpeg with its checks."""

from __future__ import annotations

import io
import subprocess
import wave

import numpy as np
import pytest

from transformers_fireredasr import audio_io


def wav_bytes(samples: np.ndarray, rate: int = 16000, channels: int = 1, width: int = 2) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as file:
        file.setnchannels(channels)
        file.setsampwidth(width)
        file.setframerate(rate)
        file.writeframes(samples.tobytes())
    return buffer.getvalue()


def ffmpeg_samples(data: bytes, rate: int = 16000) -> np.ndarray:
    command = ["ffmpeg", "-nostdin", "-v", "error", "-i", "pipe:0", "-ac", "1", "-ar", str(rate), "-f", "f32le"]
    return np.frombuffer(subprocess.run([*command, "pipe:1"], input=data, capture_output=True).stdout, "<f4")


@pytest.fixture
def no_ffmpeg(monkeypatch):
    """Fails the test if ffmpeg is started."""

    def refuse(*args, **kwargs):
        raise AssertionError("ffmpeg was started")

    monkeypatch.setattr(audio_io.subprocess, "run", refuse)


def test_plain_wav_is_read_without_ffmpeg_and_equals_it(request):
    samples = np.random.default_rng(0).integers(-32768, 32767, 16000, endpoint=True).astype("<i2")
    samples[:3] = (-32768, 32767, 0)
    data = wav_bytes(samples)
    expected = ffmpeg_samples(data)
    request.getfixturevalue("no_ffmpeg")
    got = audio_io.decode_bytes(data)
    assert got.dtype == np.float32 and got.flags.writeable
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    ("samples", "rate", "channels", "width"),
    [
        (np.zeros(16000, "<i2") + 100, 8000, 1, 2),  # another rate: ffmpeg resamples
        (np.zeros(32000, "<i2") + 100, 16000, 2, 2),  # stereo: ffmpeg downmixes
        (np.zeros(16000, np.uint8) + 140, 16000, 1, 1),  # 8-bit
    ],
    ids=["8kHz", "stereo", "8-bit"],
)
def test_other_wavs_still_go_through_ffmpeg(samples, rate, channels, width):
    data = wav_bytes(samples, rate, channels, width)
    np.testing.assert_array_equal(audio_io.decode_bytes(data), ffmpeg_samples(data))


def test_bad_wavs_are_still_refused(no_ffmpeg):
    data = wav_bytes(np.zeros(16000, "<i2"))
    with pytest.raises(ValueError, match="truncated wav"):
        audio_io.decode_bytes(data[:-2000], name="cut.wav")
    with pytest.raises(ValueError, match="cut.wav: the file is empty"):
        audio_io.decode_bytes(b"", name="cut.wav")
