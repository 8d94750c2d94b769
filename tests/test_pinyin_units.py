"""Pinyin units, the auxiliary CTC targets for training a Mandarin model from scratch."""

from __future__ import annotations

import pytest

from tools.pinyin_units import build_unit_vocab, encode_units, pinyin_units, split_syllable
from tools.synthetic_corpus import hanzi_inventory

pytest.importorskip("pypinyin")


@pytest.mark.parametrize(
    "syllable, units",
    [("zhong1", ["zh", "ong", "T1"]), ("shi4", ["sh", "i", "T4"]), ("er2", ["er", "T2"]), ("a1", ["a", "T1"]),
     ("le5", ["l", "e", "T5"]), ("zai4", ["z", "ai", "T4"])],
)  # fmt: skip
def test_split_syllable(syllable, units):
    assert split_syllable(syllable) == units


@pytest.mark.parametrize("bad", ["", "zhong", "5"])
def test_split_syllable_refuses_a_syllable_without_tone(bad):
    with pytest.raises(ValueError, match="tone number"):
        split_syllable(bad)


def test_units_of_hanzi_latin_digits_and_punctuation():
    assert pinyin_units("你好 AB1，了") == ["n", "i", "T3", "h", "ao", "T3", "A", "B", "1", "，", "l", "e", "T5"]
    assert pinyin_units("") == []


def test_every_corpus_character_reads_as_its_inventory_pinyin():
    for char, syllable in hanzi_inventory().items():
        assert pinyin_units(char) == split_syllable(syllable), char


def test_vocab_ids_and_encoding():
    vocab = build_unit_vocab(["中国", "人"])
    assert vocab == {"<blank>": 0, "<unk>": 1, "T1": 2, "T2": 3, "en": 4, "g": 5, "ong": 6, "r": 7, "uo": 8, "zh": 9}
    assert encode_units("国人", vocab) == [5, 8, 3, 7, 4, 3]
    assert encode_units("好", vocab) == [vocab["<unk>"], vocab["<unk>"], vocab["<unk>"]]  # h, ao, T3 unseen
