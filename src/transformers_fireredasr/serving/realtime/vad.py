"""Turn detection for `server_vad` sessions: the engine's segmenter model (silero-vad) run on the live stream.

Each session has a silero model of its own, fed each 512-sample frame of the 16 kHz stream once, so its recurrent state follows that
stream alone and the cost per second of audio stays constant however long the session runs. Speech starts at the
first frame whose probability reaches `threshold` (reported `prefix_padding_ms` earlier) and stops once the
probability has stayed below `threshold - 0.15` for `silence_duration_ms` (silero's own hysteresis); the stop is
reported where that silence began.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...segmentation import new_vad_model

RATE = 16000
FRAME = 512  # samples silero-vad takes at a time at 16 kHz


@dataclass(frozen=True)
class VadEvent:
    """`kind` "start" or "stop" at `sample` (16 kHz samples since the stream began)."""

    kind: str
    sample: int


class StreamingVad:
    """Speech starts and stops in a 16 kHz float32 stream fed in pieces of any size."""

    def __init__(self, threshold: float = 0.5, prefix_padding_ms: int = 300, silence_duration_ms: int = 500) -> None:
        self.threshold = threshold
        self.prefix = prefix_padding_ms * RATE // 1000
        self.silence = silence_duration_ms * RATE // 1000
        self._model = new_vad_model()
        self._warm_up()
        self._rest = np.zeros(0, dtype=np.float32)
        self._position = 0  # samples judged so far
        self.speaking = False
        self._quiet_since: int | None = None

    def _warm_up(self) -> None:
        """TorchScript optimises a model on its first calls, which take far longer than the rest: make them on
        silence before the stream starts, then forget their state."""
        import torch

        with torch.inference_mode():
            for _ in range(3):
                self._model(torch.zeros(FRAME), RATE)
        self._model.reset_states()

    def feed(self, audio: np.ndarray) -> list[VadEvent]:
        """Judges the new audio's complete frames; returns the starts and stops found in them, in order."""
        import torch

        data = np.concatenate([self._rest, np.asarray(audio, dtype=np.float32)])
        usable = len(data) // FRAME * FRAME
        self._rest = data[usable:]
        events = []
        with torch.inference_mode():
            for begin in range(0, usable, FRAME):
                probability = float(self._model(torch.from_numpy(data[begin : begin + FRAME]), RATE))
                start, end = self._position, self._position + FRAME
                self._position = end
                if probability >= self.threshold:
                    self._quiet_since = None
                    if not self.speaking:
                        self.speaking = True
                        events.append(VadEvent("start", max(start - self.prefix, 0)))
                elif self.speaking and probability < self.threshold - 0.15:
                    if self._quiet_since is None:
                        self._quiet_since = start
                    if end - self._quiet_since >= self.silence:
                        events.append(VadEvent("stop", self._quiet_since))
                        self.speaking, self._quiet_since = False, None
        return events


__all__ = ["FRAME", "StreamingVad", "VadEvent"]
