"""A decoded segment's tokens and CTC log-probs -> its timed words, with the model's tokenizer and config.

The one place that turns `generate` output into words with times and confidences, shared by the pipeline
(`return_timestamps="word"`/`"char"`) and the server (`timestamp_granularities[]=word`), so both give the same words
for the same segment. The alignment itself (Viterbi, grouping, frames -> seconds) is in `alignment.py`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .alignment import TimingRule, align_or_spread, group_tokens, word_chunks


def can_time_words(model) -> bool:
    """Whether `model` can time words: FireRedASR-AED with a CTC head (FireRedASR2-AED, the bundled demo)."""
    return getattr(model, "ctc_head", None) is not None


def shown_positions(tokenizer, generated: Sequence[int]) -> list[int]:
    """Positions in `generated` (the tokens after the decoder start token) of the tokens a transcript shows: no
    special tokens, nor the tokenizer's `hidden_tokens` (the FireRedASR2 language tags)."""
    hidden = tokenizer.convert_tokens_to_ids(list(getattr(tokenizer, "hidden_tokens", [])))
    special = set(tokenizer.all_special_ids) | set(hidden)
    return [position for position, token in enumerate(generated) if token not in special]


def align_shown_tokens(
    log_probs: torch.Tensor, frames: int, shown_ids: Sequence[int], blank: int
) -> tuple[list[tuple[int, int]], bool]:
    """Each shown token's CTC frames `(first, last + 1)` over the segment's first `frames` frames, and whether they
    were aligned (False: the hypothesis has more tokens than the frames can hold; spread evenly instead)."""
    return align_or_spread(log_probs[:frames].float().cpu(), list(shown_ids), blank)


def timing_rule(config) -> TimingRule:
    """The model's calibrated frames -> seconds rule (`ctc_onset_offset_s`, `ctc_end_padding_s` in its config)."""
    return TimingRule(getattr(config, "ctc_onset_offset_s", 0.0), getattr(config, "ctc_end_padding_s", 0.0))


def timed_words(
    tokenizer,
    config,
    shown_ids: Sequence[int],
    spans: Sequence[tuple[int, int]],
    probabilities: Sequence[float],
    granularity: str,
    start: float,
    end: float,
) -> list[dict]:
    """Whisper-style chunks `{"text", "timestamp": (start_s, end_s), "confidence"}`, one per word (`"word"`: each
    Hanzi, each English word) or token (`"char"`), in seconds from the start of the audio: the segment spans
    `start`-`end`, and `spans` are the tokens' frames within it."""
    times = [(start + a, start + b) for a, b in timing_rule(config).times(spans, end - start)]
    strings = tokenizer.convert_ids_to_tokens(list(shown_ids))
    groups = group_tokens(strings, granularity)
    texts = [tokenizer.convert_tokens_to_string([strings[i] for i in group]) for group in groups]
    return word_chunks(groups, texts, times, probabilities)


__all__ = ["align_shown_tokens", "can_time_words", "shown_positions", "timed_words", "timing_rule"]
