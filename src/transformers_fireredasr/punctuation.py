"""Punctuation and timed sentences for transcripts, with a BERT token classifier such as the converted FireRedPunc.

The model tags each token with "no mark" (`O`) or the mark that follows it (`，`, `。`, `？`, `！`). It is called as
FireRedPunc was trained: `[CLS]` + the text's token ids, with no `[SEP]`, and output 0 (the `[CLS]` position)
dropped. An input longer than the model's positions minus one (`max_position_embeddings - 1`) is split into
independent chunks of that length. All inputs of one call, and all chunks, go through the model in batches.

Text rules (applied to the tagged words):
- wordpiece continuations (`##...`) join their word, and a mark is written only after a word's last piece; Latin
  words (and numbers) keep one space between them, Chinese characters none;
- each word is written as it appears in the input, so a token the vocabulary lacks (`[UNK]`) comes back as the
  original characters;
- text is lowercased; a mark between Latin words becomes half-width (`,` `.` `?` `!`) followed by a space, and so does
  the last mark of a sentence that ends in Latin words; "i", "i'm", ... become "I", "I'm", ...; a sentence that starts
  with a Latin word starts with a capital.

Sentences end at `。`, `？` and `！` (and their half-width forms); a comma does not end one, and a sentence may run on
from one segment into the next. With `sentence_max_length`, a longer sentence is broken where the model finds a mark
most likely within the limit (and past half of it, so no short fragment is cut off), and that word gets the most
likely sentence-ending mark; lengths count a Chinese character as 1 and a Latin letter or digit as 1/2. Sentence
times come from word timings (`"timing": "words"`) or, without them, from the segment bounds, shared out over the
segment's words by their length (`"timing": "segments"`).

`upstream_compatible=True` reproduces FireRedASR2S's own post-processing instead: every mark (a comma too) closes a
sentence and capitalises what follows, the rules run on each sentence alone, sentences never cross segments and are
joined without spaces, a mark predicted inside a word is written there, and `sentence_max_length` applies upstream's
greedy cut (any mark at least as likely as none ends a sentence; past the limit, the break goes at the most likely
mark seen so far). Without word timings upstream gives one sentence per segment.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypedDict

import torch

NO_MARK_LABELS = ("O", " ", "")
SENTENCE_END_MARKS = frozenset("。？！.?!")
HALF_WIDTH = {"，": ",", "。": ".", "？": "?", "！": "!"}
_PRONOUN_I = re.compile(r"^i('m|'d|'ve|'ll)?$")
_LATIN = re.compile(r"[a-zA-Z0-9]")
_HALF_LENGTH = re.compile(r"[a-zA-Z0-9']")

Timing = Literal["words", "segments"]


class Sentence(TypedDict):
    """One sentence of a transcript: its punctuated text and its times in seconds."""

    text: str
    start: float
    end: float


class PunctuatedTranscript(TypedDict):
    """A punctuated transcript: the whole text, its sentences, and where their times come from."""

    text: str
    sentences: list[Sentence]
    timing: Timing


@dataclass(frozen=True)
class TimedWord:
    """A word of a transcript (a Chinese character, an English word) and its times in seconds."""

    text: str
    start: float
    end: float


@dataclass(frozen=True)
class TimedSegment:
    """A decoded segment: its text and bounds in seconds, and its timed words when the model could time them."""

    text: str
    start: float
    end: float
    words: tuple[TimedWord, ...] | None = None


def segments_from_chunks(segments: Sequence[Mapping], words: Sequence[Mapping] | None = None) -> list[TimedSegment]:
    """`TimedSegment`s from Whisper-style chunks `{"text", "timestamp": (start, end)}`, as the ASR pipeline returns
    them: the segment pieces and, when given, the timed words, each word going to the segment holding its middle
    (or else the nearest one)."""
    bounds = [(float(chunk["timestamp"][0]), float(chunk["timestamp"][1])) for chunk in segments]
    grouped: list[list[TimedWord]] = [[] for _ in segments]
    for chunk in words or []:
        start, end = (float(value) for value in chunk["timestamp"])
        middle = (start + end) / 2
        distances = [0.0 if a <= middle <= b else min(abs(middle - a), abs(middle - b)) for a, b in bounds]
        if distances:
            grouped[distances.index(min(distances))].append(TimedWord(str(chunk["text"]).strip(), start, end))
    return [
        TimedSegment(str(chunk["text"]), a, b, tuple(grouped[index]) if words is not None else None)
        for index, (chunk, (a, b)) in enumerate(zip(segments, bounds, strict=True))
    ]


def length_units(text: str) -> float:
    """A text's length for `sentence_max_length`: 1 per character, 1/2 per Latin letter, digit or apostrophe, none for
    spaces."""
    return sum(0.5 if _HALF_LENGTH.match(char) else 1.0 for char in text if not char.isspace())


def _is_cjk(text: str) -> bool:
    """Whether `text` is one CJK ideograph (which BERT's tokenizer always splits off as a token of its own)."""
    if len(text) != 1:
        return False
    code = ord(text)
    return any(
        low <= code <= high
        for low, high in (
            (0x4E00, 0x9FFF),
            (0x3400, 0x4DBF),
            (0x20000, 0x2A6DF),
            (0x2A700, 0x2CEAF),
            (0xF900, 0xFAFF),
            (0x2F800, 0x2FA1F),
        )
    )


def _latin(text: str) -> bool:
    return bool(_LATIN.search(text))


def same_word(previous: tuple[int, int], piece: tuple[int, int], text: str) -> bool:
    """Whether two neighbouring tokens of `text` (their character offsets) are pieces of one word, as the punctuator
    groups them: nothing between them, and neither is a Chinese character. A word's mark follows its last piece."""
    return (
        previous[1] == piece[0]
        and not _is_cjk(text[piece[0] : piece[1]])
        and not _is_cjk(text[previous[0] : previous[1]])
    )


@dataclass
class _Word:
    """A word of one model input: its text as written, the indices of its tokens in the input, and its times."""

    text: str
    tokens: list[int]
    start: float | None = None
    end: float | None = None


@dataclass
class _Input:
    """One model input: its token ids and strings, and its words."""

    ids: list[int]
    tokens: list[str]
    pieces: list[str]  # each token's characters in the input (`[UNK]` recovered, `##` dropped)
    words: list[_Word]


class Punctuator:
    """Punctuates transcripts with a token classifier (a converted FireRedPunc, or one fine-tuned the same way).

    `model`: a `BertForTokenClassification` (or any token classifier whose `config.id2label` holds `O` for "no mark"
    and the marks); `tokenizer`: its fast tokenizer (offsets recover the original characters).
    `upstream_compatible`: reproduce FireRedASR2S's post-processing (see the module doc) instead of this one's.
    `sentence_max_length`: break longer sentences (see the module doc); None for no limit.
    `batch_size`: model inputs (chunks) per forward pass.
    """

    def __init__(
        self,
        model,
        tokenizer,
        *,
        upstream_compatible: bool = False,
        sentence_max_length: float | None = None,
        batch_size: int = 64,
    ):
        if sentence_max_length is not None and not sentence_max_length > 0:
            raise ValueError(f"sentence_max_length must be positive or None, got {sentence_max_length!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size!r}")
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError("the punctuator needs a fast tokenizer (it reads the original characters from offsets)")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.upstream_compatible = upstream_compatible
        self.sentence_max_length = sentence_max_length
        self.batch_size = batch_size
        labels = [model.config.id2label[index] for index in range(len(model.config.id2label))]
        none = [index for index, label in enumerate(labels) if label in NO_MARK_LABELS]
        if len(none) != 1:
            raise ValueError(f"the model's labels {labels} should hold exactly one 'no mark' label ('O')")
        self.labels = labels
        self.no_mark = none[0]
        self.sentence_end_ids = [index for index, label in enumerate(labels) if label in SENTENCE_END_MARKS]
        self.max_input_tokens = model.config.max_position_embeddings - 1
        if tokenizer.cls_token_id is None:
            raise ValueError("the tokenizer has no [CLS] token")

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike[str],
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        upstream_compatible: bool = False,
        sentence_max_length: float | None = None,
        batch_size: int = 64,
    ) -> Punctuator:
        """Loads a punctuation model (a folder or Hub id) and its tokenizer. An original FireRedPunc release is
        converted once into the cache and reused (`resolve_model`)."""
        from transformers import AutoModelForTokenClassification, AutoTokenizer

        from .conversion.resolve import resolve_model

        name_or_path = resolve_model(os.fspath(name_or_path))
        model = AutoModelForTokenClassification.from_pretrained(name_or_path, **({"dtype": dtype} if dtype else {}))
        if device is not None:
            model = model.to(device)
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        return cls(
            model,
            tokenizer,
            upstream_compatible=upstream_compatible,
            sentence_max_length=sentence_max_length,
            batch_size=batch_size,
        )

    # --- the model --------------------------------------------------------------------------------------------------

    @torch.inference_mode()
    def tag_logits(self, token_ids: Sequence[Sequence[int]]) -> list[torch.Tensor]:
        """The tag logits (float32, on the CPU) of each input's tokens, `(len(ids), num_labels)` each.

        Each input is `[CLS]` + ids without `[SEP]`; output 0 is dropped; an input over `max_position_embeddings - 1`
        tokens is cut into independent chunks of that length. Chunks of all inputs are batched, longest first.
        """
        limit = self.max_input_tokens
        chunks = [
            (index, ids[start : start + limit])
            for index, ids in enumerate(token_ids)
            for start in range(0, len(ids), limit)
        ]
        order = sorted(range(len(chunks)), key=lambda position: -len(chunks[position][1]))
        outputs: list[torch.Tensor | None] = [None] * len(chunks)
        device = self.model.device
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        for first in range(0, len(order), self.batch_size):
            batch = order[first : first + self.batch_size]
            width = 1 + len(chunks[batch[0]][1])
            input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
            attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, position in enumerate(batch):
                ids = chunks[position][1]
                input_ids[row, 0] = self.tokenizer.cls_token_id
                input_ids[row, 1 : 1 + len(ids)] = torch.as_tensor(list(ids), dtype=torch.long)
                attention_mask[row, : 1 + len(ids)] = 1
            logits = self.model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).logits
            logits = logits.float().cpu()
            for row, position in enumerate(batch):
                outputs[position] = logits[row, 1 : 1 + len(chunks[position][1])]
        parts: list[list[torch.Tensor]] = [[] for _ in token_ids]
        for (owner, _), output in zip(chunks, outputs, strict=True):
            parts[owner].append(output)
        return [torch.cat(part) if part else torch.zeros((0, len(self.labels))) for part in parts]

    def token_probabilities(self, token_ids: Sequence[Sequence[int]]) -> list[torch.Tensor]:
        """The tag probabilities of each input's tokens (softmax of `tag_logits`)."""
        return [logits.softmax(-1) for logits in self.tag_logits(token_ids)]

    # --- tokenization -----------------------------------------------------------------------------------------------

    def _text_inputs(self, texts: Sequence[str]) -> list[_Input]:
        """Model inputs of plain texts: a word is a Chinese character, or a run of tokens with no gap between them."""
        if not texts:
            return []
        encoded = self.tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True)
        inputs = []
        for text, ids, offsets in zip(texts, encoded["input_ids"], encoded["offset_mapping"], strict=True):
            tokens = self.tokenizer.convert_ids_to_tokens(ids)
            pieces = [text[start:end] for start, end in offsets]
            words: list[_Word] = []
            for index in range(len(offsets)):
                if words and same_word(offsets[index - 1], offsets[index], text):
                    words[-1].text += pieces[index]
                    words[-1].tokens.append(index)
                else:
                    words.append(_Word(pieces[index], [index]))
            inputs.append(_Input(list(ids), tokens, pieces, words))
        return inputs

    def _word_inputs(self, segments: Sequence[Sequence[TimedWord]]) -> list[_Input]:
        """Model inputs of timed words: each word is tokenized alone, as upstream does (empty words are left out)."""
        kept = [[word for word in words if word.text.strip()] for words in segments]
        texts = [word.text.strip() for words in kept for word in words]
        encoded = self.tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True) if texts else None
        inputs, position = [], 0
        for words in kept:
            item = _Input([], [], [], [])
            for word in words:
                text = texts[position]
                ids, offsets = encoded["input_ids"][position], encoded["offset_mapping"][position]
                position += 1
                first = len(item.ids)
                item.ids.extend(ids)
                item.tokens.extend(self.tokenizer.convert_ids_to_tokens(ids))
                item.pieces.extend(text[start:end] for start, end in offsets)
                item.words.append(_Word(text, list(range(first, len(item.ids))), word.start, word.end))
            inputs.append(item)
        return inputs

    # --- public API -------------------------------------------------------------------------------------------------

    def punctuate(self, texts: Sequence[str]) -> list[str]:
        """Each text with punctuation added (one batched model pass for all of them)."""
        inputs = self._text_inputs(texts)
        probabilities = self.token_probabilities([item.ids for item in inputs])
        if self.upstream_compatible:
            return [
                _upstream_fix(_upstream_token_text(item, self._argmax_tags(probs), self.labels, self.no_mark))
                for item, probs in zip(inputs, probabilities, strict=True)
            ]
        return [
            self._render(item.words, self._word_tags(item, probs))[0]
            for item, probs in zip(inputs, probabilities, strict=True)
        ]

    def punctuate_segments(self, transcripts: Sequence[Sequence[TimedSegment]]) -> list[PunctuatedTranscript]:
        """Punctuated text and timed sentences of each transcript, given as its decoded segments in time order.

        Each segment is one model input (all segments of all transcripts in one batched pass). A transcript whose
        segments all carry words gets sentence times from the words (`"timing": "words"`); otherwise from the segment
        bounds (`"timing": "segments"`).
        """
        timed = [all(segment.words is not None for segment in segments) for segments in transcripts]
        flat = [(index, segment) for index, segments in enumerate(transcripts) for segment in segments]
        word_items = [segment.words or () for index, segment in flat if timed[index]]
        text_items = [segment.text for index, segment in flat if not timed[index]]
        word_inputs = iter(self._word_inputs(word_items))
        text_inputs = iter(self._text_inputs(text_items))
        inputs = [next(word_inputs) if timed[index] else next(text_inputs) for index, _ in flat]
        probabilities = self.token_probabilities([item.ids for item in inputs])
        per_transcript: list[list[tuple[TimedSegment, _Input, torch.Tensor]]] = [[] for _ in transcripts]
        for (index, segment), item, probs in zip(flat, inputs, probabilities, strict=True):
            per_transcript[index].append((segment, item, probs))
        results: list[PunctuatedTranscript] = []
        for index, parts in enumerate(per_transcript):
            timing: Timing = "words" if timed[index] and transcripts[index] else "segments"
            if not timed[index]:
                for segment, item, _ in parts:
                    _spread_times(item.words, segment.start, segment.end)
            if self.upstream_compatible:
                results.append(self._upstream_transcript(parts, timing))
                continue
            words = [word for _, item, _ in parts for word in item.words]
            tags = [tag for _, item, probs in parts for tag in self._word_tags(item, probs)]
            text, spans = self._render(words, tags)
            sentences = [
                Sentence(text=sentence, start=round(words[a].start, 3), end=round(words[b - 1].end, 3))
                for sentence, (a, b) in spans
            ]
            results.append(PunctuatedTranscript(text=text, sentences=sentences, timing=timing))
        return results

    # --- tags -------------------------------------------------------------------------------------------------------

    def _argmax_tags(self, probs: torch.Tensor) -> list[int]:
        return probs.argmax(-1).tolist() if len(probs) else []

    def _word_tags(self, item: _Input, probs: torch.Tensor) -> list[tuple[int, torch.Tensor | None]]:
        """Each word's tag (its last token's most likely tag) and that token's tag probabilities."""
        tags = []
        for word in item.words:
            if not word.tokens:
                tags.append((self.no_mark, None))
                continue
            row = probs[word.tokens[-1]]
            tags.append((int(row.argmax()), row))
        return tags

    def _break_long_sentences(self, words: list[_Word], tags: list[tuple[int, torch.Tensor | None]]) -> list[int]:
        """The words' marks, with each sentence over `sentence_max_length` broken at the most likely mark within the
        limit (and past half of it): the break gets the most likely sentence-ending mark."""
        marks = [tag for tag, _ in tags]
        limit = self.sentence_max_length
        if limit is None or not self.sentence_end_ids:
            return marks
        start = 0
        while start < len(words):
            total, window = 0.0, []
            end = start
            while end < len(words):
                total += length_units(words[end].text)
                if total > limit and window:
                    break
                window.append((end, total))
                if self.labels[marks[end]] in SENTENCE_END_MARKS:
                    break
                end += 1
            last = window[-1][0]
            if self.labels[marks[last]] in SENTENCE_END_MARKS or last == len(words) - 1:
                start = last + 1
                continue
            candidates = [position for position, length in window if length >= limit / 2] or [last]
            best = max(reversed(candidates), key=lambda position: self._break_score(tags[position][1]))
            row = tags[best][1]
            if row is not None:
                marks[best] = max(self.sentence_end_ids, key=lambda label: float(row[label]))
            else:
                marks[best] = self.sentence_end_ids[0]
            start = best + 1
        return marks

    def _break_score(self, row: torch.Tensor | None) -> float:
        return 0.0 if row is None else 1.0 - float(row[self.no_mark])

    # --- this package's text rules ----------------------------------------------------------------------------------

    def _render(
        self, words: list[_Word], tags: list[tuple[int, torch.Tensor | None]]
    ) -> tuple[str, list[tuple[str, tuple[int, int]]]]:
        """The punctuated text and its sentences (text, (first word, last word + 1))."""
        marks = [None if tag == self.no_mark else self.labels[tag] for tag in self._break_long_sentences(words, tags)]
        texts = [word.text.strip().lower() for word in words]
        latin = [_latin(text) for text in texts]
        spans, begin = [], 0
        for index, mark in enumerate(marks):
            if mark in SENTENCE_END_MARKS or index == len(words) - 1:
                spans.append((begin, index + 1))
                begin = index + 1
        for a, b in spans:
            for index in range(a, b):
                if _PRONOUN_I.match(texts[index]):
                    texts[index] = "I" + texts[index][1:]
            first = next((index for index in range(a, b) if texts[index]), None)
            if first is not None and _starts_latin(texts[first]):
                texts[first] = texts[first][0].upper() + texts[first][1:]
            for index in range(a, b):
                mark = marks[index]
                if mark not in HALF_WIDTH or not _ends_latin(texts[index]):
                    continue
                following = texts[index + 1] if index + 1 < len(texts) else None
                if following is not None and _starts_latin(following):
                    marks[index] = HALF_WIDTH[mark]
                elif (following is None or mark in SENTENCE_END_MARKS or index == b - 1) and (
                    index == a or latin[index - 1]
                ):
                    marks[index] = HALF_WIDTH[mark]
        pieces = []
        for index, text in enumerate(texts):
            if index:
                previous = marks[index - 1]
                if previous is not None:
                    separator = " " if previous.isascii() else ""
                else:
                    separator = " " if latin[index - 1] and latin[index] else ""
                pieces.append(separator)
            pieces.append(text + (marks[index] or ""))
        starts, position = [], 0
        for piece in pieces:
            starts.append(position)
            position += len(piece)
        text = "".join(pieces)
        # Word i is pieces[2 * i] (pieces[2 * i - 1] is the separator before it).
        sentences = [(text[starts[2 * a] : starts[2 * b - 2] + len(pieces[2 * b - 2])], (a, b)) for a, b in spans]
        return text, sentences

    # --- upstream's post-processing ---------------------------------------------------------------------------------

    def _upstream_transcript(
        self, parts: list[tuple[TimedSegment, _Input, torch.Tensor]], timing: Timing
    ) -> PunctuatedTranscript:
        sentences: list[Sentence] = []
        for segment, item, probs in parts:
            if timing == "segments":
                text = _upstream_fix(_upstream_token_text(item, self._argmax_tags(probs), self.labels, self.no_mark))
                if text:
                    sentences.append(Sentence(text=text, start=round(segment.start, 3), end=round(segment.end, 3)))
                continue
            if self.sentence_max_length is not None and len(probs) > self.sentence_max_length:
                tags = _upstream_limited_tags(item, probs, self.sentence_max_length, self.no_mark)
            else:
                tags = self._argmax_tags(probs)
            found = list(_upstream_word_sentences(item, tags, self.labels, self.no_mark))
            for number, (text, start, end) in enumerate(found):
                # Upstream stretches a segment's first and last sentences to the segment's bounds.
                start = segment.start if number == 0 else start
                end = segment.end if number == len(found) - 1 else end
                sentences.append(Sentence(text=_upstream_fix(text), start=round(start, 3), end=round(end, 3)))
        return PunctuatedTranscript(text="".join(s["text"] for s in sentences), sentences=sentences, timing=timing)


def _latin_letter(char: str) -> bool:
    """Whether `char` is a letter of the Latin script (accented ones too)."""
    return char.isalpha() and (char.isascii() or unicodedata.name(char, "").startswith("LATIN"))


def _starts_latin(text: str) -> bool:
    return bool(text) and _latin_letter(text[0])


def _ends_latin(text: str) -> bool:
    return bool(text) and (_latin_letter(text[-1]) or text[-1] == "'")


def _spread_times(words: list[_Word], start: float, end: float) -> None:
    """Gives words without times a share of `start`-`end` in proportion to their length."""
    lengths = [max(length_units(word.text), 0.5) for word in words]
    total, position = sum(lengths) or 1.0, 0.0
    for word, length in zip(words, lengths, strict=True):
        word.start = start + (end - start) * position / total
        position += length
        word.end = start + (end - start) * position / total


def _upstream_token_text(item: _Input, tags: list[int], labels: list[str], no_mark: int) -> str:
    """Upstream's text of tagged tokens: a mark after any token (even inside a word), a space between two Latin tokens
    when the first has no mark."""
    text = ""
    for index, piece in enumerate(item.pieces):
        if index and not item.tokens[index].startswith("##"):
            if _latin(piece) and _latin(item.pieces[index - 1]) and tags[index - 1] == no_mark:
                text += " "
        text += piece.lower() + ("" if tags[index] == no_mark else labels[tags[index]])
    return text.replace("  ", " ")


def _upstream_word_sentences(
    item: _Input, tags: list[int], labels: list[str], no_mark: int
) -> Iterable[tuple[str, float, float]]:
    """Upstream's sentences of timed words: each word takes its last token's tag, and any mark closes a sentence."""
    text, start, end, previous, previous_tag = "", None, None, "", no_mark
    for word in item.words:
        start = word.start if start is None else start
        end = word.end
        tag = tags[word.tokens[-1]] if word.tokens else no_mark
        piece = word.text.lower()
        if _latin(piece) and _latin(previous) and previous_tag == no_mark:
            piece = " " + piece
        if tag == no_mark:
            text += piece
        else:
            yield (text + piece + labels[tag]).replace("  ", " "), start, end
            text, start = "", None
        previous, previous_tag = piece, tag
    if text:
        yield text, start, end


def _upstream_limited_tags(item: _Input, probs: torch.Tensor, limit: float, no_mark: int) -> list[int]:
    """Upstream's `sentence_max_length` tagging: walking the tokens, a sentence ends at the first token whose mark is
    at least as likely as no mark; when the next token would pass the limit, it ends instead at the most likely mark
    seen so far. Every other token gets no mark; a sentence's last token gets its most likely mark."""
    tags: list[int] = []
    count = len(probs)
    left = 0
    while left < count:
        total, best, best_index, right, token_length = 0.0, -1.0, -1, left, 0.0
        while right < count:
            token_length = length_units(item.pieces[right])
            if total + token_length > limit and best >= 0:
                break
            no = float(probs[right][no_mark])
            if 1.0 - no >= best:
                best, best_index = 1.0 - no, right
            total += token_length
            right += 1
            if 1.0 - no >= no:
                break
        right = right - 1 if right >= count else best_index
        tags.extend([no_mark] * (right - left))
        marks = [index for index in range(len(probs[right])) if index != no_mark]
        tags.append(max(marks, key=lambda index: (float(probs[right][index]), -index)))
        left = right + 1
    return tags


_UPSTREAM_MARKS = (("，", ","), ("。", "."), ("？", "?"), ("！", "!"))
_UPSTREAM_PRONOUNS = ("i", "i'm", "i'd", "i've", "i'll")


def _upstream_fix(text: str) -> str:
    """Upstream's rule pass on one text (a sentence, or a whole text without times): lowercase; a full-width mark
    between two Latin letters, after a leading Latin word, or closing a text that ends in a space and a Latin word
    becomes half-width; "i" and its contractions are capitalised between spaces or at the start; the first letter and
    a letter after a sentence-ending mark and whitespace are capitalised."""
    text = text.lower()
    for full, half in _UPSTREAM_MARKS:
        text = re.sub(f"([a-z]){full}([a-z])", rf"\1{half} \2", text)
    for full, half in _UPSTREAM_MARKS:
        text = re.sub(f"^([a-z]+){full}", rf"\1{half}", text)
    for full, half in _UPSTREAM_MARKS:
        text = re.sub(f"( [a-zA-Z']+){full}$", rf"\1{half}", text)
    for pronoun in _UPSTREAM_PRONOUNS:
        capital = "I" + pronoun[1:]
        if text.startswith(pronoun + " "):
            text = capital + text[len(pronoun) :]
    for pronoun in _UPSTREAM_PRONOUNS:
        text = text.replace(f" {pronoun} ", f" {'I' + pronoun[1:]} ")
    if text[:1].isascii() and text[:1].islower():
        text = text[0].upper() + text[1:]
    return re.sub(r"([.!?。？！])\s+([a-z])", lambda match: f"{match.group(1)} {match.group(2).upper()}", text)


__all__ = [
    "HALF_WIDTH",
    "SENTENCE_END_MARKS",
    "PunctuatedTranscript",
    "Punctuator",
    "Sentence",
    "TimedSegment",
    "TimedWord",
    "length_units",
    "segments_from_chunks",
]
