"""CTC forced alignment (`alignment.py`): the Viterbi path against a brute-force oracle, repeats, the fallback,
word grouping and both timing rules."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from transformers_fireredasr.alignment import (
    AlignmentError,
    TimingRule,
    forced_align,
    frames_needed,
    group_tokens,
    token_frames,
    uniform_token_frames,
    upstream_times,
)


def collapse(path: tuple[int, ...], blank: int) -> list[int]:
    out, previous = [], None
    for label in path:
        if label != blank and label != previous:
            out.append(label)
        previous = label
    return out


def brute_force(log_probs: torch.Tensor, tokens: list[int], blank: int) -> tuple[float, tuple[int, ...]]:
    """The best-scoring frame labelling that collapses to `tokens`, by trying every labelling."""
    frames, vocab = log_probs.shape
    best = (-float("inf"), None)
    for path in itertools.product(range(vocab), repeat=frames):
        if collapse(path, blank) == tokens:
            score = float(sum(log_probs[t, label] for t, label in enumerate(path)))
            best = max(best, (score, path), key=lambda item: item[0])
    return best


def labels_of(path: np.ndarray, tokens: list[int], blank: int) -> tuple[int, ...]:
    return tuple(blank if index < 0 else tokens[index] for index in path.tolist())


@pytest.mark.parametrize("seed", range(40))
def test_viterbi_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    frames, vocab = int(rng.integers(1, 7)), 3
    log_probs = torch.tensor(rng.normal(0, 2, (frames, vocab)), dtype=torch.float32).log_softmax(-1)
    length = int(rng.integers(0, frames + 1))
    tokens = [int(x) for x in rng.integers(1, vocab, size=length)]  # blank 0; repeats are frequent with 2 labels
    if frames_needed(tokens) > frames:
        with pytest.raises(AlignmentError, match="frames"):
            forced_align(log_probs, tokens, blank=0)
        return
    path, score = forced_align(log_probs, tokens, blank=0)
    oracle_score, _ = brute_force(log_probs, tokens, 0)
    assert score == pytest.approx(oracle_score, abs=1e-4)
    labels = labels_of(path, tokens, 0)
    assert collapse(labels, 0) == tokens
    assert float(sum(log_probs[t, label] for t, label in enumerate(labels))) == pytest.approx(oracle_score, abs=1e-4)


def test_repeated_token_needs_a_blank_between_its_runs():
    # 谢谢: the same id twice. Frame 1 favours the token, but a blank must separate the two emissions.
    xie = 5
    log_probs = torch.full((4, 6), -10.0)
    log_probs[0, xie] = log_probs[1, xie] = log_probs[3, xie] = -0.1
    log_probs[2, 0] = -0.5
    path, _ = forced_align(log_probs.log_softmax(-1), [xie, xie], blank=0)
    assert path.tolist() == [0, 0, -1, 1]
    assert token_frames(path, 2) == [(0, 2), (3, 4)]
    with pytest.raises(AlignmentError, match="need at least 3 frames"):
        forced_align(log_probs[:2].log_softmax(-1), [xie, xie], blank=0)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="blank id"):
        forced_align(torch.zeros(3, 4), [1, 0], blank=0)
    with pytest.raises(ValueError, match="frames, vocab"):
        forced_align(torch.zeros(3), [1], blank=0)
    path, _ = forced_align(torch.zeros(3, 4).log_softmax(-1), [], blank=0)
    assert path.tolist() == [-1, -1, -1]


def test_uniform_fallback_covers_the_frames_in_order():
    spans = uniform_token_frames(5, 3)
    assert len(spans) == 5 and all(end > start for start, end in spans)
    assert [start for start, _ in spans] == sorted(start for start, _ in spans) and spans[-1][1] <= 3


def test_pauses_survive_our_rule_and_vanish_in_upstreams():
    spans = [(5, 7), (30, 31)]  # a 23-frame (0.92 s) gap between the two tokens
    ours = TimingRule(onset_offset_s=-0.02, end_padding_s=0.1).times(spans, duration_s=2.0)
    assert ours == [(pytest.approx(0.18), pytest.approx(0.38)), (pytest.approx(1.18), pytest.approx(1.34))]
    theirs = upstream_times(spans, num_frames=40)
    assert theirs[0][1] == pytest.approx(theirs[1][0])  # the first token runs into the second: no gap
    assert theirs[0][0] == pytest.approx(0.04 * 6 - 0.06) and theirs[1][1] == pytest.approx(1.625)


def test_timing_rule_stays_ordered_and_inside_the_audio():
    rule = TimingRule(onset_offset_s=-0.5, end_padding_s=0.5)
    times = rule.times([(0, 1), (2, 3), (3, 4)], duration_s=0.15)
    assert times[0][0] == 0.0 and all(0.0 <= s <= e <= 0.15 for s, e in times)
    assert all(times[i][1] <= times[i + 1][0] for i in range(len(times) - 1))


def test_upstream_rule_cuts_long_tokens():
    spans = [(0, 1), (2, 3), (4, 5), (50, 51)]
    times = upstream_times(spans, num_frames=60)
    durations = [end - start for start, end in times]
    average = (times[-1][1] - times[0][0] + 0) / 4  # before the cut: all durations sum to the span
    assert durations[2] == pytest.approx(1.5 * average)


def test_words_from_hanzi_and_english_pieces():
    tokens = ["我", "们", "▁HEL", "LO", "▁WORLD", "<space>", "好", "▁A"]
    assert group_tokens(tokens) == [[0], [1], [2, 3], [4], [6], [7]]
    assert group_tokens(tokens, "char") == [[0], [1], [2], [3], [4], [6], [7]]
    assert group_tokens(["OK", "AY"]) == [[0, 1]]  # a piece at the start of a transcript opens a word
    with pytest.raises(ValueError, match="granularity"):
        group_tokens(tokens, "words")
