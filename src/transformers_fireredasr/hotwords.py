"""Hotwords: contextual biasing by shallow fusion, the way wenet, icefall and sherpa-onnx bias their own decoders.

The listed phrases go into an Aho-Corasick automaton (`PhraseTrie`) over symbols: token ids for FireRedASR-AED (its
own tokenizer: one token per Hanzi, BPE pieces for English), characters of the decoded text for FireRedASR-LLM
(Qwen's BPE merges Hanzi in ways that depend on the neighbours, so no single tokenization of a phrase can be
matched). Every decoding step, each hypothesis's state (the longest suffix of it that is a prefix of a phrase) gives
a bonus vector over the vocabulary, added to the step's log-probs:

- a token that extends a match earns the phrase's per-token score;
- a token that breaks a match takes back what the unfinished match had earned (completed phrases keep theirs, also
  those completed as a suffix of a longer match), and may start a new match (failure links);
- `<eos>` takes back an unfinished match, so a dangling prefix wins nothing;
- greedy decoding only adds the bonus of extending tokens: with one hypothesis there is no other one for a
  take-back to lose against, and it would only push the greedy choice harder towards finishing a wrong match.

The state of a hypothesis is looked up from its tokens (a dict keyed by the hypothesis), never from its row index, so
beam rows may be reordered between steps. `FireRedAedGenerationMixin.generate(hotwords=...)` and
`FireRedLlmForSpeechSeq2Seq.generate(hotwords=...)` build the processors; without hotwords nothing is built.
"""

from __future__ import annotations

import functools
import math
import numbers
import time
from collections import deque
from collections.abc import Hashable, Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import torch
from transformers import LogitsProcessor
from transformers.utils import logging

logger = logging.get_logger(__name__)

DEFAULT_HOTWORD_SCORE = 2.0
# Lists at least this long say what they cost (info level).
LONG_LIST = 1000


class Hotword(NamedTuple):
    """A phrase and its bonus per matched token (natural-log units, added to the step log-probs).

    A named tuple rather than a dataclass: lists of thousands are hashed on every `generate` call (the trie cache),
    and a tuple hashes in C.
    """

    phrase: str
    score: float


def parse_hotwords(hotwords, default_score: float = DEFAULT_HOTWORD_SCORE) -> list[Hotword]:
    """`["佟健", ("Kubernetes", 3.0), ...]` as `Hotword`s (a repeated phrase keeps its highest score).

    Raises ValueError for an empty phrase, a score that is not a finite positive number, or anything else.
    """
    if isinstance(hotwords, (str, bytes)) or not isinstance(hotwords, Iterable):
        raise ValueError(f"hotwords must be a list of phrases or (phrase, score) pairs, got {hotwords!r}")
    entries = tuple(hotwords)
    try:
        hash(entries)
    except TypeError:  # an unhashable entry (a [phrase, score] list): parsed without the cache
        return list(_parse(entries, default_score))
    return list(_parse_cached(entries, default_score))


@functools.lru_cache(maxsize=256)
def _parse_cached(entries: tuple, default_score: float) -> tuple[Hotword, ...]:
    """`_parse`, remembered: every segment of a recording, and every batch of a run, passes the same list again,
    and parsing 1,000 phrases costs more than a decoding step of a small model."""
    return _parse(entries, default_score)


def _parse(entries: tuple, default_score: float) -> tuple[Hotword, ...]:
    parsed: dict[str, float] = {}
    for entry in entries:
        phrase, score = (entry, default_score) if isinstance(entry, str) else _pair(entry)
        if not isinstance(phrase, str) or not phrase.strip():
            raise ValueError(f"a hotword must be a non-empty string, got {phrase!r}")
        if isinstance(score, bool) or not isinstance(score, numbers.Real) or not math.isfinite(score) or score <= 0:
            raise ValueError(f"the score of hotword {phrase!r} must be a positive number, got {score!r}")
        parsed[phrase.strip()] = max(float(score), parsed.get(phrase.strip(), 0.0))
    return tuple(Hotword(phrase, score) for phrase, score in parsed.items())


def _pair(entry) -> tuple:
    if isinstance(entry, Hotword):
        return entry.phrase, entry.score
    if isinstance(entry, Sequence) and len(entry) == 2:
        return entry[0], entry[1]
    raise ValueError(f"a hotword is a phrase or a (phrase, score) pair, got {entry!r}")


def read_hotwords_file(path: str | Path, default_score: float = DEFAULT_HOTWORD_SCORE) -> list[Hotword]:
    """One phrase a line, with an optional `:score` suffix (`佟健:3.5`); blank lines are skipped."""
    return parse_hotword_lines(Path(path).read_text(encoding="utf-8").splitlines(), str(path), default_score)


def hotword_entries(lines: Iterable[str], source: str) -> list[str | tuple[str, float]]:
    """The hotword-file format (one phrase a line, optional `:score`, blank lines skipped) as `parse_hotwords`
    entries: a phrase, or `(phrase, score)` where the line gives one; errors name `source` and the line."""
    entries: list[str | tuple[str, float]] = []
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line:
            continue
        head, colon, tail = line.rpartition(":")
        if not colon:
            entries.append(line)
            continue
        try:
            entries.append((head.strip(), float(tail)))
        except ValueError:
            raise ValueError(f"{source}:{number}: the score after ':' must be a number, got {tail!r}") from None
    if not entries:
        raise ValueError(f"{source}: no hotwords (every line is blank)")
    return entries


def parse_hotword_lines(
    lines: Iterable[str], source: str, default_score: float = DEFAULT_HOTWORD_SCORE
) -> list[Hotword]:
    """`hotword_entries` parsed, with `default_score` for phrases given without one."""
    return parse_hotwords(hotword_entries(lines, source), default_score)


class PhraseTrie:
    """Aho-Corasick automaton over symbol sequences, with the shallow-fusion scores of each state.

    Node 0 is the root. For node n: `partial[n]` is what the match so far earned (the per-token scores along its
    path); `keep[n]` is the part of it that stays when the match breaks (the deepest complete phrase on its path, or
    one that ends as a suffix of it); `pending = partial - keep` is taken back on a break or at the end.
    """

    def __init__(self, phrases: Sequence[tuple[Sequence[Hashable], float]]):
        self.children: list[dict[Hashable, int]] = [{}]
        self.parent, self.bonus, self.is_end = [0], [0.0], [False]
        for symbols, score in phrases:
            if not symbols:
                raise ValueError("a phrase needs at least one symbol")
            node = 0
            for symbol in symbols:
                child = self.children[node].get(symbol)
                if child is None:
                    child = len(self.children)
                    self.children[node][symbol] = child
                    self.children.append({})
                    self.parent.append(node)
                    self.bonus.append(score)
                    self.is_end.append(False)
                self.bonus[child] = max(self.bonus[child], score)  # a shared prefix earns the higher score
                node = child
            self.is_end[node] = True
        self._link()
        self._delta_rows: dict[tuple[int, int, bool, torch.device], torch.Tensor] = {}

    def _link(self) -> None:
        """Failure links, `partial` and `keep`, breadth first (a failure link always points to a shallower node)."""
        size = len(self.children)
        self.fail, self.partial, self.keep = [0] * size, [0.0] * size, [0.0] * size
        own_keep = [0.0] * size
        queue = deque(self.children[0].values())
        while queue:
            node = queue.popleft()
            parent = self.parent[node]
            self.partial[node] = self.partial[parent] + self.bonus[node]
            own_keep[node] = self.partial[node] if self.is_end[node] else own_keep[parent]
            self.keep[node] = max(own_keep[node], self.keep[self.fail[node]])
            for symbol, child in self.children[node].items():
                fallback = self.fail[node]
                while fallback and symbol not in self.children[fallback]:
                    fallback = self.fail[fallback]
                target = self.children[fallback].get(symbol, 0)
                self.fail[child] = target if target != child else 0
                queue.append(child)

    def __len__(self) -> int:
        return len(self.children)

    def step(self, node: int, symbol: Hashable) -> int:
        """The state after `symbol` (the deepest phrase prefix that ends the hypothesis)."""
        while node and symbol not in self.children[node]:
            node = self.fail[node]
        return self.children[node].get(symbol, 0)

    def walk(self, symbols: Iterable[Hashable], node: int = 0) -> int:
        for symbol in symbols:
            node = self.step(node, symbol)
        return node

    def pending(self, node: int) -> float:
        return self.partial[node] - self.keep[node]

    def delta(self, node: int, symbol: Hashable, take_back: bool = True) -> float:
        """The bonus of appending `symbol` in state `node`."""
        target = self.step(node, symbol)
        if not take_back:
            return self.bonus[target] if target else 0.0
        if symbol in self.children[node]:  # the match goes on
            return self.partial[target] - self.partial[node]
        return self.partial[target] - self.pending(node)  # it breaks; `target` may start a new (suffix) match

    def finish(self, node: int, take_back: bool = True) -> float:
        """The bonus of ending the hypothesis in state `node`: an unfinished match is taken back."""
        return -self.pending(node) if take_back else 0.0

    def delta_row(
        self, node: int, vocab_size: int, end_ids: Sequence[int], take_back: bool, device: torch.device
    ) -> torch.Tensor:
        """`delta(node, t)` for every token id `t < vocab_size` (symbols are token ids), `finish` for `end_ids`.

        Built from one dense row of the root's children (a token that starts a phrase), shifted by what the state
        would lose, plus the few tokens that a deeper state of the failure chain continues; cached per state.
        """
        key = (node, vocab_size, take_back, device)
        row = self._delta_rows.get(key)
        if row is None:
            row = self._root_row(vocab_size, device).clone()
            if take_back:
                row -= self.pending(node)
            deeper, state = set(), node
            while state:  # the failure chain below the root
                deeper.update(self.children[state])
                state = self.fail[state]
            for symbol in deeper:
                if isinstance(symbol, int) and 0 <= symbol < vocab_size:
                    row[symbol] = self.delta(node, symbol, take_back)
            row[list(end_ids)] = self.finish(node, take_back)
            self._delta_rows[key] = row
        return row

    def _root_row(self, vocab_size: int, device: torch.device) -> torch.Tensor:
        """What each token earns from the root (the first token of a phrase), as a dense row."""
        key = (-1, vocab_size, True, device)
        row = self._delta_rows.get(key)
        if row is None:
            row = torch.zeros(vocab_size)
            for symbol, child in self.children[0].items():
                if isinstance(symbol, int) and 0 <= symbol < vocab_size:
                    row[symbol] = self.bonus[child]
            row = self._delta_rows[key] = row.to(device)
        return row


class _HypothesisStates:
    """Each hypothesis's trie state, keyed by (utterance, its tokens): found again after beam rows are reordered,
    computed from the parent hypothesis (one step) when it was seen at the previous step."""

    def __init__(self):
        self._previous: dict[tuple, int] = {}
        self._current: dict[tuple, int] = {}

    def new_step(self) -> None:
        self._previous, self._current = self._current, {}

    def state(self, utterance: int, tokens: tuple, advance, walk) -> int:
        key = (utterance, tokens)
        node = self._current.get(key, self._previous.get(key))
        if node is None:
            parent = self._previous.get((utterance, tokens[:-1])) if tokens else 0
            node = advance(parent, tokens[-1]) if parent is not None and tokens else walk(tokens)
        self._current[key] = node
        return node


def _rows_per_utterance(rows: int, utterances: int) -> int:
    if utterances == 0 or rows % utterances:
        raise ValueError(f"{rows} hypotheses cannot be split over {utterances} utterances' hotword lists")
    return rows // utterances


class HotwordLogitsProcessor(LogitsProcessor):
    """Adds each hypothesis's hotword bonus (token-id tries, one per utterance) to a step's scores.

    `input_ids` are the hypotheses so far, `prompt_length` leading tokens (the decoder start token) excluded; rows are
    grouped by utterance (`num_beams` consecutive rows each), as in the original beam search and transformers'.
    """

    def __init__(self, tries: Sequence[PhraseTrie], end_ids: Sequence[int], take_back: bool, prompt_length: int = 1):
        self.tries, self.end_ids, self.take_back, self.prompt_length = (
            list(tries),
            list(end_ids),
            take_back,
            prompt_length,
        )
        self._states = _HypothesisStates()

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        per_utterance = _rows_per_utterance(input_ids.shape[0], len(self.tries))
        self._states.new_step()
        rows = []
        for row, tokens in enumerate(input_ids[:, self.prompt_length :].tolist()):
            trie = self.tries[row // per_utterance]
            node = self._states.state(row // per_utterance, tuple(tokens), trie.step, trie.walk)
            rows.append(trie.delta_row(node, scores.shape[-1], self.end_ids, self.take_back, scores.device))
        return scores + torch.stack(rows).to(scores.dtype)


class SurfaceHotwordLogitsProcessor(LogitsProcessor):
    """Hotword bonus on the decoded text (character tries), for tokenizers that merge characters (Qwen's BPE).

    A hypothesis's state is the trie state of its decoded text; a candidate token earns what its own text (as the
    tokenizer decodes it alone) earns character by character from there. A token that decodes to an incomplete
    UTF-8 character (a byte piece of a rare Hanzi) earns nothing by itself.
    """

    def __init__(self, tries: Sequence[PhraseTrie], tokenizer, end_ids: Sequence[int], take_back: bool):
        self.tries, self.tokenizer, self.end_ids, self.take_back = list(tries), tokenizer, list(end_ids), take_back
        self._rows: dict[tuple[int, int, int, torch.device], torch.Tensor] = {}
        self._surfaces: list[str] | None = None
        self._by_first: dict[str, list[int]] = {}

    def _index(self, vocab_size: int) -> None:
        """Every token's text, and the tokens by their first character (built once, at the first step)."""
        # Ids past the tokenizer's (the LM head is padded) decode to nothing and keep the default bonus.
        known = min(vocab_size, len(self.tokenizer))
        self._surfaces = self.tokenizer.batch_decode([[token] for token in range(known)]) + [""] * (vocab_size - known)
        for token, text in enumerate(self._surfaces):
            if text and token not in self.end_ids:
                self._by_first.setdefault(text[0], []).append(token)

    def _row(self, utterance: int, node: int, vocab_size: int, device: torch.device) -> torch.Tensor:
        key = (utterance, node, vocab_size, device)
        row = self._rows.get(key)
        if row is None:
            trie = self.tries[utterance]
            row = torch.full((vocab_size,), trie.finish(node, self.take_back))
            chain, state = [node], node
            while state:
                state = trie.fail[state]
                chain.append(state)
            starts = {symbol for state in chain for symbol in trie.children[state]}
            for token in (token for first in starts for token in self._by_first.get(first, ())):
                total, state = 0.0, node
                for char in self._surfaces[token]:
                    total += trie.delta(state, char, self.take_back)
                    state = trie.step(state, char)
                row[token] = total
            for end in self.end_ids:
                row[end] = trie.finish(node, self.take_back)
            row = row.to(device)
            self._rows[key] = row
        return row

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self._surfaces is None:
            self._index(scores.shape[-1])
        per_utterance = _rows_per_utterance(input_ids.shape[0], len(self.tries))
        rows = []
        for row, tokens in enumerate(input_ids.tolist()):
            utterance = row // per_utterance
            # The whole text each step: a merge or a completed UTF-8 character can change its last characters.
            node = self.tries[utterance].walk(self.tokenizer.decode(tokens, skip_special_tokens=True))
            rows.append(self._row(utterance, node, scores.shape[-1], scores.device))
        return scores + torch.stack(rows).to(scores.dtype)


def hotword_lists(hotwords, batch_size: int, default_score: float) -> list[list[Hotword]]:
    """One list of `Hotword`s per utterance: `hotwords` is one list for all, or a list of lists (one per row)."""
    if isinstance(hotwords, (str, bytes)) or not isinstance(hotwords, Sequence):
        raise ValueError(f"hotwords must be a list of phrases (or one list per utterance), got {hotwords!r}")
    per_utterance = bool(hotwords) and all(
        isinstance(entry, (list, tuple)) and not _is_pair(entry) for entry in hotwords
    )
    if not per_utterance:
        shared = parse_hotwords(hotwords, default_score)
        return [shared] * batch_size
    if len(hotwords) != batch_size:
        raise ValueError(f"got {len(hotwords)} hotword lists for a batch of {batch_size} utterances")
    return [parse_hotwords(entry, default_score) for entry in hotwords]


def _is_pair(entry) -> bool:
    return len(entry) == 2 and isinstance(entry[0], str) and isinstance(entry[1], numbers.Real)


def hotwords_given(hotwords, hotword_score) -> bool:
    """Whether `generate` got hotwords (a `hotword_score` without them is a ValueError): nothing is built otherwise."""
    if not hotwords and hotword_score is not None:
        raise ValueError("hotword_score was given without hotwords")
    return bool(hotwords)


def model_tokenizer(model):
    """The tokenizer saved with `model`, loaded once and kept on it: what the AED spells hotwords with, and what the
    LLM decodes hypotheses with to match them, when `generate` gets no `tokenizer=`."""
    if getattr(model, "_fireredasr_tokenizer", None) is None:
        from transformers import AutoTokenizer

        try:
            model._fireredasr_tokenizer = AutoTokenizer.from_pretrained(model.name_or_path)
        except Exception as error:
            raise ValueError(
                f"hotwords need the model's tokenizer, and none could be loaded from {model.name_or_path!r} "
                f"({error}): pass tokenizer=processor.tokenizer"
            ) from error
    return model._fireredasr_tokenizer


def token_tries(lists: list[list[Hotword]], tokenizer) -> list[PhraseTrie]:
    """Token-id tries of each utterance's phrases, tokenized by the model's own tokenizer; a phrase with a piece the
    vocabulary lacks (`<unk>`) is refused, since it could never be produced. The same list (in later calls too,
    e.g. every segment of a recording) reuses its trie and the bonus rows it has built."""
    return [_token_trie(tokenizer, tuple(hotwords)) for hotwords in lists]


@functools.lru_cache(maxsize=64)
def _token_trie(tokenizer, hotwords: tuple[Hotword, ...]) -> PhraseTrie:
    start = time.perf_counter()
    phrases = []
    for hotword in hotwords:
        ids = tokenizer.encode(hotword.phrase, add_special_tokens=False)
        pieces = tokenizer.tokenize(hotword.phrase)
        unknown = [piece for piece, token in zip(pieces, ids, strict=False) if token == tokenizer.unk_token_id]
        if unknown or not ids:
            raise ValueError(
                f"hotword {hotword.phrase!r} cannot be written with the model's vocabulary: "
                f"{unknown or 'no tokens'} map to {tokenizer.unk_token!r}"
            )
        phrases.append((ids, hotword.score))
    return _built(PhraseTrie(phrases), len(hotwords), "token", start)


def character_tries(lists: list[list[Hotword]]) -> list[PhraseTrie]:
    """Character tries of each utterance's phrases (matched on decoded text), reused like `token_tries`'."""
    return [_character_trie(tuple(hotwords)) for hotwords in lists]


@functools.lru_cache(maxsize=64)
def _character_trie(hotwords: tuple[Hotword, ...]) -> PhraseTrie:
    start = time.perf_counter()
    trie = PhraseTrie([(list(hotword.phrase), hotword.score) for hotword in hotwords])
    return _built(trie, len(hotwords), "character", start)


def _built(trie: PhraseTrie, phrases: int, kind: str, start: float) -> PhraseTrie:
    """Says (at info level) what a long list costs: building its trie once, and one cached bonus row per state
    that decoding reaches."""
    if phrases >= LONG_LIST:
        logger.info(
            f"hotwords: {phrases:,} phrases make a {kind} trie of {len(trie):,} states, built in "
            f"{time.perf_counter() - start:.2f} s (once per list); decoding adds one bonus row over the vocabulary "
            "for each state it reaches, kept with the trie for the list's later uses"
        )
    return trie


__all__ = [
    "DEFAULT_HOTWORD_SCORE",
    "Hotword",
    "HotwordLogitsProcessor",
    "PhraseTrie",
    "SurfaceHotwordLogitsProcessor",
    "character_tries",
    "hotword_entries",
    "hotword_lists",
    "hotwords_given",
    "model_tokenizer",
    "parse_hotword_lines",
    "parse_hotwords",
    "read_hotwords_file",
    "token_tries",
]
