"""Turn detection for `server_vad` sessions: the engine's voice activity detector run on the live stream.

One state machine (`StreamingVad`) and two detectors, chosen from the server's engine (`live_detector`):
- silero-vad, the default: each session has a silero model of its own, fed each 512-sample frame of the 16 kHz
  stream once;
- FireRedVAD's streaming model (its `Stream-VAD` variant), when the server segments with FireRedVAD (`--vad-model`):
  each session has a stream of its own (`vad.FireRedVadStream`, the model's caches carried from call to call), which
  scores each 10 ms frame once; its probabilities are averaged over upstream's smoothing window.
Either way the detector's state follows that stream alone and the cost per second of audio stays constant however
long the session runs. Speech starts at the first frame whose probability reaches `threshold` (reported
`prefix_padding_ms` earlier) and stops once the probability has stayed below `threshold - hysteresis` for
`silence_duration_ms`; the stop is reported where that silence began. silero's hysteresis is its own 0.15;
FireRedVAD decides with the one threshold, as upstream does.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from transformers.utils import logging

from ...segmentation import new_vad_model, vad_available
from ...vad import HOP_SAMPLES
from ...vad_streaming import StreamingVadPostprocessing

if TYPE_CHECKING:
    from ...engine import Engine
    from ...vad import FireRedVadDetector

logger = logging.get_logger(__name__)

RATE = 16000
FRAME = 512  # samples silero-vad takes at a time at 16 kHz


@dataclass(frozen=True)
class VadEvent:
    """`kind` "start" or "stop" at `sample` (16 kHz samples since the stream began)."""

    kind: str
    sample: int


def live_detector(engine: Engine) -> FireRedVadDetector | None:
    """The FireRedVAD model live sessions on this engine's server detect turns with: the streaming variant of the
    engine's FireRedVAD (loaded once). None means silero-vad: the engine segments with silero-vad, or its FireRedVAD
    has no streaming variant beside it (then the log says so once)."""
    if engine.vad is None:
        return None
    try:
        return engine.vad.streaming_variant()
    except ValueError as error:
        logger.warning_once(f"Live sessions detect turns with silero-vad: {error}")
        return None


def turn_detection_available(engine: Engine) -> bool:
    """Whether live sessions on this engine's server can detect turns (`server_vad`)."""
    return live_detector(engine) is not None or vad_available()


class SileroFrames:
    """silero-vad's speech probability of each 512-sample frame of a stream."""

    samples = FRAME
    hysteresis = 0.15

    def __init__(self) -> None:
        self._model = new_vad_model()
        self._warm_up()
        self._rest = np.zeros(0, dtype=np.float32)

    def _warm_up(self) -> None:
        """TorchScript optimises a model on its first calls, which take far longer than the rest: make them on
        silence before the stream starts, then forget their state."""
        import torch

        with torch.inference_mode():
            for _ in range(3):
                self._model(torch.zeros(FRAME), RATE)
        self._model.reset_states()

    def probabilities(self, audio: np.ndarray) -> list[float]:
        """The probabilities of the frames the new audio completes."""
        import torch

        data = np.concatenate([self._rest, audio])
        usable = len(data) // FRAME * FRAME
        self._rest = data[usable:]
        with torch.inference_mode():
            return [
                float(self._model(torch.from_numpy(data[at : at + FRAME]), RATE)) for at in range(0, usable, FRAME)
            ]


class FireRedVadFrames:
    """FireRedVAD's streaming speech probability of each 10 ms frame of a stream, averaged over the last
    `smooth_window_size` frames as upstream's streaming post-processing averages it."""

    samples = HOP_SAMPLES  # a frame's position in the stream is its first sample; frames follow each other by a hop
    hysteresis = 0.0

    def __init__(self, detector: FireRedVadDetector) -> None:
        self._stream = detector.stream()
        self._recent: deque[float] = deque(maxlen=StreamingVadPostprocessing().smooth_window_size)

    def probabilities(self, audio: np.ndarray) -> list[float]:
        """The smoothed probabilities of the frames the new audio completes."""
        smoothed = []
        for value in self._stream.probabilities(audio).tolist():
            self._recent.append(value)
            smoothed.append(sum(self._recent) / len(self._recent))
        return smoothed


class StreamingVad:
    """Speech starts and stops in a 16 kHz float32 stream fed in pieces of any size, found by silero-vad or, given
    `detector` (a streaming FireRedVAD, see `live_detector`), by FireRedVAD."""

    def __init__(
        self,
        threshold: float = 0.5,
        prefix_padding_ms: int = 300,
        silence_duration_ms: int = 500,
        detector: FireRedVadDetector | None = None,
    ) -> None:
        self.threshold = threshold
        self.prefix = prefix_padding_ms * RATE // 1000
        self.silence = silence_duration_ms * RATE // 1000
        self._frames = SileroFrames() if detector is None else FireRedVadFrames(detector)
        self._position = 0  # samples judged so far
        self.speaking = False
        self._quiet_since: int | None = None

    def feed(self, audio: np.ndarray) -> list[VadEvent]:
        """Judges the new audio's complete frames; returns the starts and stops found in them, in order."""
        frames = self._frames
        events = []
        for probability in frames.probabilities(np.asarray(audio, dtype=np.float32)):
            start, end = self._position, self._position + frames.samples
            self._position = end
            if probability >= self.threshold:
                self._quiet_since = None
                if not self.speaking:
                    self.speaking = True
                    events.append(VadEvent("start", max(start - self.prefix, 0)))
            elif self.speaking and probability < self.threshold - frames.hysteresis:
                if self._quiet_since is None:
                    self._quiet_since = start
                if end - self._quiet_since >= self.silence:
                    events.append(VadEvent("stop", self._quiet_since))
                    self.speaking, self._quiet_since = False, None
        return events


__all__ = ["FRAME", "StreamingVad", "VadEvent", "live_detector", "turn_detection_available"]
