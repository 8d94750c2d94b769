"""Pinyin units (initial, final, tone of each Hanzi) as auxiliary CTC targets for training Mandarin from scratch.

Why: a new model trained on 400 characters with CTC or attention alone sits at the unigram entropy for thousands of
steps (each character is rare, so none is detected well enough to start aligning). About 60 pinyin units cover every
syllable and each is frequent, so a CTC loss on them aligns the encoder within a few hundred steps, and the
character decoder then learns on top of it. The units are a training aid only: the released model still outputs
characters. Readings come from `pypinyin` (the `train` extra); characters that are not Hanzi are their own unit.
"""

from __future__ import annotations

from collections.abc import Iterable

# Longest first, so that "zh" wins over "z". Syllables without one of these (a, e, o, er, ...) have no initial.
PINYIN_INITIALS = ("zh", "ch", "sh", "b", "p", "m", "f", "d", "t", "n", "l", "g", "k", "h", "j", "q", "x", "r", "z", "c", "s", "y", "w")  # fmt: skip
BLANK_UNIT = "<blank>"
UNKNOWN_UNIT = "<unk>"


def split_syllable(syllable: str) -> list[str]:
    """`"zhong1"` -> `["zh", "ong", "T1"]`: initial (if any), final, tone (`T1`..`T5`, 5 = neutral)."""
    if len(syllable) < 2 or not syllable[-1].isdigit():
        raise ValueError(f"expected a pinyin syllable with a tone number, got {syllable!r}")
    base, tone = syllable[:-1], syllable[-1]
    initial = next((candidate for candidate in PINYIN_INITIALS if base.startswith(candidate)), "")
    final = base[len(initial) :]
    return ([initial] if initial else []) + ([final] if final else []) + [f"T{tone}"]


def pinyin_units(text: str) -> list[str]:
    """The pinyin units of a transcript, in order: three (or two) per Hanzi, one per other non-space character."""
    try:
        from pypinyin import Style, lazy_pinyin
    except ImportError as err:
        raise ImportError("pinyin CTC targets need pypinyin: pip install pypinyin (or the `train` extra)") from err

    units: list[str] = []
    for piece in lazy_pinyin(text, style=Style.TONE3, neutral_tone_with_five=True, errors=list):
        if len(piece) > 1 and piece[-1].isdigit() and piece[:-1].isascii() and piece[:-1].isalpha():
            units.extend(split_syllable(piece))
        else:  # not Hanzi (Latin letters, digits, punctuation): one unit per character
            units.extend(char for char in piece if not char.isspace())
    return units


def build_unit_vocab(texts: Iterable[str]) -> dict[str, int]:
    """Unit -> id for the CTC head: `<blank>` 0, `<unk>` 1, then every unit of `texts` in sorted order."""
    units = sorted({unit for text in texts for unit in pinyin_units(text)})
    return {BLANK_UNIT: 0, UNKNOWN_UNIT: 1, **{unit: index + 2 for index, unit in enumerate(units)}}


def encode_units(text: str, vocab: dict[str, int]) -> list[int]:
    """The unit ids of `text` (`<unk>` for a unit the vocabulary lacks)."""
    return [vocab.get(unit, vocab[UNKNOWN_UNIT]) for unit in pinyin_units(text)]


__all__ = ["BLANK_UNIT", "build_unit_vocab", "encode_units", "pinyin_units", "split_syllable"]
