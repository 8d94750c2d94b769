"""The synthetic Mandarin corpus: its character set, held-out sentences, reproducibility and `datasets` loading."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest

from tests.audio import requires_espeak
from tools import synthetic_corpus as corpus

HANZI = re.compile(r"^[\u4e00-\u9fff]+$")


def test_inventory_has_300_plus_distinct_readings():
    inventory = corpus.hanzi_inventory()
    assert len(inventory) >= 300
    assert all(HANZI.match(char) and len(char) == 1 for char in inventory)
    # No two characters share a pinyin + tone, so homophones cannot cap accuracy.
    assert len(set(inventory.values())) == len(inventory)
    assert all(re.fullmatch(r"[a-z]+[1-5]", reading) for reading in inventory.values())


def test_words_use_only_inventory_characters():
    inventory = corpus.hanzi_inventory()
    words = corpus.word_list()
    assert len(words) >= 1000
    assert all(2 <= len(word) <= 4 and set(word) <= set(inventory) for word in words)


def test_sentences_are_reproducible_distinct_and_cover_the_inventory():
    first = corpus.make_sentences(2000, seed=3)
    assert first == corpus.make_sentences(2000, seed=3)
    assert first != corpus.make_sentences(2000, seed=4)
    assert len(set(first)) == 2000
    assert all(4 <= len(sentence) <= 12 for sentence in first)
    covered = {char for sentence in first for char in sentence}
    assert covered == set(corpus.hanzi_inventory())


def test_held_out_sentences_never_appear_in_training():
    train = corpus.make_sentences(3000, seed=0, min_chars=2, max_chars=3)
    test = corpus.make_sentences(300, seed=1, min_chars=2, max_chars=3, exclude=set(train))
    assert not set(test) & set(train) and len(set(test)) == 300
    with pytest.raises(ValueError, match="min_chars"):
        corpus.make_sentences(1, seed=0, min_chars=5, max_chars=4)


@requires_espeak
def test_build_corpus_is_an_audiofolder_and_reproducible(tmp_path):
    datasets = pytest.importorskip("datasets")
    first = corpus.build_corpus(tmp_path / "a", num_train=5, num_test=3, seed=7)
    corpus.build_corpus(tmp_path / "b", num_train=5, num_test=3, seed=7)
    for split, count in (("train", 5), ("test", 3)):
        for index in range(count):
            name = f"{split}/{index:06d}.wav"
            digests = {hashlib.sha256((tmp_path / run / name).read_bytes()).hexdigest() for run in ("a", "b")}
            assert len(digests) == 1, f"{name} differs between two runs with the same seed"
    data = datasets.load_dataset("audiofolder", data_dir=str(first))
    assert data["train"].num_rows == 5 and data["test"].num_rows == 3
    assert not set(data["test"]["transcription"]) & set(data["train"]["transcription"])
    example = data["train"].cast_column("audio", datasets.Audio(sampling_rate=16000))[0]
    samples = example["audio"].get_all_samples()
    assert samples.sample_rate == 16000 and samples.data.shape[0] == 1 and samples.data.shape[1] > 8000
    assert HANZI.match(example["transcription"])


@requires_espeak
def test_command_line(tmp_path, capsys):
    assert corpus.main([str(tmp_path), "--num-train", "2", "--num-test", "1", "--seed", "1"]) == 0
    assert "2 training and 1 test" in capsys.readouterr().out
    assert (tmp_path / "train" / "metadata.csv").read_text(encoding="utf-8").startswith("file_name,transcription")


def test_silences_are_drawn_in_range():
    rng = np.random.default_rng(0)
    for _ in range(200):
        silences = corpus.random_silences(rng, "老妈妈旅拥手工")
        assert 0.0 <= silences.lead_s <= 1.0 and 0.0 <= silences.trail_s <= 1.0
        assert len(silences.pauses) <= 3
        places = [index for index, _ in silences.pauses]
        assert places == sorted(set(places)) and all(1 <= i <= 6 for i in places)
        assert all(0.1 <= seconds <= 1.5 for _, seconds in silences.pauses)
    assert corpus.random_silences(rng, "好").pauses == ()  # one character has no boundary


@requires_espeak
def test_silences_and_pauses_are_in_the_audio(tmp_path):
    voice = corpus.Voice(speed=170, pitch=50, variant="", noise_std=0.0)
    plain = corpus.synthesize("老妈妈手工", tmp_path / "plain.wav", voice)
    silences = corpus.Silences(lead_s=0.4, trail_s=0.5, pauses=((3, 0.8),))
    paused = corpus.synthesize("老妈妈手工", tmp_path / "paused.wav", voice, silences=silences)
    assert not paused[: int(0.4 * 16000)].any() and not paused[-int(0.5 * 16000) :].any()  # digital silence
    assert len(paused) > len(plain) + int(1.6 * 16000)
    noisy = corpus.synthesize(
        "老妈妈手工", tmp_path / "noisy.wav", corpus.Voice(170, 50, "", 0.005), silences=silences
    )
    assert 0.003 < float(np.std(noisy[: int(0.4 * 16000)])) < 0.008  # the noise runs through the silence


@requires_espeak
def test_plain_corpus_and_split_selection(tmp_path):
    datasets = pytest.importorskip("datasets")
    corpus.build_corpus(tmp_path / "new", num_train=3, num_test=2, seed=5)
    corpus.build_corpus(tmp_path / "plain", num_train=3, num_test=2, seed=5, plain=True, splits=["test"])
    assert not (tmp_path / "plain" / "train").exists()
    new = datasets.load_dataset("audiofolder", data_dir=str(tmp_path / "new"))
    plain = datasets.load_dataset("audiofolder", data_dir=str(tmp_path / "plain"))
    assert new["test"]["transcription"] == plain["test"]["transcription"]  # the same sentences
    assert {"lead_s", "trail_s", "pauses"} <= set(new["test"].column_names)
    assert not {"lead_s", "trail_s", "pauses"} & set(plain["test"].column_names)
    with pytest.raises(ValueError, match="splits"):
        corpus.build_corpus(tmp_path / "bad", num_train=1, num_test=1, splits=["dev"])


@requires_espeak
def test_word_by_word_recordings_have_the_boundaries_they_claim():
    audio, voice, words = corpus.speak_word_by_word("老妈妈手工", seed=3)
    assert [w for w, _, _ in words] == corpus.split_words("老妈妈手工", set(corpus.word_list()))
    for _, start, end in words:  # speech inside each word's span
        inside = audio[int(start * 16000) : int(end * 16000)]
        assert np.sqrt((inside**2).mean()) > 0.01
    assert all(words[i][2] <= words[i + 1][1] for i in range(len(words) - 1))
    assert words[-1][2] <= len(audio) / 16000
    again, _, _ = corpus.speak_word_by_word("老妈妈手工", seed=3)
    assert np.array_equal(audio, again)
    recordings = [corpus.speak_word_by_word("好", seed=seed) for seed in range(8)]
    for one, voice, ((_, start, _),) in recordings:  # the noise the voice claims runs through the silence
        lead = one[: int(start * 16000)]
        if len(lead) > 1600:
            assert abs(float(np.std(lead)) - voice.noise_std) < 0.001
    assert {voice.noise_std > 0 for _, voice, _ in recordings} == {True, False}
    assert corpus.energy_bounds(np.concatenate([np.zeros(1600), np.ones(800), np.zeros(1600)]).astype(np.float32)) == (
        0.1,
        0.15,
    )


@requires_espeak
def test_word_by_word_corpus_records_word_times(tmp_path, capsys):
    datasets = pytest.importorskip("datasets")
    assert (
        corpus.main([str(tmp_path / "w"), "--num-train", "3", "--num-test", "2", "--seed", "5", "--word-by-word"]) == 0
    )
    data = datasets.load_dataset("audiofolder", data_dir=str(tmp_path / "w"))
    plain, _ = corpus.corpus_sentences(3, 2, seed=5)
    assert data["train"]["transcription"] == plain  # the corpus' sentences, spoken word by word
    row = data["train"][0]
    words = [item.split(":")[0] for item in row["word_times"].split(";")]
    assert "".join(words) == row["transcription"]
    spans = [tuple(map(float, item.split(":")[1].split("-"))) for item in row["word_times"].split(";")]
    assert all(start < end for start, end in spans) and spans == sorted(spans)
    with pytest.raises(ValueError, match="choose one"):
        corpus.build_corpus(tmp_path / "bad", num_train=1, num_test=1, plain=True, word_by_word=True)
    with pytest.raises(SystemExit):
        corpus.main([str(tmp_path / "bad"), "--plain", "--word-by-word"])
    assert "not allowed with" in capsys.readouterr().err
