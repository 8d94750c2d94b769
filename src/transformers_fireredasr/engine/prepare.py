"""The engine's first stage: one input's audio -> its segments with features, ready to be decoded with others."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..audio_io import load_waveform
from ..segmentation import firered_segments, is_silent, segment_audio
from .options import TranscribeOptions
from .variants import MIN_SEGMENT_SECONDS


@dataclass(frozen=True)
class Segment:
    """One piece of an input that is decoded at once: where it lies (seconds) and its features `(frames, bins)`."""

    index: int
    start: float
    end: float
    features: torch.Tensor
    mask: torch.Tensor

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Prepared:
    """An input ready for decoding: its duration (seconds), its segments in time order (none for silence), and the
    audio events FireRedVAD's audio-event variant found in it (`{"event", "start", "end"}`; None without one)."""

    duration: float
    segments: list[Segment]
    events: list[dict] | None = None


def prepare(
    audio, feature_extractor, options: TranscribeOptions, limit: float, vad=None, skip_music: bool = False
) -> Prepared:
    """Reads `audio` (a path, bytes, an array, a `{"array"/"raw", "sampling_rate"}` dict), checks it, cuts it into
    segments of at most `limit` seconds where `options` ask for it, and featurizes each segment alone.

    `vad` (a `vad.FireRedVadDetector`) finds the segments instead of silero-vad (fixed chunks stay fixed); its
    audio-event variant also lists the input's events, and `skip_music` drops the segments without speech.

    Raises ValueError naming the problem for empty, undecodable, NaN/inf or too short audio.
    """
    rate = feature_extractor.sampling_rate
    waveform = load_waveform(audio, rate)
    window = feature_extractor.win_length
    if len(waveform) < window:
        raise ValueError(
            f"{len(waveform)} samples, shorter than one {window * 1000 // rate} ms frame ({window} samples at {rate} Hz)"
        )
    limit = options.max_segment_seconds or limit
    duration = len(waveform) / rate
    events = None
    if vad is not None and options.segmentation != "fixed":
        found = firered_segments(
            waveform,
            vad,
            rate,
            limit,
            merge_up_to_s=options.merge_segments_seconds,
            skip_music=skip_music,
            split=options.splits(duration, limit),
        )
        spans, events = found.spans, found.events
    elif is_silent(waveform):
        spans = []
    elif options.splits(duration, limit):
        spans = segment_audio(
            waveform, rate, limit, options.segmentation, merge_up_to_s=options.merge_segments_seconds
        )
    else:
        spans = [(0, len(waveform))]
    spans = [span for span in spans if span[1] - span[0] >= MIN_SEGMENT_SECONDS * rate]
    segments = [featurize(waveform, span, index, feature_extractor) for index, span in enumerate(spans)]
    return Prepared(duration=duration, segments=segments, events=events)


def featurize(waveform: np.ndarray, span: tuple[int, int], index: int, feature_extractor) -> Segment:
    """The segment `span` (samples) of `waveform` with its features, exactly as a pipeline call featurizes it."""
    rate = feature_extractor.sampling_rate
    start, end = span
    processed = feature_extractor(
        waveform[start:end], sampling_rate=rate, return_tensors="pt", return_attention_mask=True
    )
    return Segment(
        index=index,
        start=start / rate,
        end=end / rate,
        features=processed["input_features"][0],
        mask=processed["attention_mask"][0],
    )


__all__ = ["Prepared", "Segment", "featurize", "prepare"]
