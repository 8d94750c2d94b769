"""CTC forced alignment and word timing: pure functions on log-probs, token ids and token strings (no model).

`forced_align` is the Viterbi path of a known token sequence through CTC log-probs, over the 2L+1 blank-augmented
states (a repeated token, 谢谢, needs a blank between its two runs); torchaudio's `forced_align` cannot be
installed beside the pinned torch. `token_frames` reads each token's first and last emitting frame off the path,
`group_tokens` merges tokens into words (each Hanzi is a word; English sentencepiece pieces join until the next
`▁`), and `TimingRule.times` turns frames into seconds.

Our rule keeps pauses: a token starts at its first emitting frame plus a calibrated onset offset and ends where
its own last frame stops being emitted plus a calibrated end padding (never at the next token's start, and never
past it). `upstream_times` is FireRedASR2's rule for comparison (each token ends where the next begins, so pauses
disappear into the words). The offsets are measured by `benchmarks/bench_timestamps.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

# Seconds per encoder frame: 10 ms fbank hop x 4 (two stride-2 convolutions).
FRAME_SECONDS = 0.04
SPIECE_UNDERLINE = "▁"


class AlignmentError(ValueError):
    """The tokens cannot be aligned to the frames (more tokens, plus blanks between repeats, than frames)."""


def frames_needed(tokens: Sequence[int]) -> int:
    """The fewest frames a CTC path of `tokens` needs: one per token, plus a blank between equal neighbours."""
    return len(tokens) + sum(1 for a, b in zip(tokens[:-1], tokens[1:], strict=False) if a == b)


def forced_align(log_probs: torch.Tensor, tokens: Sequence[int], blank: int = 0) -> tuple[np.ndarray, float]:
    """The best CTC path of `tokens` through `log_probs` `(frames, vocab)`.

    Returns `(path, score)`: `path[t]` is the index of the token emitted at frame t (0..L-1) or -1 for blank,
    `score` the path's total log-prob. Raises `AlignmentError` when the frames are too few for the tokens.
    """
    if log_probs.dim() != 2:
        raise ValueError(f"log_probs must be (frames, vocab), got shape {tuple(log_probs.shape)}")
    frames = log_probs.shape[0]
    tokens = [int(token) for token in tokens]
    if blank in tokens:
        raise ValueError(f"the tokens to align contain the blank id {blank}")
    if frames_needed(tokens) > frames:
        raise AlignmentError(
            f"{len(tokens)} tokens need at least {frames_needed(tokens)} frames, the audio has {frames}"
        )
    if not tokens:
        return np.full(frames, -1, dtype=np.int64), float(log_probs[:, blank].double().sum())
    states = np.full(2 * len(tokens) + 1, blank, dtype=np.int64)
    states[1::2] = tokens
    num_states = len(states)
    # The recursion runs in numpy, not torch: it is a few tiny element-wise ops per frame, where torch's fixed cost
    # per operator call outweighs the arithmetic and made the alignment most of the timestamp pass.
    emit = log_probs.detach().float().cpu().numpy()[:, states]  # (frames, states)
    # A token state may be entered from two back (skipping the blank between) unless that is the same token.
    skip_penalty = np.full(num_states, -np.inf, dtype=np.float32)
    skip_penalty[3::2] = np.where(states[3::2] != states[1:-2:2], 0.0, -np.inf)
    # alpha lives at padded[2:], so padded[1:-1] is "from the previous state" and padded[:-2] "from two back".
    padded = np.full(num_states + 2, -np.inf, dtype=np.float32)
    padded[2:4] = emit[0, :2]
    back = np.zeros((frames, num_states), dtype=np.int8)
    for t in range(1, frames):
        alpha, from_prev = padded[2:], padded[1:-1]
        from_skip = padded[:-2] + skip_penalty
        best = np.maximum(alpha, from_prev)
        choice = (from_prev > alpha).astype(np.int8)  # ties keep the state (the first of the three)
        take_skip = from_skip > best
        choice[take_skip] = 2
        best[take_skip] = from_skip[take_skip]
        padded[2:] = best + emit[t]
        back[t] = choice
    alpha = padded[2:]
    last = num_states - 1 if alpha[-1] >= alpha[-2] else num_states - 2
    score = float(alpha[last])
    path = np.empty(frames, dtype=np.int64)
    state = last
    for t in range(frames - 1, -1, -1):
        path[t] = state
        state -= int(back[t, state])
    return np.where(path % 2 == 1, path // 2, -1), score


def token_frames(path: np.ndarray, num_tokens: int) -> list[tuple[int, int]]:
    """`(first, last + 1)` emitting frames of each token of a `forced_align` path."""
    spans = [(-1, -1)] * num_tokens
    for t, index in enumerate(path.tolist()):
        if index >= 0:
            first = spans[index][0]
            spans[index] = (t if first < 0 else first, t + 1)
    return spans


def uniform_token_frames(num_tokens: int, frames: int) -> list[tuple[int, int]]:
    """The fallback when alignment is impossible: the frames shared out evenly among the tokens, in order."""
    edges = np.linspace(0, frames, num_tokens + 1)
    return [(int(edges[i]), max(int(edges[i]) + 1, int(edges[i + 1]))) for i in range(num_tokens)]


@dataclass(frozen=True)
class TimingRule:
    """Frames -> seconds: start = first frame x 40 ms + `onset_offset_s`, end = (last frame + 1) x 40 ms +
    `end_padding_s`, kept within the audio and never past the next token's start."""

    onset_offset_s: float = 0.0
    end_padding_s: float = 0.0
    frame_seconds: float = FRAME_SECONDS

    def times(self, spans: Sequence[tuple[int, int]], duration_s: float) -> list[tuple[float, float]]:
        """`(start_s, end_s)` of each token span `(first, last + 1)`; non-decreasing, within `[0, duration_s]`."""
        starts = [min(max(0.0, first * self.frame_seconds + self.onset_offset_s), duration_s) for first, _ in spans]
        for i in range(1, len(starts)):
            starts[i] = max(starts[i], starts[i - 1])
        times = []
        for i, (_, end_frame) in enumerate(spans):
            end = min(end_frame * self.frame_seconds + self.end_padding_s, duration_s)
            if i + 1 < len(starts):
                end = min(end, starts[i + 1])
            times.append((starts[i], max(end, starts[i])))
        return times


def upstream_times(spans: Sequence[tuple[int, int]], num_frames: int) -> list[tuple[float, float]]:
    """FireRedASR2's token times, for comparison: start = 0.04 x (first frame + 1) - 0.06; each token ends where
    the next starts and the last at 40 x frames + 25 ms; a token longer than twice the average is cut to
    max(1.5 x average, its run of emitting frames)."""
    if not spans:
        return []
    starts = [max(0.0, FRAME_SECONDS * (first + 1) - 0.06) for first, _ in spans]
    ends = starts[1:] + [FRAME_SECONDS * num_frames + 0.025]
    durations = [end - start for start, end in zip(starts, ends, strict=True)]
    average = sum(durations) / len(durations)
    times = []
    for (first, last_plus_one), start, end, duration in zip(spans, starts, ends, durations, strict=True):
        if duration > 2 * average:
            end = start + max(1.5 * average, FRAME_SECONDS * (last_plus_one - first))
        times.append((start, end))
    return times


def is_hanzi(token: str) -> bool:
    """Whether `token` is one CJK character (a word of its own)."""
    return len(token) == 1 and ("\u3400" <= token <= "\u4dbf" or "\u4e00" <= token <= "\u9fff")


def group_tokens(tokens: Sequence[str], granularity: str = "word") -> list[list[int]]:
    """Token indices grouped into words (`"word"`: a Hanzi alone; English pieces joined from one `▁` to the next)
    or one group per token (`"char"`). `<space>` separates words and is left out."""
    if granularity not in ("word", "char"):
        raise ValueError(f"granularity must be 'word' or 'char', got {granularity!r}")
    groups: list[list[int]] = []
    joinable = False  # whether the next piece without `▁` continues the last group
    for index, token in enumerate(tokens):
        if token == "<space>":
            joinable = False
            continue
        if granularity == "char" or is_hanzi(token) or token.startswith(SPIECE_UNDERLINE) or not joinable:
            groups.append([index])
        else:
            groups[-1].append(index)
        joinable = not is_hanzi(token)
    return groups


def align_or_spread(
    log_probs: torch.Tensor, tokens: Sequence[int], blank: int = 0
) -> tuple[list[tuple[int, int]], bool]:
    """Each token's `(first, last + 1)` frames by forced alignment, and True; or, when the hypothesis has too many
    tokens for the frames, the frames shared out evenly (`uniform_token_frames`) and False."""
    try:
        path, _ = forced_align(log_probs, tokens, blank)
    except AlignmentError:
        return uniform_token_frames(len(tokens), log_probs.shape[0]), False
    return token_frames(path, len(tokens)), True


def word_chunks(
    groups: Sequence[Sequence[int]],
    texts: Sequence[str],
    times: Sequence[tuple[float, float]],
    probabilities: Sequence[float],
) -> list[dict]:
    """Whisper-style chunks `{"text", "timestamp": (start, end), "confidence"}`, one per group of token indices:
    the text given for it, from its first token's start to its last token's end, and the mean of its tokens'
    probabilities."""
    chunks = []
    for group, text in zip(groups, texts, strict=True):
        confidence = sum(probabilities[i] for i in group) / len(group)
        start, end = times[group[0]][0], times[group[-1]][1]
        chunks.append(
            {"text": text, "timestamp": (round(start, 3), round(end, 3)), "confidence": round(confidence, 4)}
        )
    return chunks


__all__ = [
    "FRAME_SECONDS",
    "AlignmentError",
    "TimingRule",
    "align_or_spread",
    "forced_align",
    "frames_needed",
    "group_tokens",
    "is_hanzi",
    "token_frames",
    "uniform_token_frames",
    "upstream_times",
    "word_chunks",
]
