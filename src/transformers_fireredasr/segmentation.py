"""Cutting long recordings into pieces a FireRedASR model can transcribe: speech segments found by silero-vad, or
fixed-size chunks when silero-vad is not installed, or, when one is named, by a FireRedVAD model (`firered_segments`).

Trade-off of the fallback: fixed chunks cut wherever the window ends (moved to the quietest 10 ms nearby, which is
usually a pause), so a word can still be split across two chunks, silence is decoded too, and timestamps are chunk
boundaries rather than speech boundaries. `pip install silero-vad` (the `vad` extra) gives speech-bounded segments.

silero-vad ends a segment at every pause of 0.3 s or more. `merge_up_to_s` (`merge_segments`) then joins neighbouring
segments, pauses included, into pieces of up to that length: fewer, longer pieces give the model more context and
fewer forward passes, at the cost of coarser timestamps (fixed chunks are already as long as allowed).
"""

from __future__ import annotations

import functools
import importlib.util
import numbers
import threading
from dataclasses import dataclass
from typing import Literal

import numpy as np
from transformers.utils import logging

from .transformers_compat import torchscript_deprecations_silenced

logger = logging.get_logger(__name__)

Method = Literal["auto", "vad", "fixed"]
# Peak amplitude under which a recording counts as silent whatever the method (about -66 dBFS).
SILENCE_PEAK = 5e-4
# silero-vad keeps recurrent state inside its one shared model: two threads (a server's requests) must not run it at
# the same time.
_SILERO_LOCK = threading.Lock()


def vad_available() -> bool:
    """Whether silero-vad can be imported."""
    return importlib.util.find_spec("silero_vad") is not None


@functools.lru_cache(maxsize=1)
def _silero():
    """The `silero_vad` module. Importing it calls `torch.set_num_threads(1)` for the whole process (its `model.py`),
    which would leave the ASR model on one core wherever audio was segmented first: the caller's count is restored."""
    import torch

    threads = torch.get_num_threads()
    try:
        with torchscript_deprecations_silenced():
            import silero_vad
    finally:
        torch.set_num_threads(threads)
    return silero_vad


@functools.lru_cache(maxsize=1)
def _silero_model():
    with torchscript_deprecations_silenced():
        return _silero().load_silero_vad()


def new_vad_model():
    """A silero-vad model of the caller's own: its recurrent state follows one stream (a live session feeds it
    one frame at a time), unlike the shared model `vad_segments` runs whole recordings through."""
    with torchscript_deprecations_silenced():
        return _silero().load_silero_vad()


def is_silent(audio: np.ndarray) -> bool:
    """True for digital silence or near-silence (peak below about -66 dBFS)."""
    return audio.size == 0 or float(np.abs(audio).max()) < SILENCE_PEAK


def vad_segments(
    audio: np.ndarray,
    sampling_rate: int = 16000,
    max_segment_s: float = 60.0,
    min_silence_s: float = 0.3,
    speech_pad_s: float = 0.1,
    threshold: float = 0.5,
) -> list[tuple[int, int]]:
    """Speech regions `(start, end)` in samples found by silero-vad, split at pauses of `min_silence_s` or more.

    Regions longer than `max_segment_s` are cut by silero at their longest internal silence (or hard-cut).
    """
    import torch

    if is_silent(audio):
        return []
    # silero's own limit excludes its padding on both sides; keep the padded segment within max_segment_s.
    limit = max(max_segment_s - 2 * speech_pad_s, 0.5)
    with _SILERO_LOCK, torch.inference_mode():
        found = _silero().get_speech_timestamps(
            torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)),
            _silero_model(),
            threshold=threshold,
            sampling_rate=sampling_rate,
            min_silence_duration_ms=int(min_silence_s * 1000),
            speech_pad_ms=int(speech_pad_s * 1000),
            max_speech_duration_s=limit,
        )
    spans = [(int(item["start"]), min(int(item["end"]), len(audio))) for item in found]
    max_samples = int(max_segment_s * sampling_rate)
    return [piece for start, end in spans for piece in _split_long(audio, start, end, max_samples, sampling_rate)]


def fixed_segments(
    audio: np.ndarray, sampling_rate: int = 16000, max_segment_s: float = 60.0, search_s: float = 2.0
) -> list[tuple[int, int]]:
    """Consecutive chunks of at most `max_segment_s`, each cut at the quietest 10 ms frame of its last `search_s`."""
    if is_silent(audio):
        return []
    return _split_long(audio, 0, len(audio), int(max_segment_s * sampling_rate), sampling_rate, search_s)


def _split_long(
    audio: np.ndarray, start: int, end: int, max_samples: int, sampling_rate: int, search_s: float = 2.0
) -> list[tuple[int, int]]:
    frame = sampling_rate // 100
    search = min(int(search_s * sampling_rate), max_samples // 2)
    spans = []
    while end - start > max_samples:
        window = audio[start + max_samples - search : start + max_samples]
        usable = len(window) // frame * frame
        energy = (window[:usable].reshape(-1, frame) ** 2).sum(1)
        cut = start + max_samples - search + int(np.argmin(energy)) * frame + frame // 2
        spans.append((start, cut))
        start = cut
    if end > start:
        spans.append((start, end))
    return spans


def merge_segments(
    spans: list[tuple[int, int]], max_samples: int, max_gap_samples: int | None = None
) -> list[tuple[int, int]]:
    """Joins consecutive `(start, end)` spans while the joined span (first start to last end, the pauses between
    included) is at most `max_samples` long and, when `max_gap_samples` is given, each pause is at most that long.

    Spans are never split or reordered; a span already longer than `max_samples` is kept as it is, alone.
    """
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and _joinable(merged[-1], (start, end), max_samples, max_gap_samples):
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def _joinable(previous: tuple[int, int], span: tuple[int, int], max_samples: int, max_gap_samples: int | None) -> bool:
    """Whether `span` may be appended to `previous` under the length and pause limits of `merge_segments`."""
    if span[1] - previous[0] > max_samples:
        return False
    return max_gap_samples is None or span[0] - previous[1] <= max_gap_samples


def _merge_limit(merge_up_to_s: float | None, max_segment_s: float) -> float | None:
    """`merge_up_to_s` checked (positive) and capped at `max_segment_s`; None means no merging."""
    if merge_up_to_s is None:
        return None
    if isinstance(merge_up_to_s, bool) or not isinstance(merge_up_to_s, numbers.Real) or not merge_up_to_s > 0:
        raise ValueError(f"merge_up_to_s must be a positive number of seconds, got {merge_up_to_s!r}")
    return min(float(merge_up_to_s), max_segment_s)


def segment_audio(
    audio: np.ndarray,
    sampling_rate: int = 16000,
    max_segment_s: float = 60.0,
    method: Method = "auto",
    *,
    merge_up_to_s: float | None = None,
) -> list[tuple[int, int]]:
    """Segments to transcribe, in order: silero-vad speech regions (`"vad"`, the `"auto"` choice when installed) or
    fixed-size chunks (`"fixed"`). Silent audio gives no segments.

    With `merge_up_to_s`, neighbouring segments are then joined (pauses included) into pieces of at most that many
    seconds (capped at `max_segment_s`); None keeps one segment per speech region.
    """
    if max_segment_s <= 0:
        raise ValueError(f"max_segment_s must be positive, got {max_segment_s}")
    merge_limit = _merge_limit(merge_up_to_s, max_segment_s)
    if method not in ("auto", "vad", "fixed"):
        raise ValueError(f"segmentation must be 'auto', 'vad' or 'fixed', got {method!r}")
    if method == "vad" and not vad_available():
        raise ImportError("segmentation='vad' needs silero-vad: pip install silero-vad")
    if method == "fixed" or not vad_available():
        if method == "auto":
            logger.warning_once("silero-vad is not installed: long audio is cut into fixed-size chunks instead")
        spans = fixed_segments(audio, sampling_rate, max_segment_s)
    else:
        spans = vad_segments(audio, sampling_rate, max_segment_s)
    if merge_limit is None:
        return spans
    return merge_segments(spans, int(merge_limit * sampling_rate))


@dataclass(frozen=True)
class SpeechDetection:
    """What FireRedVAD found in a recording: the spans to transcribe `(start, end)` in samples, and with the
    audio-event variant every event `{"event", "start", "end"}` (seconds, in time order), else None."""

    spans: list[tuple[int, int]]
    events: list[dict] | None = None


def firered_segments(
    audio: np.ndarray,
    detector,
    sampling_rate: int = 16000,
    max_segment_s: float = 60.0,
    *,
    merge_up_to_s: float | None = None,
    skip_music: bool = False,
    split: bool = True,
) -> SpeechDetection:
    """Segments found by a FireRedVAD model (`vad.FireRedVadDetector`), cut to at most `max_segment_s` at the quietest
    10 ms, and merged as `segment_audio` merges them. `split=False` keeps the whole recording as one span (it is
    then only checked for speech, and its events listed).

    With the audio-event variant, a segment is where speech or singing is heard (lyrics are transcribed too);
    `skip_music=True` drops the segments where no speech is heard (singing or music only), and the whole recording
    when it is not split and holds no speech.
    """
    if max_segment_s <= 0:
        raise ValueError(f"max_segment_s must be positive, got {max_segment_s}")
    merge_limit = _merge_limit(merge_up_to_s, max_segment_s)
    if skip_music and not detector.is_event_model:
        raise ValueError("skip_music needs FireRedVAD's audio-event variant (AED), which tells speech from music")
    if is_silent(audio) and not detector.is_event_model:
        return SpeechDetection([])
    if not split and not detector.is_event_model:
        return SpeechDetection([(0, len(audio))])
    result = detector.detect(audio, sampling_rate)
    events = None
    regions = result.segments
    if detector.is_event_model:
        events = sorted(
            (
                {"event": name, "start": start, "end": end}
                for name, spans in result.events.items()
                for start, end in spans
            ),
            key=lambda event: (event["start"], event["end"]),
        )
        regions = _union(result.events["speech"] + result.events["singing"])
        if skip_music:
            regions = [region for region in regions if _overlaps(region, result.events["speech"])]
    if is_silent(audio):
        return SpeechDetection([], events)
    if not split:
        return SpeechDetection([(0, len(audio))] if regions else [], events)
    max_samples = int(max_segment_s * sampling_rate)
    spans = []
    for start, end in regions:
        first, last = int(round(start * sampling_rate)), min(int(round(end * sampling_rate)), len(audio))
        if last > first:
            spans += _split_long(audio, first, last, max_samples, sampling_rate)
    if merge_limit is not None:
        spans = merge_segments(spans, int(merge_limit * sampling_rate))
    return SpeechDetection(spans, events)


def _union(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Overlapping or touching `(start, end)` spans joined, in time order."""
    joined: list[tuple[float, float]] = []
    for start, end in sorted(spans):
        if joined and start <= joined[-1][1]:
            joined[-1] = (joined[-1][0], max(joined[-1][1], end))
        else:
            joined.append((start, end))
    return joined


def _overlaps(region: tuple[float, float], spans: list[tuple[float, float]]) -> bool:
    return any(start < region[1] and region[0] < end for start, end in spans)


__all__ = [
    "SpeechDetection",
    "firered_segments",
    "fixed_segments",
    "is_silent",
    "merge_segments",
    "segment_audio",
    "vad_available",
    "vad_segments",
]
