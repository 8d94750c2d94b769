"""Test helpers for the server: synthetic clips the demo model knows, a recording with pauses, subtitle parsers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.audio import join_with_pauses, skip_without_espeak, write_wav
from tools.synthetic_corpus import corpus_sentences, random_voice, synthesize

RATE = 16000
_SRT_CUE = re.compile(r"(\d+)\n(\d\d):(\d\d):(\d\d),(\d\d\d) --> (\d\d):(\d\d):(\d\d),(\d\d\d)\n(.+)\n")
_VTT_CUE = re.compile(r"(\d\d):(\d\d):(\d\d)\.(\d\d\d) --> (\d\d):(\d\d):(\d\d)\.(\d\d\d)\n(.+)\n")


@dataclass
class Clips:
    """Distinct held-out utterances (wav files) and one recording of four of them separated by pauses."""

    paths: list[Path]
    sentences: list[str]
    long_path: Path
    long_spans: list[tuple[float, float]]
    long_seconds: float


def make_clips(folder: Path, count: int = 8, seed: int = 2027) -> Clips:
    """`count` held-out corpus sentences in random voices, and a recording of the first four with 1-1.6 s pauses."""
    skip_without_espeak()
    rng = np.random.default_rng(seed)
    sentences = corpus_sentences(8000, 300, seed=0)[1][:count]
    audio = [synthesize(s, folder / f"clip_{i}.wav", random_voice(rng), seed=i) for i, s in enumerate(sentences)]
    recording, spans = join_with_pauses(audio[:4], rng, (1.0, 1.6), RATE)
    long_path = folder / "four_sentences.wav"
    write_wav(long_path, recording)
    paths = [folder / f"clip_{i}.wav" for i in range(count)]
    return Clips(paths, sentences, long_path, spans, len(recording) / RATE)


def _seconds(h: str, m: str, s: str, ms: str) -> float:
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def parse_srt(text: str) -> list[tuple[int, float, float, str]]:
    """`(number, start, end, text)` per cue; asserts that the whole document is cues and nothing else."""
    cues = _SRT_CUE.findall(text)
    rebuilt = "\n".join(f"{c[0]}\n{c[1]}:{c[2]}:{c[3]},{c[4]} --> {c[5]}:{c[6]}:{c[7]},{c[8]}\n{c[9]}\n" for c in cues)
    assert rebuilt.strip() == text.strip(), f"not SubRip:\n{text}"
    return [(int(c[0]), _seconds(*c[1:5]), _seconds(*c[5:9]), c[9]) for c in cues]


def parse_vtt(text: str) -> list[tuple[float, float, str]]:
    """`(start, end, text)` per cue; asserts the WEBVTT header and that nothing else is in the document."""
    assert text.startswith("WEBVTT\n"), text
    cues = _VTT_CUE.findall(text)
    rebuilt = "".join(f"\n{c[0]}:{c[1]}:{c[2]}.{c[3]} --> {c[4]}:{c[5]}:{c[6]}.{c[7]}\n{c[8]}\n" for c in cues)
    assert "WEBVTT\n" + rebuilt == text, f"not WebVTT:\n{text}"
    return [(_seconds(*c[0:4]), _seconds(*c[4:8]), c[8]) for c in cues]
