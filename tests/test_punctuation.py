"""Punctuation with FireRedPunc: the converter, the model call against upstream's structure, the text rules and the
timed sentences.

The oracle is FireRedASR2S's `FireRedPuncBert` rebuilt here the way upstream builds it (no PyPI package ships it):
`BertModel.from_pretrained(chinese-lert-base)` with its pooler removed, dropout and a `Linear`, the checkpoint loaded
over it with `strict=False`, `[CLS]` prepended without `[SEP]`, output 0 dropped, and a batch longer than the
positions minus one split along time into chunks; ids are upstream's too (lert-base's tokens looked up in
`chinese-bert-wwm-ext_vocab.txt`). The upstream folder is a tiny random BERT saved in upstream's layout.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pytest
import torch
from torch import nn
from transformers import (
    AutoModelForTokenClassification,
    AutoTokenizer,
    BertConfig,
    BertModel,
    BertTokenizer,
    pipeline,
)

from tests.audio import HELD_OUT_CLIPS
from transformers_fireredasr import demo_model_dir
from transformers_fireredasr.conversion.punc import convert_punc, is_punc_folder, read_token_list
from transformers_fireredasr.conversion.resolve import CACHE_VARIABLE, original_kind, resolve_model
from transformers_fireredasr.engine import Engine, LoadOptions, OptionError, TranscribeOptions
from transformers_fireredasr.punctuation import (
    Punctuator,
    TimedSegment,
    TimedWord,
    length_units,
    segments_from_chunks,
)

HANZI = "你好今天气很我们去公园吧来不世界喜欢因为所以说是的"
LATIN = ["hello", "world", "how", "are", "you", "i", "'", "m", "fine", "play", "##ing", "##s", "good", "apple", "3"]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *dict.fromkeys(HANZI), *LATIN, "，", "。", "？", "！"]
TAGS = ["<space>", "，", "。", "？", "！"]
LABELS = ["O", "，", "。", "？", "！"]
POSITIONS = 16  # chunks of 15 tokens
DEMO = str(demo_model_dir())


# --- an upstream-format folder and upstream's model ---------------------------------------------------------------


class UpstreamPuncBert(nn.Module):
    """FireRedPuncBert as upstream builds and calls it (the oracle)."""

    def __init__(self, lert_dir: Path, odim: int, dropout: float, cls_id: int):
        super().__init__()
        self.bert = BertModel.from_pretrained(str(lert_dir))
        self.bert.pooler = None
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(self.bert.config.hidden_size, odim)
        self.max_input_len = self.bert.embeddings.position_embeddings.num_embeddings - 1
        self.cls_id = cls_id

    def forward_model(self, padded: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if padded.size(1) <= self.max_input_len:
            return self.tag(padded, lengths)
        scores, left = [], lengths
        for chunk in padded.split(self.max_input_len, dim=1):
            chunk_lengths = left.clamp(min=0, max=self.max_input_len)
            left = left - chunk_lengths
            scores.append(self.tag(chunk, chunk_lengths))
        return torch.cat(scores, dim=1)

    def tag(self, padded: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        ids = torch.cat([torch.full((padded.size(0), 1), self.cls_id, dtype=padded.dtype), padded], dim=1)
        mask = (torch.arange(ids.size(1))[None, :] < (lengths + 1)[:, None]).float()
        hidden = self.bert(input_ids=ids, attention_mask=mask)[0][:, 1:]
        return self.classifier(self.dropout(hidden))


def upstream_ids(folder: Path, texts: list[str]) -> list[list[int]]:
    """Upstream's ids: lert-base's tokens looked up in chinese-bert-wwm-ext_vocab.txt ([UNK] for the rest)."""
    tokenizer = BertTokenizer.from_pretrained(str(folder / "chinese-lert-base"))
    trained = {token: index for index, token in enumerate(read_token_list(folder / "chinese-bert-wwm-ext_vocab.txt"))}
    return [[trained.get(token, trained["[UNK]"]) for token in tokenizer.tokenize(text)] for text in texts]


def upstream_logits(folder: Path, ids: list[list[int]]) -> list[torch.Tensor]:
    package = torch.load(folder / "model.pth.tar", weights_only=False)
    args = package["args"]
    model = UpstreamPuncBert(folder / "chinese-lert-base", args.odim, args.classifier_dropout, args.cls_id)
    model.load_state_dict(package["model_state_dict"], strict=False)
    model.eval()
    lengths = torch.tensor([len(row) for row in ids])
    padded = torch.zeros((len(ids), int(lengths.max())), dtype=torch.long)
    for index, row in enumerate(ids):
        padded[index, : len(row)] = torch.tensor(row)
    with torch.no_grad():
        scores = model.forward_model(padded, lengths)
    return [scores[index, : len(row)] for index, row in enumerate(ids)]


def make_upstream_folder(
    folder: Path,
    trained_vocab: list[str] | None = None,
    edit_weights=None,
    out_dict: str | None = None,
    cls_id: int | None = None,
) -> Path:
    """A random tiny FireRedPunc release in upstream's layout."""
    torch.manual_seed(0)
    lert = folder / "chinese-lert-base"
    lert.mkdir(parents=True)
    config = BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=48,
        max_position_embeddings=POSITIONS,
    )
    BertModel(config).save_pretrained(lert)
    (lert / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    trained_vocab = trained_vocab or VOCAB
    (folder / "chinese-bert-wwm-ext_vocab.txt").write_text("\n".join(trained_vocab) + "\n", encoding="utf-8")
    text = out_dict if out_dict is not None else "".join(f"{tag} {index}\n" for index, tag in enumerate(TAGS))
    (folder / "out_dict").write_text(text, encoding="utf-8")
    cls_id = trained_vocab.index("[CLS]") if cls_id is None else cls_id
    model = UpstreamPuncBert(lert, len(TAGS), 0.1, cls_id)
    with torch.no_grad():  # fine-tuned weights: none of lert-base's survive
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.3)
    weights = model.state_dict()
    if edit_weights is not None:
        weights = edit_weights(dict(weights))
    args = argparse.Namespace(
        odim=len(TAGS), classifier_dropout=0.1, cls_id=cls_id, ignore_index=-100, pretrained_bert=str(lert), bert=None
    )
    torch.save({"args": args, "model_state_dict": weights}, folder / "model.pth.tar")
    return folder


@pytest.fixture(scope="module")
def upstream(punc_dir) -> Path:
    return punc_dir  # conftest.py's session folder, shared with the docs' examples


@pytest.fixture(scope="module")
def converted(converted_punc_dir) -> Path:
    return converted_punc_dir


@pytest.fixture(scope="module")
def punctuator(converted) -> Punctuator:
    return Punctuator.from_pretrained(converted, batch_size=3)


TEXTS = [
    "你好",
    "今天天气很好我们去公园吧你来不来",
    "hello world how are you i'm fine",
    "你好魑魅hello playing apples",
    "因为今天天气很好所以我们去公园吧你来不来我说是的你好世界hello world我喜欢apple",  # 34 tokens: 3 chunks
    "",
]


# --- the converter ------------------------------------------------------------------------------------------------


def test_converted_folder_is_a_bert_token_classifier_with_the_tags_and_the_card(upstream, converted):
    model = AutoModelForTokenClassification.from_pretrained(converted)
    tokenizer = AutoTokenizer.from_pretrained(converted)
    assert type(model).__name__ == "BertForTokenClassification"
    assert model.config.id2label == dict(enumerate(LABELS))
    assert model.config.classifier_dropout == 0.1
    assert tokenizer.convert_ids_to_tokens(list(range(len(VOCAB)))) == VOCAB
    assert "# FireRedPunc\n" in (converted / "README.md").read_text("utf-8")
    assert is_punc_folder(upstream) and not is_punc_folder(converted)
    assert json.loads((converted / "config.json").read_text())["architectures"] == ["BertForTokenClassification"]


def test_out_dict_without_ids_and_with_an_empty_line_reads_the_same(tmp_path):
    folder = make_upstream_folder(tmp_path / "in", out_dict="\n，\n。\n？\n！\n")
    model = AutoModelForTokenClassification.from_pretrained(convert_punc(folder, tmp_path / "out"))
    assert model.config.id2label == dict(enumerate(LABELS))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda w: {k: v for k, v in w.items() if k != "classifier.bias"}, r"missing \['classifier.bias'\]"),
        (
            lambda w: {k: v for k, v in w.items() if not k.startswith("bert.encoder.layer.1.")},
            r"missing \['bert.encoder.layer.1.attention",
        ),
        (
            lambda w: {**w, "bert.pooler.dense.weight": torch.zeros(32, 32)},
            r"unexpected \['bert.pooler.dense.weight'\]",
        ),
        (lambda w: {**w, "classifier.weight": torch.zeros(4, 32)}, "classifier.weight has shape"),
    ],
)
def test_a_missing_or_unexpected_weight_fails_naming_it(tmp_path, edit, message):
    """Upstream's strict=False loading would keep lert-base's weights or drop the extra ones without a word."""
    folder = make_upstream_folder(tmp_path / "in", edit_weights=edit)
    with pytest.raises(ValueError, match=message):
        convert_punc(folder, tmp_path / "out")
    assert not (tmp_path / "out" / "config.json").exists()


def test_old_position_ids_buffer_is_accepted(tmp_path):
    folder = make_upstream_folder(
        tmp_path / "in", edit_weights=lambda w: {**w, "bert.embeddings.position_ids": torch.arange(POSITIONS)[None]}
    )
    assert (convert_punc(folder, tmp_path / "out") / "model.safetensors").is_file()


def test_mismatched_args_and_missing_files_fail_clearly(tmp_path):
    folder = make_upstream_folder(tmp_path / "tags", out_dict="".join(f"{tag}\n" for tag in TAGS[:4]))
    with pytest.raises(ValueError, match="lists 4 tags but the checkpoint's odim is 5"):
        convert_punc(folder, tmp_path / "out")
    folder = make_upstream_folder(tmp_path / "cls", cls_id=3)
    with pytest.raises(ValueError, match=r"cls_id 3 is not \[CLS\]'s id"):
        convert_punc(folder, tmp_path / "out")
    (folder / "out_dict").unlink()
    with pytest.raises(FileNotFoundError, match="lacks out_dict"):
        convert_punc(folder, tmp_path / "out")
    assert not is_punc_folder(folder)


class Payload:
    """A class no converter should construct from a downloaded file."""


def test_a_module_kept_in_args_is_read_as_a_placeholder_and_other_classes_are_refused(tmp_path):
    """Upstream's training code keeps the loaded BertModel in `args.bert`; it is not built when reading."""
    folder = make_upstream_folder(tmp_path / "in")
    package = torch.load(folder / "model.pth.tar", weights_only=False)
    package["args"].bert = BertModel.from_pretrained(str(folder / "chinese-lert-base"))
    torch.save(package, folder / "model.pth.tar")
    assert (convert_punc(folder, tmp_path / "out") / "model.safetensors").is_file()
    package["args"].bert = Payload()
    torch.save(package, folder / "model.pth.tar")
    with pytest.raises(ValueError, match="only tensors and argparse.Namespace"):
        convert_punc(folder, tmp_path / "out2")


def test_differing_vocabularies_are_remapped_to_the_trained_ids(tmp_path, caplog):
    """The trained vocabulary lists the tokens in another order and lacks one: each lert id reads the row upstream
    would use (the trained id of its token, else [UNK]'s), so the logits stay upstream's."""
    trained = [*VOCAB[:5], *reversed(VOCAB[5:])]
    trained.remove("apple")
    folder = make_upstream_folder(tmp_path / "in", trained_vocab=trained)
    with caplog.at_level(logging.INFO):
        out = convert_punc(folder, tmp_path / "out")
    assert "remapping the embedding rows" in caplog.text
    punctuator = Punctuator.from_pretrained(out)
    ids = upstream_ids(folder, TEXTS[:5])
    ours = punctuator.tag_logits(punctuator.tokenizer(TEXTS[:5], add_special_tokens=False)["input_ids"])
    for mine, theirs in zip(ours, upstream_logits(folder, ids), strict=True):
        torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=0)


# --- the model call -----------------------------------------------------------------------------------------------


def test_tag_logits_equal_the_upstream_structure_on_the_same_ids(upstream, punctuator):
    """CLS-only input, chunks of positions - 1 (a 34-token text is three chunks), one batch for many texts."""
    ids = upstream_ids(upstream, TEXTS)
    assert ids == punctuator.tokenizer(TEXTS, add_special_tokens=False)["input_ids"]  # the vocabularies agree
    assert max(len(row) for row in ids) > 2 * (POSITIONS - 1)
    ours = punctuator.tag_logits(ids)
    theirs = upstream_logits(upstream, [row for row in ids if row])
    theirs.insert(TEXTS.index(""), torch.zeros((0, len(LABELS))))
    for mine, reference in zip(ours, theirs, strict=True):
        assert mine.shape == reference.shape
        torch.testing.assert_close(mine, reference, atol=1e-5, rtol=0)
    # Each text alone gives the same logits as in the batch.
    for row, mine in zip(ids, ours, strict=True):
        torch.testing.assert_close(punctuator.tag_logits([row])[0], mine, atol=1e-5, rtol=0)


def test_the_model_gets_cls_and_ids_without_sep_in_chunks(punctuator):
    seen = []
    handle = punctuator.model.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append((kwargs["input_ids"], kwargs["attention_mask"])), with_kwargs=True
    )
    try:
        ids = punctuator.tokenizer([TEXTS[4]], add_special_tokens=False)["input_ids"][0]
        punctuator.tag_logits([ids])
    finally:
        handle.remove()
    rows = [row[mask.bool()].tolist() for input_ids, masks in seen for row, mask in zip(input_ids, masks, strict=True)]
    cls, sep = punctuator.tokenizer.cls_token_id, punctuator.tokenizer.sep_token_id
    assert sorted(rows, key=len, reverse=True) == [[cls, *ids[i : i + 15]] for i in range(0, len(ids), 15)]
    assert all(sep not in row for row in rows)
    assert max(input_ids.shape[1] for input_ids, _ in seen) <= POSITIONS


def test_random_model_punctuates_end_to_end(punctuator):
    texts = punctuator.punctuate(TEXTS)
    assert len(texts) == len(TEXTS) and texts[-1] == ""
    for text, source in zip(texts, TEXTS, strict=True):
        stripped = "".join(char for char in text.lower() if char not in "，。？！,.?! ")
        assert stripped == source.replace(" ", "").lower()


# --- text rules, with the tags given --------------------------------------------------------------------------------


class Scripted(Punctuator):
    """A punctuator whose model is replaced by a script: the tags (or tag probabilities) of each token sequence."""

    script: dict[tuple[str, ...], list] = {}

    def token_probabilities(self, token_ids):
        results = []
        for ids in token_ids:
            tokens = tuple(self.tokenizer.convert_ids_to_tokens(ids))
            rows = self.script.get(tokens, ["O"] * len(tokens))
            assert len(rows) == len(tokens), tokens
            probs = torch.zeros((len(tokens), len(LABELS)))
            for index, row in enumerate(rows):
                if isinstance(row, str):
                    probs[index, LABELS.index(row)] = 1.0
                else:
                    probs[index] = torch.tensor(row)
            results.append(probs)
        return results


def scripted(punctuator: Punctuator, script: dict[str, str | list], **options) -> Scripted:
    """`script`: space-separated tokens -> space-separated labels (`_` for none), or a list of probability rows."""
    result = Scripted(punctuator.model, punctuator.tokenizer, **options)
    result.script = {
        tuple(tokens.split()): rows if isinstance(rows, list) else [label.replace("_", "O") for label in rows.split()]
        for tokens, rows in script.items()
    }
    return result


def test_wordpieces_join_and_latin_words_keep_their_spaces(punctuator):
    script = {"你 好 play ##ing good apple ##s": "_ ， ， _ _ _ 。", "hello world 你 好": "_ _ _ 。"}
    texts = ["你好 playing good apples", "hello world你好"]
    # A mark on a word's inner piece is ignored; no space between Chinese and Latin, one between Latin words.
    assert scripted(punctuator, script).punctuate(texts) == ["你好，playing good apples.", "Hello world你好。"]
    # Upstream writes the mark inside the word (and its rules then split the word).
    upstream = scripted(punctuator, script, upstream_compatible=True)
    assert upstream.punctuate(texts) == ["你好，play, ing good apples.", "Hello world你好。"]


def test_unknown_characters_come_back_as_written(punctuator):
    tagger = scripted(punctuator, {"你 [UNK] [UNK] hello [UNK] 好": "_ _ ， _ _ 。"})
    assert tagger.punctuate(["你魑魅 hello 안녕好"]) == ["你魑魅，hello안녕好。"]
    # Accents survive too (the tokenizer strips them and the vocabulary lacks the word).
    assert scripted(punctuator, {"[UNK]": "。"}).punctuate(["Café"]) == ["Café."]


def test_marks_between_latin_words_become_half_width_and_capitals_follow_sentence_ends(punctuator):
    script = {
        "hello world how are you i ' m fine": "_ ， _ _ ？ _ _ _ 。",
        "我 喜 欢 apple": "_ _ _ 。",
        "你 好 hello world": "_ ， _ 。",
        "hello 你 好": "， _ 。",
    }
    tagger = scripted(punctuator, script)
    texts = ["hello world how are you i'm fine", "我喜欢apple", "你好hello world", "HELLO 你好"]
    assert tagger.punctuate(texts) == [
        "Hello world, how are you? I'm fine.",  # a comma does not capitalise, a question mark does
        "我喜欢apple。",  # one Latin word after Chinese keeps the Chinese mark
        "你好，hello world.",  # a sentence ending in Latin words ends with a half-width mark
        "Hello，你好。",
    ]
    upstream = scripted(punctuator, script, upstream_compatible=True)
    assert upstream.punctuate(texts) == [
        "Hello world, how are you? I'm fine.",
        "我喜欢apple。",
        "你好，hello world.",
        "Hello,你好。",
    ]


def words(text: str, start: float = 0.0, step: float = 0.5) -> tuple[TimedWord, ...]:
    return tuple(TimedWord(word, start + i * step, start + i * step + 0.4) for i, word in enumerate(text.split()))


def test_sentences_get_times_from_words_and_a_comma_does_not_end_one(punctuator):
    script = {"hello world how are you i ' m fine": "_ ， _ _ ？ _ _ _ 。"}
    segment = TimedSegment("hello world how are you i'm fine", 0.0, 4.0, words("hello world how are you i'm fine"))
    (result,) = scripted(punctuator, script).punctuate_segments([[segment]])
    assert result == {
        "text": "Hello world, how are you? I'm fine.",
        "sentences": [
            {"text": "Hello world, how are you?", "start": 0.0, "end": 2.4},
            {"text": "I'm fine.", "start": 2.5, "end": 3.4},
        ],
        "timing": "words",
    }
    # Upstream: every mark closes a sentence and capitalises what follows; sentences are joined without spaces; a
    # segment's first and last sentences stretch to its bounds.
    (result,) = scripted(punctuator, script, upstream_compatible=True).punctuate_segments([[segment]])
    assert result == {
        "text": "Hello world,How are you?I'm fine.",
        "sentences": [
            {"text": "Hello world,", "start": 0.0, "end": 0.9},
            {"text": "How are you?", "start": 1.0, "end": 2.4},
            {"text": "I'm fine.", "start": 2.5, "end": 4.0},
        ],
        "timing": "words",
    }


def test_sentences_without_word_times_share_out_the_segment_bounds(punctuator):
    script = {"今 天 天 气 很 好": "_ _ _ _ _ ，", "我 们 去 公 园 吧 你 来 不 来": "_ _ _ _ _ 。 _ _ _ ？"}
    segments = [TimedSegment("今天天气很好", 1.0, 2.2), TimedSegment("我们去公园吧你来不来", 3.0, 5.0)]
    (result,) = scripted(punctuator, script).punctuate_segments([segments])
    # The comma at the end of the first segment does not end the sentence: it runs on into the second segment.
    assert result == {
        "text": "今天天气很好，我们去公园吧。你来不来？",
        "sentences": [
            {"text": "今天天气很好，我们去公园吧。", "start": 1.0, "end": 4.2},
            {"text": "你来不来？", "start": 4.2, "end": 5.0},
        ],
        "timing": "segments",
    }
    (result,) = scripted(punctuator, script, upstream_compatible=True).punctuate_segments([segments])
    assert result["sentences"] == [
        {"text": "今天天气很好，", "start": 1.0, "end": 2.2},
        {"text": "我们去公园吧。你来不来？", "start": 3.0, "end": 5.0},
    ]


def test_many_transcripts_in_one_call_with_and_without_words(punctuator):
    tagger = scripted(punctuator, {"你 好": "_ 。", "hello world": "_ ？"})
    timed = [
        TimedSegment("你好", 0.0, 1.0, words("你 好")),
        TimedSegment("hello world", 2.0, 3.0, words("hello world", 2.0)),
    ]
    results = tagger.punctuate_segments([timed, [TimedSegment("你好", 5.0, 6.0)], []])
    assert [r["text"] for r in results] == ["你好。Hello world?", "你好。", ""]
    assert [r["timing"] for r in results] == ["words", "segments", "segments"]
    assert results[0]["sentences"][1] == {"text": "Hello world?", "start": 2.0, "end": 2.9}


def test_sentence_max_length_breaks_at_the_most_likely_mark_within_the_limit(punctuator):
    text = "今天天气很好我们去公园吧你来不来"  # 16 characters, no mark but a likely break after 好 and 吧
    probs = [[0.9, 0.05, 0.03, 0.01, 0.01]] * 16
    probs[5] = [0.4, 0.5, 0.05, 0.03, 0.02]  # 好: a comma, but no sentence end
    probs[11] = [0.45, 0.2, 0.3, 0.04, 0.01]  # 吧
    probs[1] = [0.3, 0.3, 0.3, 0.05, 0.05]  # 天: most likely of all, but a fragment
    script = {" ".join(text): probs}
    tagger = scripted(punctuator, script, sentence_max_length=8)
    # 好's comma and 吧 become sentence ends; 天, the likeliest break, would leave a fragment.
    assert tagger.punctuate([text]) == ["今天天气很好。我们去公园吧。你来不来"]
    (result,) = tagger.punctuate_segments([[TimedSegment(text, 0.0, 16.0)]])
    assert [s["text"] for s in result["sentences"]] == ["今天天气很好。", "我们去公园吧。", "你来不来"]
    assert all(length_units(s["text"].rstrip("。")) <= 8 for s in result["sentences"])
    assert scripted(punctuator, script).punctuate([text]) == ["今天天气很好，我们去公园吧你来不来"]  # no limit
    # Upstream's greedy cut: a mark at least as likely as none ends a sentence (天 here: a fragment), and the last
    # token always gets a mark.
    upstream = scripted(punctuator, script, sentence_max_length=8, upstream_compatible=True)
    segments = [TimedSegment(text, 0.0, 16.0, words(" ".join(text), step=1.0))]
    (result,) = upstream.punctuate_segments([segments])
    assert [s["text"] for s in result["sentences"]] == ["今天，", "天气很好，", "我们去公园吧。", "你来不来，"]


def test_length_units_count_latin_as_half():
    assert length_units("你好 hello") == 2 + 2.5
    assert length_units("i'm") == 1.5


def test_segments_from_chunks_gives_each_word_to_its_segment():
    pieces = [{"text": "你好", "timestamp": (0.0, 1.0)}, {"text": "hello world", "timestamp": (2.0, 3.0)}]
    chunks = [
        {"text": "你", "timestamp": (0.1, 0.4)},
        {"text": "好", "timestamp": (0.5, 1.1)},
        {"text": " hello", "timestamp": (1.9, 2.4)},
        {"text": "world", "timestamp": (2.5, 2.9)},
    ]
    first, second = segments_from_chunks(pieces, chunks)
    assert [w.text for w in first.words] == ["你", "好"] and [w.text for w in second.words] == ["hello", "world"]
    assert segments_from_chunks(pieces)[0].words is None


def test_options_are_checked(punctuator):
    with pytest.raises(ValueError, match="sentence_max_length"):
        Punctuator(punctuator.model, punctuator.tokenizer, sentence_max_length=0)
    with pytest.raises(ValueError, match="fast tokenizer"):
        Punctuator(punctuator.model, object())


# --- where a punctuation model is named -----------------------------------------------------------------------------


def test_an_original_folder_is_converted_once_where_it_is_named(upstream, tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_VARIABLE, str(tmp_path / "cache"))
    assert original_kind(upstream) == "punc" and original_kind(tmp_path) is None
    punctuator = Punctuator.from_pretrained(upstream)
    converted = Path(resolve_model(upstream))  # the cached copy, not converted again
    assert converted.is_relative_to(tmp_path / "cache") and (converted / "config.json").is_file()
    assert punctuator.punctuate(["你好"]) == Punctuator.from_pretrained(converted).punctuate(["你好"])
    with pytest.raises(OSError, match="original FireRedPunc release folder.*convert_fireredpunc.py"):
        AutoModelForTokenClassification.from_pretrained(upstream)


class Alternating(Punctuator):
    """A punctuator whose model writes a comma after every third token and a full stop after the last."""

    def token_probabilities(self, token_ids):
        results = []
        for ids in token_ids:
            tags = torch.zeros(len(ids), dtype=torch.long)
            tags[2::3] = LABELS.index("，")
            tags[-1:] = LABELS.index("。")
            results.append(torch.nn.functional.one_hot(tags, len(LABELS)).float())
        return results


@pytest.fixture(scope="module")
def demo_engine():
    return Engine.from_pretrained(DEMO, {"device": "cpu"})


def without_marks(text: str) -> str:
    return "".join(char for char in text.lower() if char not in "，。？！,.?! ")


def test_the_engine_punctuates_every_result_with_times_from_words_or_segments(demo_engine, converted):
    punctuator = Alternating.from_pretrained(converted)
    engine = Engine(demo_engine.model, demo_engine.feature_extractor, demo_engine.tokenizer, punctuator=punctuator)
    clip = str(HELD_OUT_CLIPS[0])
    for timestamps, timing in (("word", "words"), ("segment", "segments"), (None, "segments")):
        plain = demo_engine.transcribe(clip, timestamps=timestamps)
        result = engine.transcribe(clip, timestamps=timestamps)
        assert "sentences" not in plain and result["sentence_timing"] == timing
        assert without_marks(result["text"]) == without_marks(plain["text"]) and result["text"] != plain["text"]
        assert "".join(s["text"] for s in result["sentences"]) == result["text"]
        assert all(0 <= s["start"] < s["end"] <= 60 for s in result["sentences"])
        if timing == "words":
            assert result["sentences"][0]["start"] == plain["chunks"][0]["timestamp"][0]
            assert result["sentences"][-1]["end"] == plain["chunks"][-1]["timestamp"][1]


def test_archive_style_runs_punctuate_the_inputs_of_a_batch_together(demo_engine, converted):
    calls = []
    punctuator = Punctuator.from_pretrained(converted)
    original = punctuator.punctuate_segments
    punctuator.punctuate_segments = lambda transcripts: calls.append(len(transcripts)) or original(transcripts)
    engine = Engine(demo_engine.model, demo_engine.feature_extractor, demo_engine.tokenizer, punctuator=punctuator)
    clips = [(path.name, str(path)) for path in HELD_OUT_CLIPS]
    outcomes = list(engine.transcribe_many(clips, TranscribeOptions(timestamps="word"), batch_size=4))
    assert calls == [len(clips)]
    for outcome, (_, path) in zip(outcomes, clips, strict=True):
        assert outcome.result == engine.transcribe(path, timestamps="word")


def test_one_transcript_that_cannot_be_punctuated_fails_alone(demo_engine, converted):
    punctuator = Punctuator.from_pretrained(converted)
    original = punctuator.punctuate_segments
    bad = str(HELD_OUT_CLIPS[1])
    bad_text = demo_engine.transcribe(bad)["text"]

    def punctuate_segments(transcripts):
        if any(segment.text == bad_text for transcript in transcripts for segment in transcript):
            raise RuntimeError("this text breaks the punctuation model")
        return original(transcripts)

    punctuator.punctuate_segments = punctuate_segments
    engine = Engine(demo_engine.model, demo_engine.feature_extractor, demo_engine.tokenizer, punctuator=punctuator)
    clips = [(path.name, str(path)) for path in HELD_OUT_CLIPS]
    outcomes = list(engine.transcribe_many(clips, TranscribeOptions(), batch_size=4))
    assert [outcome.key for outcome in outcomes if outcome.error] == [HELD_OUT_CLIPS[1].name]
    failed = next(outcome for outcome in outcomes if outcome.error)
    assert failed.result is None and "punctuation failed (this text breaks the punctuation model)" in failed.error
    for outcome, (_, path) in zip(outcomes, clips, strict=True):
        if path != bad:
            assert outcome.result == engine.transcribe(path) and outcome.result["sentences"]


def test_engine_and_pipeline_load_the_punctuation_model_once_by_name(demo_engine, converted):
    engine = Engine.from_pretrained(DEMO, {"device": "cpu", "punctuation": str(converted)})
    assert isinstance(engine.punctuator, Punctuator)
    clip = str(HELD_OUT_CLIPS[1])
    asr = pipeline("automatic-speech-recognition", model=DEMO, device="cpu", punctuation_model=str(converted))
    assert asr(clip, return_timestamps="word") == engine.transcribe(clip, timestamps="word")
    assert asr(clip) == engine.transcribe(clip)
    with pytest.raises(OptionError, match="punctuation must name a model"):
        LoadOptions(punctuation="")
