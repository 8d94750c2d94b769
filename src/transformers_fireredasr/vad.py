"""FireRedVAD as a speech segmenter and audio-event detector: audio -> frame probabilities -> segments (and events).

`FireRedVadDetector.from_pretrained(name)` loads a converted FireRedVAD folder, or converts an original one (a
variant folder, the release folder, or the Hub's `FireRedTeam/FireRedVAD`; `FireRedTeam/FireRedVAD/AED` names a
variant of it) once through `resolve_model`. Then:
- `detect(audio)` / `detect_many(audios)` score whole recordings (many recordings share each forward pass) and apply
  the offline post-processing (`vad_postprocessing`); the audio-event variant also gives each event's segments;
- `stream()` opens a streaming session for the causal `Stream-VAD` variant: feed it audio in pieces of any size and it
  returns each new frame's result (`vad_streaming`), carrying the model's caches from call to call.

Like upstream, a recording longer than `chunk_max_frame` frames (five minutes) is scored in independent pieces of
that many frames. Audio is float in [-1, 1] or int16 PCM, mono, at 16 kHz.

The features are upstream's own: kaldi_native_fbank computes the fbank when it is installed (the `vad` extra), as
upstream does. The package's torch fbank is the same computation, but its FFT rounds differently in float32, and in
quiet frequency bins that moves the probabilities by more than the round-off of the model itself; without
kaldi_native_fbank the detector uses the torch fbank and says so once.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from transformers.utils import logging

from .configuration_fireredvad import EVENT_LABELS
from .feature_extraction_fireredasr import FBANK_BACKENDS, FireRedAsrFeatureExtractor
from .modeling_fireredvad import FireRedVadForAudioFrameClassification
from .vad_postprocessing import VadPostprocessing, frame_decisions, segments_from_decisions
from .vad_streaming import StreamingFrameResult, StreamingVadPostprocessing, StreamingVadPostprocessor

logger = logging.get_logger(__name__)

SAMPLING_RATE = 16000
WINDOW_SAMPLES = 400
HOP_SAMPLES = 160
# upstream's thresholds of the audio-event variant, per event
EVENT_THRESHOLDS = {"speech": 0.4, "singing": 0.5, "music": 0.5}
# frames scored in one forward pass, all recordings of a batch together
FRAMES_PER_PASS = 120_000


@dataclass
class VadResult:
    """One recording's detection: its duration, its speech segments `(start, end)` in seconds, the model's frame
    probabilities `(frames,)` (or `(frames, 3)` for the audio-event variant), and for that variant each event's
    segments and the share of frames whose raw probability reaches the event's threshold."""

    duration: float
    segments: list[tuple[float, float]]
    probabilities: np.ndarray
    events: dict[str, list[tuple[float, float]]] | None = None
    event_ratios: dict[str, float] = field(default_factory=dict)


def _to_unit_float(audio, index: int = 0) -> np.ndarray:
    """Mono audio as float64 in [-1, 1] (int16 PCM divided by 32768, exactly)."""
    array = audio.detach().cpu().numpy() if isinstance(audio, torch.Tensor) else np.asarray(audio)
    if array.ndim != 1:
        raise ValueError(f"audio {index} has shape {array.shape}; give mono 1-D samples")
    if array.dtype == np.int16:
        return array.astype(np.float64) / 32768.0
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"audio {index} is {array.dtype}; give float samples in [-1, 1] or int16 PCM")
    return array.astype(np.float64)


def frame_count(samples: int) -> int:
    """Frames of 25 ms every 10 ms in `samples` samples (Kaldi's snip_edges)."""
    return 0 if samples < WINDOW_SAMPLES else 1 + (samples - WINDOW_SAMPLES) // HOP_SAMPLES


def default_fbank_backend() -> str:
    """`"kaldi_native_fbank"`, upstream's fbank, when that package is installed, else this package's `"torch"`."""
    if importlib.util.find_spec("kaldi_native_fbank") is not None:
        return "kaldi_native_fbank"
    logger.warning_once(
        "kaldi_native_fbank is not installed, so FireRedVAD's features come from this package's torch fbank, whose "
        "float32 round-off differs from upstream's in quiet frequency bins; `pip install kaldi-native-fbank` (or the "
        "`vad` extra) for upstream's exact features."
    )
    return "torch"


def split_variant(name: str) -> tuple[str, str | None]:
    """`("FireRedTeam/FireRedVAD", "AED")` for `"FireRedTeam/FireRedVAD/AED"`; a folder or plain id comes back with
    no variant."""
    from .conversion.vad import VARIANTS

    head, _, tail = name.rpartition("/")
    if not os.path.exists(name) and tail in VARIANTS and head.count("/") == 1:
        return head, tail
    return name, None


class FireRedVadDetector:
    """FireRedVAD's model, features and post-processing together (see the module doc)."""

    def __init__(
        self,
        model: FireRedVadForAudioFrameClassification,
        feature_extractor: FireRedAsrFeatureExtractor,
        postprocessing: VadPostprocessing | None = None,
        event_thresholds: Mapping[str, float] | None = None,
        chunk_max_frame: int = 30000,
        fbank_backend: str | None = None,
    ):
        """`fbank_backend` ("kaldi_native_fbank" or "torch", see `FireRedAsrFeatureExtractor.__call__`) defaults to
        `default_fbank_backend()`."""
        if chunk_max_frame < 1:
            raise ValueError(f"chunk_max_frame must be positive, got {chunk_max_frame}")
        if fbank_backend is not None and fbank_backend not in FBANK_BACKENDS:
            raise ValueError(f"fbank_backend must be one of {', '.join(FBANK_BACKENDS)}, got {fbank_backend!r}")
        self.fbank_backend = fbank_backend or default_fbank_backend()
        self.model = model.eval()
        self.feature_extractor = feature_extractor
        self.postprocessing = postprocessing or VadPostprocessing()
        thresholds = dict(EVENT_THRESHOLDS)
        unknown = sorted(set(event_thresholds or {}) - set(thresholds))
        if unknown:
            raise ValueError(f"unknown events {unknown}; the events are {', '.join(EVENT_LABELS)}")
        thresholds.update(event_thresholds or {})
        self.event_thresholds = thresholds
        self.chunk_max_frame = chunk_max_frame
        self.folder = ""  # the folder `from_pretrained` loaded, where `streaming_variant` looks
        self._streaming: FireRedVadDetector | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike[str],
        postprocessing: VadPostprocessing | None = None,
        event_thresholds: Mapping[str, float] | None = None,
        device: str | torch.device | None = None,
        revision: str | None = None,
        fbank_backend: str | None = None,
    ) -> FireRedVadDetector:
        """Loads a converted folder or Hub id, converting an original FireRedVAD release once (cached)."""
        from .conversion.resolve import resolve_model

        name, variant = split_variant(os.fspath(name_or_path))
        folder = resolve_model(name, revision=revision)
        if variant is not None and not os.path.isfile(os.path.join(folder, variant, "config.json")):
            raise FileNotFoundError(f"{name} has no converted {variant} variant ({folder}/{variant})")
        kwargs = {"subfolder": variant} if variant else {}
        model = FireRedVadForAudioFrameClassification.from_pretrained(folder, **kwargs)
        if device is not None:
            model = model.to(device)
        features = FireRedAsrFeatureExtractor.from_pretrained(folder, **kwargs)
        detector = cls(model, features, postprocessing, event_thresholds, fbank_backend=fbank_backend)
        detector.folder = os.path.join(folder, variant) if variant else folder
        return detector

    def streaming_variant(self) -> FireRedVadDetector:
        """This detector when its model streams, else the `Stream-VAD` variant of the release it was loaded from
        (beside it or inside it), loaded once on the same device with the same fbank. A ValueError says when there is
        none."""
        config = self.model.config
        if config.is_streaming and config.num_labels == 1:
            return self
        with self._lock:
            if self._streaming is None:
                places = [os.path.join(place, "Stream-VAD") for place in (self.folder, os.path.dirname(self.folder))]
                found = [
                    place for place in places if self.folder and os.path.isfile(os.path.join(place, "config.json"))
                ]
                if not found:
                    raise ValueError(
                        f"this FireRedVAD model looks ahead, so it cannot stream, and no Stream-VAD variant lies beside "
                        f"it ({self.folder or 'not loaded from a folder'}); load the release or its Stream-VAD variant"
                    )
                model = FireRedVadForAudioFrameClassification.from_pretrained(found[0]).to(self.device)
                features = FireRedAsrFeatureExtractor.from_pretrained(found[0])
                streaming = FireRedVadDetector(model, features, fbank_backend=self.fbank_backend)
                streaming.folder = found[0]
                streaming.stream()  # checks that it streams
                self._streaming = streaming
        return self._streaming

    @property
    def is_event_model(self) -> bool:
        return self.model.config.is_event_model

    @property
    def device(self) -> torch.device:
        return self.model.device

    def _pieces(self, audio: np.ndarray) -> list[np.ndarray]:
        """The audio cut into pieces of at most `chunk_max_frame` frames (each piece the samples of its frames)."""
        frames, pieces = frame_count(len(audio)), []
        for first in range(0, frames, self.chunk_max_frame):
            count = min(self.chunk_max_frame, frames - first)
            start = first * HOP_SAMPLES
            pieces.append(audio[start : start + (count - 1) * HOP_SAMPLES + WINDOW_SAMPLES])
        return pieces

    @torch.inference_mode()
    def frame_probabilities(self, audios: Sequence, sampling_rate: int = SAMPLING_RATE) -> list[torch.Tensor]:
        """Each recording's frame probabilities on the CPU, `(frames,)` or `(frames, 3)`, scored together in passes
        of up to `FRAMES_PER_PASS` frames."""
        if sampling_rate != SAMPLING_RATE:
            raise ValueError(f"FireRedVAD takes {SAMPLING_RATE} Hz audio, got {sampling_rate} Hz; resample it first")
        waves = [_to_unit_float(audio, index) for index, audio in enumerate(audios)]
        pieces = [(index, piece) for index, wave in enumerate(waves) for piece in self._pieces(wave)]
        scored: list[list[torch.Tensor]] = [[] for _ in waves]
        start = 0
        while start < len(pieces):
            end, frames = start, 0
            while end < len(pieces) and (end == start or frames + frame_count(len(pieces[end][1])) <= FRAMES_PER_PASS):
                frames += frame_count(len(pieces[end][1]))
                end += 1
            batch = pieces[start:end]
            inputs = self.feature_extractor(
                [piece for _, piece in batch],
                sampling_rate=SAMPLING_RATE,
                return_tensors="pt",
                device=self.device,
                fbank_backend=self.fbank_backend,
            )
            probabilities = self.model(
                inputs["input_features"].to(self.model.dtype), attention_mask=inputs["attention_mask"]
            ).probabilities
            lengths = inputs["attention_mask"].sum(-1).tolist()
            for (index, _), row, length in zip(batch, probabilities.cpu(), lengths, strict=True):
                scored[index].append(row[:length])
            start = end
        width = self.model.config.num_labels
        joined = [torch.cat(rows) if rows else torch.zeros(0, width) for rows in scored]
        return [rows.squeeze(-1) if width == 1 else rows for rows in joined]

    def _result(self, probabilities: torch.Tensor, duration: float) -> VadResult:
        if not self.is_event_model:
            decisions = frame_decisions(probabilities.tolist(), self.postprocessing)
            return VadResult(round(duration, 3), segments_from_decisions(decisions, duration), probabilities.numpy())
        events, ratios = {}, {}
        for index, event in enumerate(EVENT_LABELS):
            threshold = self.event_thresholds[event]
            column = probabilities[:, index].tolist()
            settings = replace(self.postprocessing, speech_threshold=threshold)
            events[event] = segments_from_decisions(frame_decisions(column, settings), duration)
            ratios[event] = round(sum(value >= threshold for value in column) / len(column), 3) if column else 0
        return VadResult(round(duration, 3), events["speech"], probabilities.numpy(), events, ratios)

    def detect_many(self, audios: Sequence, sampling_rate: int = SAMPLING_RATE) -> list[VadResult]:
        """Each recording's `VadResult`, the recordings scored together."""
        probabilities = self.frame_probabilities(audios, sampling_rate)
        return [
            self._result(rows, len(audio) / SAMPLING_RATE) for rows, audio in zip(probabilities, audios, strict=True)
        ]

    def detect(self, audio, sampling_rate: int = SAMPLING_RATE) -> VadResult:
        """One recording's `VadResult`."""
        return self.detect_many([audio], sampling_rate)[0]

    def stream(self, settings: StreamingVadPostprocessing | None = None) -> FireRedVadStream:
        """A new streaming session (the streaming variant only: a model with lookahead needs the frames after)."""
        return FireRedVadStream(self, settings)


class FireRedVadStream:
    """One audio stream: `accept(piece)` takes the next samples and returns the results of the frames they complete.

    Samples that do not yet fill a frame wait for the next piece, so any piece sizes give the same frames as the
    whole recording; the model's caches and the post-processor's state carry over. `reset()` starts over.
    """

    def __init__(self, detector: FireRedVadDetector, settings: StreamingVadPostprocessing | None = None):
        if not detector.model.config.is_streaming:
            raise ValueError("this FireRedVAD model looks ahead, so it cannot stream; use the Stream-VAD variant")
        if detector.model.config.num_labels != 1:
            raise ValueError("streaming takes a one-output (speech) model")
        self.detector = detector
        self.postprocessor = StreamingVadPostprocessor(settings)
        self.reset()

    def reset(self) -> None:
        self.pending = np.zeros(0)
        self.caches = None
        self.postprocessor.reset()

    def accept(self, audio) -> list[StreamingFrameResult]:
        """Results of the frames completed by `audio` (the stream's next samples, float in [-1, 1] or int16)."""
        return [self.postprocessor.process(value) for value in self.probabilities(audio).tolist()]

    @torch.inference_mode()
    def probabilities(self, audio) -> np.ndarray:
        """The model's speech probabilities of the frames completed by `audio`, without the post-processing (which
        `accept` adds; a stream takes one or the other)."""
        self.pending = np.concatenate([self.pending, _to_unit_float(audio)])
        frames = frame_count(len(self.pending))
        if frames == 0:
            return np.zeros(0)
        used = (frames - 1) * HOP_SAMPLES + WINDOW_SAMPLES
        detector = self.detector
        inputs = detector.feature_extractor(
            self.pending[:used],
            sampling_rate=SAMPLING_RATE,
            return_tensors="pt",
            device=detector.device,
            fbank_backend=detector.fbank_backend,
        )
        self.pending = self.pending[frames * HOP_SAMPLES :]
        output = detector.model(inputs["input_features"].to(detector.model.dtype), caches=self.caches, use_cache=True)
        self.caches = output.caches
        return output.probabilities[0, :, 0].float().cpu().numpy()


__all__ = ["EVENT_THRESHOLDS", "FireRedVadDetector", "FireRedVadStream", "VadResult", "frame_count", "split_variant"]
