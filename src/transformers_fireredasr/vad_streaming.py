"""FireRedVAD's streaming post-processing: one frame probability at a time -> speech starts and ends as they happen.

Upstream's `StreamVadPostprocessor` (`fireredvad==0.0.2`), with its defaults: a running average over the last
`smooth_window_size` frames, a threshold, and the four-state machine. Speech starts once `min_speech_frame` frames in
a row are speech (the start is moved back over them and `pad_start_frame` more frames, never before the previous
end); it ends once `min_silence_frame` frames in a row are not, or when it has lasted `max_speech_frame` frames (the
next frame then starts a new segment). `mode` picks one of upstream's four presets (0 very permissive ... 3 very
aggressive) for the threshold and the two minimum lengths.

Frames are numbered from 1. Upstream reports an end at the frame that confirmed the silence, so each segment keeps
`min_silence_frame` frames of silence; `trim_silence_tail=True` reports the end where the silence began.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace

from .vad_postprocessing import POSSIBLE_SILENCE, POSSIBLE_SPEECH, SILENCE, SPEECH, check_settings

FRAMES_PER_SECOND = 100
# upstream's `set_mode` presets: (speech_threshold, min_speech_frame, min_silence_frame)
MODES = {0: (0.3, 8, 20), 1: (0.5, 10, 15), 2: (0.7, 15, 10), 3: (0.9, 20, 5)}


@dataclass(frozen=True)
class StreamingVadPostprocessing:
    """Settings of the streaming post-processing, in frames of 10 ms; the defaults are upstream's."""

    smooth_window_size: int = 5
    speech_threshold: float = 0.5
    pad_start_frame: int = 5
    min_speech_frame: int = 8
    max_speech_frame: int = 2000
    min_silence_frame: int = 20
    trim_silence_tail: bool = False

    def __post_init__(self):
        check_settings(self)

    def with_mode(self, mode: int) -> StreamingVadPostprocessing:
        """These settings with upstream's preset `mode` (0-3) for the threshold and the minimum lengths."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {sorted(MODES)}, got {mode!r}")
        threshold, min_speech, min_silence = MODES[mode]
        return replace(self, speech_threshold=threshold, min_speech_frame=min_speech, min_silence_frame=min_silence)


@dataclass
class StreamingFrameResult:
    """What one frame brought: its number (from 1), its probabilities (rounded to 3 decimals as upstream does), and
    whether a segment started or ended at it (`speech_start_frame` / `speech_end_frame`, numbered from 1)."""

    frame_idx: int
    is_speech: bool
    raw_prob: float
    smoothed_prob: float
    is_speech_start: bool = False
    is_speech_end: bool = False
    speech_start_frame: int = -1
    speech_end_frame: int = -1


class StreamingVadPostprocessor:
    """Turns frame probabilities, fed one at a time, into `StreamingFrameResult`s; `reset()` starts a new stream."""

    def __init__(self, settings: StreamingVadPostprocessing | None = None):
        self.settings = settings or StreamingVadPostprocessing()
        self.window = max(1, self.settings.smooth_window_size)
        self.pad_start = max(self.window, self.settings.pad_start_frame)
        self.reset()

    def reset(self) -> None:
        self.frame_count = 0
        self.recent: deque[float] = deque()
        self.recent_sum = 0.0
        self.state = SILENCE
        self.speech_count = 0
        self.silence_count = 0
        self.hit_max_speech = False
        self.last_start = -1
        self.last_end = -1

    def process(self, probability: float) -> StreamingFrameResult:
        """The result of the next frame, whose speech probability is `probability`."""
        probability = float(probability)
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"a probability must be in [0, 1], got {probability}")
        self.frame_count += 1
        smoothed = self._smooth(probability)
        is_speech = int(smoothed >= self.settings.speech_threshold)
        result = StreamingFrameResult(self.frame_count, is_speech, round(probability, 3), round(smoothed, 3))
        self._transition(is_speech, result)
        return result

    def _smooth(self, probability: float) -> float:
        if self.window <= 1:
            return probability
        self.recent.append(probability)
        self.recent_sum += probability
        if len(self.recent) > self.window:
            self.recent_sum -= self.recent.popleft()
        return self.recent_sum / len(self.recent)

    def _end(self, result: StreamingFrameResult, frame: int) -> None:
        result.is_speech_end = True
        result.speech_end_frame = frame
        result.speech_start_frame = self.last_start
        self.last_start = -1
        self.last_end = frame

    def _transition(self, is_speech: int, result: StreamingFrameResult) -> None:
        settings = self.settings
        if self.hit_max_speech:
            result.is_speech_start = True
            result.speech_start_frame = self.last_start = self.frame_count
            self.hit_max_speech = False
        if self.state == SILENCE:
            if is_speech:
                self.state = POSSIBLE_SPEECH
                self.speech_count += 1
            else:
                self.silence_count += 1
                self.speech_count = 0
        elif self.state == POSSIBLE_SPEECH:
            if is_speech:
                self.speech_count += 1
                if self.speech_count >= settings.min_speech_frame:
                    self.state = SPEECH
                    result.is_speech_start = True
                    result.speech_start_frame = self.last_start = max(
                        1, self.frame_count - self.speech_count + 1 - self.pad_start, self.last_end + 1
                    )
                    self.silence_count = 0
            else:
                self.state = SILENCE
                self.silence_count = 1
                self.speech_count = 0
        else:  # speech, or possible silence
            self.speech_count += 1
            if is_speech:
                self.state = SPEECH
                self.silence_count = 0
                if self.speech_count >= settings.max_speech_frame:
                    self.hit_max_speech = True
                    self.speech_count = 0
                    self._end(result, self.frame_count)
            elif self.state == SPEECH:
                self.state = POSSIBLE_SILENCE
                self.silence_count += 1
            else:
                self.silence_count += 1
                if self.silence_count >= settings.min_silence_frame:
                    self.state = SILENCE
                    end = self.frame_count
                    if settings.trim_silence_tail:
                        end = self.frame_count - self.silence_count + 1  # the first silent frame
                    self._end(result, end)
                    self.speech_count = 0


def timestamps_from_results(results: list[StreamingFrameResult]) -> list[tuple[float, float]]:
    """`(start, end)` seconds of the segments the frame results report (upstream's `results_to_timestamps`); a
    segment still open at the last frame ends there."""
    frames, start = [], -1
    for result in sorted(results, key=lambda r: r.frame_idx):
        if result.is_speech_start:
            start = max(0, result.speech_start_frame - 1)
        elif result.is_speech_end:
            frames.append((start, max(0, result.speech_end_frame - 1)))
            start = -1
    if start != -1:
        frames.append((start, results[-1].frame_idx - 1))
    return [(start / FRAMES_PER_SECOND, end / FRAMES_PER_SECOND) for start, end in frames]


__all__ = [
    "MODES",
    "StreamingFrameResult",
    "StreamingVadPostprocessing",
    "StreamingVadPostprocessor",
    "timestamps_from_results",
]
