"""Hotwords (shallow fusion on an Aho-Corasick phrase trie): the automaton and its scores without a model, then the
AED's decoding modes, the pipeline and the command line on the bundled demo model, and the LLM's text matching."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
import torch

import transformers_fireredasr
from tests.test_aed_parity import load
from transformers_fireredasr import cli
from transformers_fireredasr.hotwords import (
    HotwordLogitsProcessor,
    PhraseTrie,
    SurfaceHotwordLogitsProcessor,
    _parse_cached,
    character_tries,
    hotword_lists,
    parse_hotword_lines,
    parse_hotwords,
    read_hotwords_file,
)

DEMO = transformers_fireredasr.demo_model_dir()
EOS = 9


def trie_of(*phrases: str, score: float = 1.0) -> PhraseTrie:
    return PhraseTrie([(list(phrase), score) for phrase in phrases])


def total_bonus(trie: PhraseTrie, text: str, take_back: bool = True, end: bool = True) -> float:
    """What a hypothesis spelling `text` earns, step by step, plus the end (`<eos>`) when `end`."""
    total, node = 0.0, 0
    for char in text:
        total += trie.delta(node, char, take_back)
        node = trie.step(node, char)
    return total + (trie.finish(node, take_back) if end else 0.0)


def test_aho_corasick_on_he_she_shell():
    trie = trie_of("he", "she", "shell")
    she, he, shel = trie.walk("she"), trie.walk("he"), trie.walk("shel")
    assert trie.fail[she] == he  # "she" falls back to its suffix "he"
    assert trie.fail[trie.walk("sh")] == trie.walk("h")
    assert trie.walk("ushe") == she and trie.walk("ushel") == shel
    assert trie.walk("shex") == 0 and trie.walk("hshe") == she
    assert trie.keep[she] == trie.partial[she] == 3.0  # a complete phrase keeps what it earned
    assert trie.keep[shel] == 3.0 and trie.pending(shel) == 1.0  # "she" is complete inside "shel"
    assert trie.keep[trie.walk("sh")] == 0.0


@pytest.mark.parametrize("text", ["shx", "shel", "sh", "s"])
def test_an_unfinished_or_diverging_match_wins_nothing(text):
    trie = trie_of("shell", score=2.0)
    assert total_bonus(trie, text) == pytest.approx(0.0)
    assert total_bonus(trie, text + "y" * 3) == pytest.approx(0.0)


def test_complete_phrases_keep_their_bonus():
    trie = trie_of("he", "she", "shell", score=2.0)
    assert total_bonus(trie, "shell") == pytest.approx(10.0)
    assert total_bonus(trie, "shelx") == pytest.approx(6.0)  # "she" was complete; the "l" is taken back
    assert total_bonus(trie, "xhex") == pytest.approx(4.0)
    assert total_bonus(trie, "ahe", end=False) == pytest.approx(4.0)


def test_greedy_has_no_take_back():
    trie = trie_of("shell", score=2.0)
    assert total_bonus(trie, "shx", take_back=False) == pytest.approx(4.0)
    assert trie.finish(trie.walk("sh"), take_back=False) == 0.0


def test_failure_links_start_a_new_match_after_a_break():
    trie = trie_of("abd", "bc", score=1.0)
    assert total_bonus(trie, "abc") == pytest.approx(2.0)  # "ab" is taken back, "bc" earns its two tokens


def token_trie() -> PhraseTrie:
    return PhraseTrie([([1, 2, 3], 2.0), ([4, 5], 1.0)])


def test_the_bonus_follows_the_hypothesis_not_the_row():
    """Rows are reordered between steps (beam search): each row's bonus is its hypothesis's, wherever it moved."""
    processor = HotwordLogitsProcessor([token_trie(), token_trie()], [EOS], take_back=True)
    scores = torch.zeros(6, 10)
    step_1 = torch.tensor([[0, 1], [0, 4], [0, 7], [0, 1], [0, 1], [0, 8]])
    processor(step_1, scores)
    step_2 = torch.tensor([[0, 1, 2], [0, 4, 5], [0, 7, 7], [0, 1, 6], [0, 1, 2], [0, 8, 4]])
    bonus = processor(step_2, scores)
    order = torch.tensor([2, 0, 1, 5, 3, 4])  # rows permuted within each utterance's beams
    fresh = HotwordLogitsProcessor([token_trie(), token_trie()], [EOS], take_back=True)
    fresh(step_1[order], scores)
    assert torch.equal(fresh(step_2[order], scores), bonus[order])
    assert bonus[0, 3] == 2.0 and bonus[0, EOS] == -4.0 and bonus[0, 8] == -4.0  # "1 2": go on, or lose 4
    assert bonus[1, 1] == 2.0 and bonus[1, EOS] == 0.0  # "4 5" is complete; "1" starts a new match
    assert bonus[3, 1] == 2.0 and bonus[3, EOS] == 0.0  # "1 6" broke the match: nothing pending


def test_per_utterance_lists_and_pairs():
    lists = hotword_lists([["佟健"], [("库", 3.0), "库伯"]], batch_size=2, default_score=2.0)
    assert [[(h.phrase, h.score) for h in row] for row in lists] == [[("佟健", 2.0)], [("库", 3.0), ("库伯", 2.0)]]
    shared = hotword_lists(["佟健", ("庞清", 1.5)], batch_size=3, default_score=2.0)
    assert len(shared) == 3 and shared[0] is shared[2]
    with pytest.raises(ValueError, match="got 1 hotword lists for a batch of 2"):
        hotword_lists([["佟健"]], batch_size=2, default_score=2.0)
    for bad, message in [([""], "non-empty string"), ([("a", -1.0)], "positive number"), ("佟健", "a list")]:
        with pytest.raises(ValueError, match=message):
            parse_hotwords(bad)


def test_hotword_file(tmp_path):
    path = tmp_path / "hotwords.txt"
    path.write_text("佟健\n\n庞清:3.5\nratio 1:2:4\n", encoding="utf-8")
    assert [(h.phrase, h.score) for h in read_hotwords_file(path, 2.0)] == [
        ("佟健", 2.0), ("庞清", 3.5), ("ratio 1:2", 4.0),
    ]  # fmt: skip
    path.write_text("佟健:high\n", encoding="utf-8")
    with pytest.raises(ValueError, match="hotwords.txt:1: the score after ':' must be a number"):
        read_hotwords_file(path)
    path.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(ValueError, match="no hotwords"):
        read_hotwords_file(path)
    assert parse_hotword_lines(["佟健:3", "", "库伯"], "form field hotwords", 2.0) == [("佟健", 3.0), ("库伯", 2.0)]
    with pytest.raises(ValueError, match="form field hotwords:2: the score"):
        parse_hotword_lines(["佟健", "库伯:x"], "form field hotwords")


def test_a_repeated_list_is_parsed_once():
    """Every segment and batch passes the same list again; parsing 1,000 phrases each time cost more than the
    biasing itself on the demo model."""
    phrases = [f"词{i}" for i in range(1000)]
    first = parse_hotwords(phrases)
    hits = _parse_cached.cache_info().hits
    assert parse_hotwords(list(phrases)) == first and _parse_cached.cache_info().hits == hits + 1
    assert parse_hotwords([["佟健", 3.0]]) == [("佟健", 3.0)]  # an unhashable pair is parsed all the same


@pytest.fixture(scope="module")
def demo():
    from transformers_fireredasr.audio_io import load_waveform

    model, processor = load(DEMO)
    audio = load_waveform(str(Path(__file__).resolve().parents[1] / "examples/audio/held_out_1.wav"))
    return model, processor, processor(audio, sampling_rate=16000, return_tensors="pt")


# The demo says 时人目飞快网产 for this clip of 时人目飞快望产 (a tone error); told the phrase, it gets it right.
WRONG, RIGHT = "时人目飞快网产", "时人目飞快望产"


@pytest.mark.parametrize(
    "mode",
    [{}, {"original_beam_search": False}, {"num_beams": 1, "hotword_score": 3.0}],
    ids=["original_beam", "transformers_beam", "greedy"],
)
def test_a_listed_phrase_fixes_the_transcript_in_every_mode(demo, mode):
    model, processor, inputs = demo
    plain = processor.batch_decode(model.generate(**inputs, **{k: v for k, v in mode.items() if "hot" not in k}))
    assert processor.tokenizer.decode(processor.tokenizer.encode(WRONG, add_special_tokens=False)) == WRONG
    assert [text.replace("<sos>", "").replace("<eos>", "") for text in plain] == [WRONG]
    ids = model.generate(**inputs, hotwords=["快望产"], tokenizer=processor.tokenizer, **mode)
    assert processor.batch_decode(ids, skip_special_tokens=True) == [RIGHT]


def test_without_hotwords_nothing_is_built_and_nothing_changes(demo, monkeypatch):
    model, processor, inputs = demo
    expected = model.generate(**inputs)

    def refuse(*args, **kwargs):
        raise AssertionError("a hotword processor was built")

    monkeypatch.setattr(HotwordLogitsProcessor, "__init__", refuse)
    for kwargs in ({}, {"hotwords": None}, {"hotwords": []}):
        assert torch.equal(model.generate(**inputs, **kwargs), expected)


def test_phrases_are_tokenized_by_the_models_own_tokenizer_by_default(demo):
    model, processor, inputs = demo
    ids = model.generate(**inputs, hotwords=["快望产"])  # no tokenizer=: the one saved with the model
    assert processor.batch_decode(ids, skip_special_tokens=True) == [RIGHT]


def test_bad_hotwords_are_refused(demo):
    model, processor, inputs = demo
    with pytest.raises(
        ValueError, match=r"hotword '龘龘' cannot be written with the model's vocabulary: \['龘', '龘'\]"
    ):
        model.generate(**inputs, hotwords=["龘龘"], tokenizer=processor.tokenizer)
    with pytest.raises(ValueError, match="hotword_score was given without hotwords"):
        model.generate(**inputs, hotword_score=3.0)
    with pytest.raises(ValueError, match="positive number"):
        model.generate(**inputs, hotwords=[("快望产", float("nan"))], tokenizer=processor.tokenizer)


def test_ten_thousand_phrases_still_decode_and_say_what_they_cost(demo, caplog):
    """A very long list works, and says (at info level) what its trie cost; speed is in benchmarks/RESULTS.md."""
    import itertools

    model, processor, inputs = demo
    vocabulary = [token for token in processor.tokenizer.get_vocab() if len(token) == 1 and "\u4e00" <= token]
    phrases = ["".join(pair) for pair in itertools.islice(itertools.permutations(vocabulary, 2), 10_000)]
    assert len(phrases) == 10_000
    with caplog.at_level(logging.INFO, logger="transformers_fireredasr.hotwords"):
        ids = model.generate(**inputs, hotwords=phrases + ["快望产"], tokenizer=processor.tokenizer)
    assert processor.batch_decode(ids, skip_special_tokens=True)[0].endswith("望产")
    assert re.search(r"hotwords: 10,001 phrases make a token trie of [\d,]+ states, built in \d+\.\d\d s", caplog.text)


def test_pipeline_and_command_line_take_hotwords(demo, tmp_path, capsys):
    from transformers import pipeline

    clip = str(Path(__file__).resolve().parents[1] / "examples/audio/held_out_1.wav")
    asr = pipeline("automatic-speech-recognition", model=str(DEMO))
    assert asr(clip)["text"] == WRONG
    assert asr(clip, hotwords=["快望产"])["text"] == RIGHT
    assert asr(clip, generate_kwargs={"hotwords": [("快望产", 2.0)]})["text"] == RIGHT
    with pytest.raises(ValueError, match=r"not used by the model: \['hotword'\]"):
        asr(clip, hotword=["快望产"])  # a typo is an error
    listing = tmp_path / "hotwords.txt"
    listing.write_text("快望产:2.5\n", encoding="utf-8")
    assert cli.main([clip, "--no-progress", "--hotwords", str(listing)]) == 0
    assert capsys.readouterr().out.strip() == RIGHT
    with pytest.raises(SystemExit):
        cli.main([clip, "--no-progress", "--hotword-score", "3"])
    assert "hotword_score was given without hotwords" in capsys.readouterr().err


def test_the_llm_matches_hotwords_on_decoded_text(converted_llm_dir, speech):
    """Mechanism only (no trained LLM exists offline): a random tiny Qwen2 with the real Qwen2 tokenizer."""
    from transformers_fireredasr import FireRedLlmForSpeechSeq2Seq, FireRedLlmProcessor

    model = FireRedLlmForSpeechSeq2Seq.from_pretrained(converted_llm_dir).eval()
    processor = FireRedLlmProcessor.from_pretrained(converted_llm_dir)
    inputs = processor([speech[0].audio, speech[3].audio], sampling_rate=16000)
    plain = model.generate(**inputs, max_new_tokens=6)
    assert torch.equal(model.generate(**inputs, max_new_tokens=6, hotwords=[]), plain)
    texts = processor.batch_decode(plain, skip_special_tokens=True)
    assert all("佟健" not in text for text in texts)
    for kwargs in ({}, {"num_beams": 1, "repetition_penalty": 1.0}):
        biased = model.generate(
            **inputs, max_new_tokens=6, hotwords=[("佟健", 40.0)], tokenizer=processor.tokenizer, **kwargs
        )
        assert all("佟健" in text for text in processor.batch_decode(biased, skip_special_tokens=True)), kwargs
    per_row = model.generate(
        **inputs, max_new_tokens=6, hotwords=[[("佟健", 40.0)], []], tokenizer=processor.tokenizer
    )
    per_row_texts = processor.batch_decode(per_row, skip_special_tokens=True)
    assert "佟健" in per_row_texts[0] and per_row_texts[1] == texts[1]


def test_surface_matching_scores_whatever_tokenization_spells_the_phrase(converted_llm_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(converted_llm_dir)
    processor = SurfaceHotwordLogitsProcessor(
        character_tries([parse_hotwords([("你好吗", 1.0)])]), tokenizer, [], True
    )
    vocab = len(tokenizer)
    start = torch.tensor([tokenizer.encode("我说", add_special_tokens=False)])
    bonus = processor(start, torch.zeros(1, vocab))[0]
    for piece, expected in (("你", 1.0), ("你好", 2.0), ("我", 0.0)):
        ids = tokenizer.encode(piece, add_special_tokens=False)
        assert len(ids) == 1 and bonus[ids[0]] == expected, piece
    after = torch.tensor([tokenizer.encode("我说你好", add_special_tokens=False)])
    bonus = processor(after, torch.zeros(1, vocab))[0]
    (ma,) = tokenizer.encode("吗", add_special_tokens=False)
    (wo,) = tokenizer.encode("我", add_special_tokens=False)
    assert bonus[ma] == 1.0 and bonus[wo] == -2.0  # finishing earns; breaking takes back the two characters
