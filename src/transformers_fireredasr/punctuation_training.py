"""What `Trainer` needs to fine-tune a punctuation model (a converted FireRedPunc, or any `BertForTokenClassification`
whose labels are `O` and the marks) on your own punctuated text: training examples shaped as the model is called, and
F1 per mark as the metric. Batches are padded by transformers' `DataCollatorForTokenClassification`.

An example is what `punctuation.Punctuator` feeds the model: `[CLS]` + the unpunctuated text's token ids, with no
`[SEP]`, cut into chunks of at most the model's positions minus one. Each token's label is the mark written after it
(`O` for none); the `[CLS]` position and the pieces inside a word are labelled -100, so they are not trained, since
the punctuator reads a word's mark from its last piece. The text is prepared as a recogniser writes it: lowercased,
with the marks removed, spaces kept only between Latin words, and other punctuation (quotes, brackets, `、`)
dropped. Half-width marks count as their full-width forms, except inside numbers and names (`3.5`, `1,000`,
`www.example.com`); `；` and `：` count as commas; of several marks in a row the strongest is kept (`？` over `！`
over `。` over `，`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

from .punctuation import same_word

MARKS = ("，", "。", "？", "！")
LABELS = ("O", *MARKS)
_STRENGTH = {"，": 0, "。": 1, "！": 2, "？": 3}  # of several marks in a row, the strongest is kept
_MARK_OF = {
    "，": "，",
    "；": "，",
    "：": "，",
    "。": "。",
    "？": "？",
    "！": "！",
    ",": "，",
    ";": "，",
    ":": "，",
    ".": "。",
    "?": "？",
    "!": "！",
}
_INSIDE_NUMBERS_AND_NAMES = ".,:"  # half-width marks that may belong to a token: 3.5, 1,000, 10:30, a.com
_LATIN_OR_DIGIT = re.compile(r"[0-9a-zA-Z]")
IGNORED = -100


def _latin(char: str) -> bool:
    return bool(_LATIN_OR_DIGIT.match(char))


def split_marks(text: str) -> tuple[str, dict[int, str]]:
    """The text as a recogniser writes it (see the module doc), and the mark after each character that has one:
    `{index in the plain text: mark}`."""
    plain: list[str] = []
    marks: dict[int, str] = {}
    pending_space = False
    for position, char in enumerate(text):
        mark = _MARK_OF.get(char)
        if mark is not None and char in _INSIDE_NUMBERS_AND_NAMES:
            before = text[position - 1] if position else ""
            after = text[position + 1] if position + 1 < len(text) else ""
            if _latin(before) and _latin(after):
                mark = None  # part of a number or a name: kept as written
        if mark is not None:
            if plain:
                last = len(plain) - 1
                if last not in marks or _STRENGTH[mark] > _STRENGTH[marks[last]]:
                    marks[last] = mark
            pending_space = True
            continue
        apostrophe = char == "'" and plain and _latin(plain[-1]) and _latin(text[position + 1 : position + 2] or " ")
        other = unicodedata.category(char)[0] in "PSZC" and char not in ".,:" and not apostrophe
        if char.isspace() or other:
            pending_space = True  # a space, or punctuation this model does not write: at most a word boundary
            continue
        if pending_space and plain and _latin(plain[-1]) and _latin(char):
            plain.append(" ")
        pending_space = False
        plain.append(char.lower())
    # A space appended before a character moved no index that a mark points at: marks sit on kept characters.
    return "".join(plain), marks


def punctuation_examples(
    texts: Iterable[str], tokenizer, label2id: Mapping[str, int], max_tokens: int
) -> list[dict[str, list[int]]]:
    """`input_ids`, `attention_mask` and `labels` for each punctuated text, cut into chunks of at most `max_tokens`
    tokens after `[CLS]` (the model's `max_position_embeddings - 1`, or fewer to train on shorter pieces).

    Texts left empty once prepared are skipped. Raises ValueError for a label the model lacks."""
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens!r}")
    missing = [label for label in LABELS if label not in label2id]
    if missing:
        raise ValueError(f"the model has no label for {', '.join(missing)} (its labels: {', '.join(label2id)})")
    if not getattr(tokenizer, "is_fast", False) or tokenizer.cls_token_id is None:
        raise ValueError("punctuation examples need a fast tokenizer with a [CLS] token")
    examples = []
    for text in texts:
        plain, marks = split_marks(text)
        if not plain:
            continue
        encoded = tokenizer(plain, add_special_tokens=False, return_offsets_mapping=True)
        offsets = encoded["offset_mapping"]
        labels = []
        for index, (_, end) in enumerate(offsets):
            ends_word = index + 1 == len(offsets) or not same_word(offsets[index], offsets[index + 1], plain)
            labels.append(label2id[marks.get(end - 1, "O")] if ends_word else IGNORED)
        ids = encoded["input_ids"]
        for start in range(0, len(ids), max_tokens):
            chunk = [tokenizer.cls_token_id, *ids[start : start + max_tokens]]
            examples.append(
                {
                    "input_ids": chunk,
                    "attention_mask": [1] * len(chunk),
                    "labels": [IGNORED, *labels[start : start + max_tokens]],
                }
            )
    return examples


def mark_scores(predictions: np.ndarray, labels: np.ndarray, id2label: Mapping[int, str]) -> dict[str, float]:
    """Precision, recall and F1 (in percent) of each mark over the labelled positions, and their micro average over
    all marks (`f1`, `precision`, `recall`): a mark counts as right only where the text has that mark."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    if predictions.shape != labels.shape:
        raise ValueError(f"predictions {predictions.shape} and labels {labels.shape} differ in shape")
    kept = labels != IGNORED
    predicted, wanted = predictions[kept], labels[kept]
    scores: dict[str, float] = {}
    totals = np.zeros(3)
    for index, label in sorted(id2label.items()):
        if label == "O":
            continue
        hits = float(np.sum((predicted == index) & (wanted == index)))
        counts = np.array([hits, float(np.sum(predicted == index)), float(np.sum(wanted == index))])
        totals += counts
        scores.update(_prf(counts, f"_{label}"))
    scores.update(_prf(totals, ""))
    return scores


def _prf(counts: np.ndarray, suffix: str) -> dict[str, float]:
    hits, predicted, wanted = counts
    precision = 100 * hits / predicted if predicted else 0.0
    recall = 100 * hits / wanted if wanted else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {f"precision{suffix}": precision, f"recall{suffix}": recall, f"f1{suffix}": f1}


def punctuation_metrics(id2label: Mapping[int, str]) -> Callable:
    """A `compute_metrics` for `Trainer`: `mark_scores` of the argmax tags."""

    def compute(evaluation) -> dict[str, float]:
        logits, labels = evaluation.predictions, evaluation.label_ids
        if isinstance(logits, tuple):
            logits = logits[0]
        return mark_scores(np.argmax(logits, axis=-1), labels, id2label)

    return compute


def read_punctuated_lines(paths: Sequence[str]) -> list[str]:
    """The non-empty lines of UTF-8 text files, one training text each."""
    lines = []
    for path in paths:
        with open(path, encoding="utf-8") as file:
            lines.extend(line.strip() for line in file if line.strip())
    return lines


__all__ = [
    "LABELS",
    "MARKS",
    "mark_scores",
    "punctuation_examples",
    "punctuation_metrics",
    "read_punctuated_lines",
    "split_marks",
]
