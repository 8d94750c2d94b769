"""Test helpers that make audio: Mandarin speech synthesized with espeak-ng (resampled by sox), noise, wav I/O."""

import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from tools.synthetic_corpus import Voice, synthesize, write_wav

__all__ = ["HELD_OUT_CLIPS", "join_with_pauses", "noise", "read_wav", "synthesize_mandarin", "write_wav"]

# The demo's two held-out recordings shipped in examples/audio (never trained on).
HELD_OUT_CLIPS = sorted((Path(__file__).resolve().parents[1] / "examples" / "audio").glob("held_out_*.wav"))

HAVE_ESPEAK = shutil.which("espeak-ng") is not None and shutil.which("sox") is not None
# Mark tests that synthesize speech; they are skipped when espeak-ng or sox is missing.
requires_espeak = pytest.mark.skipif(not HAVE_ESPEAK, reason="needs espeak-ng and sox (apt-get install espeak-ng sox)")


def skip_without_espeak() -> None:
    """Skips the calling test or fixture when espeak-ng or sox is missing."""
    if not HAVE_ESPEAK:
        pytest.skip("needs espeak-ng and sox (apt-get install espeak-ng sox)")


def read_wav(path: str | Path) -> np.ndarray:
    """Reads a 16-bit mono wav as float32 in [-1, 1]."""
    with wave.open(str(path), "rb") as f:
        if f.getsampwidth() != 2 or f.getnchannels() != 1:
            raise ValueError(f"{path}: expected 16-bit mono PCM")
        samples = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2")
    return samples.astype(np.float32) / 32768.0


def noise(seconds: float, seed: int, sr: int = 16000) -> np.ndarray:
    """Gaussian noise with standard deviation 0.1, float32, exactly representable as int16 / 32768."""
    rng = np.random.default_rng(seed)
    audio = np.clip(rng.normal(0.0, 0.1, int(seconds * sr)), -1.0, 32767 / 32768)
    return (np.round(audio * 32768.0) / 32768.0).astype(np.float32)


def join_with_pauses(
    utterances: list[np.ndarray], rng: np.random.Generator, pause_s: tuple[float, float] = (1.0, 1.6), sr: int = 16000
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """The utterances in a row, each followed by a pause of faint noise (std 0.001) lasting a random
    `pause_s[0]`-`pause_s[1]` seconds. Returns the recording and each utterance's placed (start, end) in seconds."""
    pieces, spans, position = [], [], 0
    for utterance in utterances:
        pause = rng.normal(0.0, 0.001, int(rng.uniform(*pause_s) * sr)).astype(np.float32)
        pieces += [utterance, pause]
        spans.append((position / sr, (position + len(utterance)) / sr))
        position += len(utterance) + len(pause)
    return np.concatenate(pieces), spans


def synthesize_mandarin(text: str, path: str | Path, speed: int = 160, pitch: int = 50) -> np.ndarray:
    """Speaks Hanzi `text` with espeak-ng, writes it to `path` as 16 kHz mono 16-bit wav and returns float32 audio."""
    skip_without_espeak()
    return synthesize(text, path, Voice(speed=speed, pitch=pitch, variant="", noise_std=0.0))
