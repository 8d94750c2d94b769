"""FireRedVAD's offline post-processing: frame probabilities -> speech decisions -> segments in seconds.

The steps are upstream's (`fireredvad==0.0.2`, `VadPostprocessor`), with its defaults, in its order:
1. smoothing: a moving average over `smooth_window_size` frames (the first frames average what there is);
2. threshold: a frame is speech when its smoothed probability is at least `speech_threshold`;
3. a four-state machine (silence, possible speech, speech, possible silence): speech starts once
   `min_speech_frame` frames in a row are speech, and ends once `min_silence_frame` frames in a row are not;
4. each speech start moves back by the smoothing window; silences shorter than `merge_silence_frame` are filled;
   speech is extended by `extend_speech_frame` frames on both sides;
5. a segment longer than `max_speech_frame` is split at its least likely frame within each second half-window.

Segment times are rounded to the millisecond as upstream rounds them; an open final segment ends at the recording's
end. Upstream keeps the `min_silence_frame` frames that confirm a silence inside the segment before it, so every
segment ends with that much silence; `trim_silence_tail=True` ends it where the silence began instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FRAME_SHIFT_S = 0.010
FRAME_LENGTH_S = 0.025
SILENCE, POSSIBLE_SPEECH, SPEECH, POSSIBLE_SILENCE = range(4)


def check_settings(settings) -> None:
    """Raises ValueError for a threshold outside [0, 1] or a speech length that is not positive (the offline and the
    streaming settings share these fields)."""
    if not 0.0 <= settings.speech_threshold <= 1.0:
        raise ValueError(f"speech_threshold must be in [0, 1], got {settings.speech_threshold}")
    for name in ("min_speech_frame", "max_speech_frame"):
        if getattr(settings, name) <= 0:
            raise ValueError(f"{name} must be positive, got {getattr(settings, name)}")


@dataclass(frozen=True)
class VadPostprocessing:
    """Settings of the offline post-processing, in frames of 10 ms; the defaults are upstream's."""

    smooth_window_size: int = 5
    speech_threshold: float = 0.4
    min_speech_frame: int = 20
    max_speech_frame: int = 2000
    min_silence_frame: int = 20
    merge_silence_frame: int = 0
    extend_speech_frame: int = 0
    trim_silence_tail: bool = False

    def __post_init__(self):
        check_settings(self)

    @property
    def window(self) -> int:
        return max(1, self.smooth_window_size)


def smooth(probabilities: list[float], window: int) -> np.ndarray:
    """Moving average over `window` frames, the first `window - 1` frames averaging the frames so far."""
    values = np.asarray(probabilities, dtype=np.float64)
    if window <= 1:
        return values
    smoothed = np.convolve(values, np.ones(window) / window, mode="full")[: len(values)]
    for index in range(min(window - 1, len(values))):
        smoothed[index] = np.mean(values[: index + 1])
    return smoothed


def _state_machine(speech: list[int], settings: VadPostprocessing) -> list[int]:
    if settings.min_speech_frame <= 0 and settings.min_silence_frame <= 0:
        return speech
    decisions = [0] * len(speech)
    state, speech_start, silence_start = SILENCE, -1, -1
    for t, is_speech in enumerate(speech):
        if state == SILENCE:
            if is_speech:
                state, speech_start = POSSIBLE_SPEECH, t
        elif state == POSSIBLE_SPEECH:
            if is_speech:
                if t - speech_start >= settings.min_speech_frame:
                    state = SPEECH
                    decisions[speech_start:t] = [1] * (t - speech_start)
            else:
                state, speech_start = SILENCE, -1
        elif state == SPEECH:
            if not is_speech:
                state, silence_start = POSSIBLE_SILENCE, t
        elif is_speech:  # possible silence that was not
            state, silence_start = SPEECH, -1
        elif t - silence_start >= settings.min_silence_frame:
            state, speech_start = SILENCE, -1
            if settings.trim_silence_tail:
                decisions[silence_start:t] = [0] * (t - silence_start)
        decisions[t] = int(state in (SPEECH, POSSIBLE_SILENCE))
    return decisions


def _move_starts_back(decisions: list[int], window: int) -> list[int]:
    moved = decisions.copy()
    for t in range(1, len(decisions)):
        if decisions[t - 1] == 0 and decisions[t] == 1:
            start = max(0, t - window)
            moved[start:t] = [1] * (t - start)
    return moved


def _merge_short_silences(decisions: list[int], frames: int) -> list[int]:
    if frames <= 0:
        return decisions
    merged = decisions.copy()
    silence_start = None
    for t in range(1, len(decisions)):
        if decisions[t - 1] == 1 and decisions[t] == 0 and silence_start is None:
            silence_start = t
        elif decisions[t - 1] == 0 and decisions[t] == 1 and silence_start is not None:
            if t - silence_start < frames:
                merged[silence_start:t] = [1] * (t - silence_start)
            silence_start = None
    return merged


def _extend(decisions: list[int], frames: int) -> list[int]:
    if frames <= 0:
        return decisions
    extended = np.convolve(np.array(decisions), np.ones(2 * frames + 1), mode="same")
    return (extended > 0).astype(int).tolist()


def _split_points(probabilities: list[float], max_frames: int) -> list[int]:
    points, start, length = [], 0, len(probabilities)
    while length - start > max_frames:
        window_start, window_end = int(start + max_frames / 2), int(start + max_frames)
        lowest = window_start + int(np.argmin(probabilities[window_start:window_end]))
        points.append(lowest)
        start = lowest + 1
    return points


def _split_long(decisions: list[int], probabilities: list[float], settings: VadPostprocessing) -> list[int]:
    split = decisions.copy()
    for start_s, end_s in segments_from_decisions(decisions):
        # upstream turns the rounded times back into frames with int(), which can land one frame early
        start, end = int(start_s / FRAME_SHIFT_S), int(end_s / FRAME_SHIFT_S)
        if end - start > settings.max_speech_frame:
            for point in _split_points(probabilities[start:end], settings.max_speech_frame):
                split[start + point] = 0
    return split


def frame_decisions(probabilities: list[float], settings: VadPostprocessing) -> list[int]:
    """Speech (1) or not (0) for every frame, from the model's frame probabilities."""
    probabilities = [float(value) for value in probabilities]
    if not probabilities:
        return []
    speech = (smooth(probabilities, settings.window) >= settings.speech_threshold).astype(int).tolist()
    decisions = _state_machine(speech, settings)
    decisions = _move_starts_back(decisions, settings.window)
    decisions = _merge_short_silences(decisions, settings.merge_silence_frame)
    decisions = _extend(decisions, settings.extend_speech_frame)
    return _split_long(decisions, probabilities, settings)


def segments_from_decisions(decisions: list[int], duration_s: float | None = None) -> list[tuple[float, float]]:
    """`(start, end)` seconds of each run of speech frames, rounded to the millisecond; a run still open at the end
    lasts to the end of the last frame's window, or to `duration_s` when that is earlier."""
    segments, start = [], None
    for t, decision in enumerate(decisions):
        if decision == 1 and start is None:
            start = t
        elif decision == 0 and start is not None:
            segments.append((start * FRAME_SHIFT_S, t * FRAME_SHIFT_S))
            start = None
    if start is not None:
        end = len(decisions) * FRAME_SHIFT_S + FRAME_LENGTH_S
        if duration_s is not None:
            end = min(end, duration_s)
        segments.append((start * FRAME_SHIFT_S, end))
    return [(round(start, 3), round(end, 3)) for start, end in segments]


def speech_segments(
    probabilities: list[float], duration_s: float, settings: VadPostprocessing | None = None
) -> list[tuple[float, float]]:
    """The speech segments, in seconds, of a recording of `duration_s` seconds from its frame probabilities."""
    decisions = frame_decisions(probabilities, settings or VadPostprocessing())
    return segments_from_decisions(decisions, duration_s)


__all__ = [
    "FRAME_LENGTH_S",
    "FRAME_SHIFT_S",
    "VadPostprocessing",
    "frame_decisions",
    "segments_from_decisions",
    "smooth",
    "speech_segments",
]
