"""FireRedAsrTokenizer: parity with the original ChineseCharEnglishSpmTokenizer, special tokens, saving and loading."""

import pickle

import pytest
import sentencepiece as spm
from fireredasr.tokenizer.aed_tokenizer import ChineseCharEnglishSpmTokenizer
from hypothesis import given, settings
from hypothesis import strategies as st

from transformers_fireredasr.tokenization_fireredasr import FireRedAsrTokenizer

SPECIALS = ["<blank>", "<unk>", "<pad>", "<sos>", "<eos>"]
HANZI = sorted(set("你好今天天气很好我们去公园散步吧北京是中华人民共和国的首都语音识别"))
ENGLISH = [
    "HELLO WORLD",
    "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG",
    "WE GO TO THE PARK TODAY",
    "BEIJING IS THE CAPITAL OF CHINA",
    "SPEECH RECOGNITION WITH TRANSFORMERS",
    "GOOD MORNING EVERYONE",
    "HOW ARE YOU DOING",
    "THIS IS A TEST SENTENCE",
]
# A piece the sentencepiece model produces but the vocabulary lacks, so words using it map to <unk>.
DROPPED_PIECE = "▁B"
MIXED_TEXTS = [
    "你好 HELLO world",
    "今天天气很好, we go to the park.",
    "北京是中华人民共和国的首都！Beijing is the capital?",
    "the quick brown fox 跳 over the lazy dog",
    "  leading and trailing spaces  ",
    "语音识别 speech recognition。你好吗？",
    "123 数字 and xyzzy",
    "中文",
    "english only",
    "",
]


def write_dict(path, tokens):
    path.write_text("".join(f"{token} {index}\n" for index, token in enumerate(tokens)), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny BPE model trained on upper-case English and a dict.txt: specials, Hanzi, <space>, the BPE pieces."""
    tmp = tmp_path_factory.mktemp("tokenizer")
    corpus = tmp / "corpus.txt"
    corpus.write_text("\n".join(ENGLISH * 3), encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(tmp / "bpe"),
        vocab_size=80,
        model_type="bpe",
        character_coverage=1.0,
        minloglevel=2,
    )
    sp = spm.SentencePieceProcessor(model_file=str(tmp / "bpe.model"))
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size()) if not sp.is_control(i) and not sp.is_unknown(i)]
    assert DROPPED_PIECE in pieces
    pieces.remove(DROPPED_PIECE)
    vocab = write_dict(tmp / "dict.txt", SPECIALS + HANZI + ["<space>"] + pieces)
    return {"vocab_file": vocab, "spm_file": str(tmp / "bpe.model"), "dir": tmp}


@pytest.fixture(scope="module")
def tokenizer(files):
    return FireRedAsrTokenizer(files["vocab_file"], files["spm_file"])


@pytest.fixture(scope="module")
def reference(files):
    return ChineseCharEnglishSpmTokenizer(files["vocab_file"], files["spm_file"])


def test_special_tokens_follow_the_dict(tokenizer):
    assert tokenizer.blank_token_id == 0
    assert tokenizer.unk_token_id == 1
    assert tokenizer.pad_token_id == 2
    assert tokenizer.bos_token_id == 3
    assert tokenizer.eos_token_id == 4
    assert tokenizer.vocab_size == len(tokenizer) == len(tokenizer.get_vocab())


def test_special_token_ids_are_read_from_the_dict_not_hard_coded(files, tmp_path):
    tokens = ["<unk>", "<eos>"] + HANZI + ["<blank>", "<pad>", "<sos>"]
    tok = FireRedAsrTokenizer(write_dict(tmp_path / "dict.txt", tokens))
    n = len(tokens)
    assert (tok.unk_token_id, tok.eos_token_id, tok.blank_token_id) == (0, 1, n - 3)
    assert (tok.pad_token_id, tok.bos_token_id) == (n - 2, n - 1)
    assert len(tok) == n


@pytest.mark.parametrize("text", MIXED_TEXTS)
def test_matches_reference_tokenize_and_detokenize(tokenizer, reference, text):
    ref_tokens, ref_ids = reference.tokenize(text)
    assert tokenizer.tokenize(text) == ref_tokens
    ids = tokenizer(text, add_special_tokens=False).input_ids
    assert ids == ref_ids
    assert tokenizer.decode(ids) == reference.detokenize(ref_ids)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(HANZI),
            st.sampled_from(" ".join(ENGLISH).split() + ["hello", "Beijing", "xyzzy", "42"]),
            st.sampled_from([" ", "  ", ",", "。", "？", "!", "."]),
        ),
        max_size=12,
    ),
    st.lists(st.sampled_from(["", " "]), min_size=12, max_size=12),
)
def test_random_mixes_match_reference(tokenizer, reference, parts, separators):
    text = "".join(part + sep for part, sep in zip(parts, separators, strict=False))
    _, ref_ids = reference.tokenize(text)
    ids = tokenizer(text, add_special_tokens=False).input_ids
    assert ids == ref_ids
    assert tokenizer.decode(ids) == reference.detokenize(ref_ids)
    without_unk = [i for i in ref_ids if i != tokenizer.unk_token_id]
    assert tokenizer.decode(tokenizer(text).input_ids, skip_special_tokens=True) == reference.detokenize(without_unk)


def test_unknown_tokens(tokenizer, reference):
    ids = tokenizer("龘 BOX", add_special_tokens=False).input_ids  # an unseen Hanzi and a word needing "▁B"
    assert ids == reference.tokenize("龘 BOX")[1]
    assert ids[0] == ids[1] == tokenizer.unk_token_id
    assert tokenizer.decode(ids) == "<unk><unk>OX"
    assert tokenizer.decode(ids, skip_special_tokens=True) == "OX"
    assert tokenizer.convert_ids_to_tokens(10_000) == "<unk>"


def test_encoding_appends_eos_and_text_target_gives_labels(tokenizer, reference):
    ref_ids = reference.tokenize("你好 HELLO world")[1]
    assert tokenizer("你好 HELLO world").input_ids == ref_ids + [tokenizer.eos_token_id]
    # Alone, `text_target` is encoded like `text`; with both, its ids come back as `labels`.
    assert tokenizer(text_target="你好 HELLO world").input_ids == ref_ids + [tokenizer.eos_token_id]
    assert tokenizer("x", text_target="你好 HELLO world")["labels"] == ref_ids + [tokenizer.eos_token_id]
    mask = tokenizer("你好", return_special_tokens_mask=True).special_tokens_mask
    assert mask == [0, 0, 1]


def test_batch_padding_and_batch_decode(tokenizer, reference):
    texts = ["你好 HELLO world", "今天天气很好", "GOOD MORNING 北京"]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    assert batch.input_ids.shape == batch.attention_mask.shape
    assert batch.input_ids[1, -1].item() == tokenizer.pad_token_id
    decoded = tokenizer.batch_decode(batch.input_ids, skip_special_tokens=True)
    assert decoded == [reference.detokenize(reference.tokenize(t)[1]) for t in texts]
    assert decoded[0] == "你好 HELLO WORLD"
    raw = tokenizer.batch_decode(batch.input_ids)
    assert raw[1] == "今天天气很好<eos>" + "<pad>" * (batch.input_ids.shape[1] - 7)


def test_decode_keeps_special_tokens_unless_skipped(tokenizer):
    ids = [tokenizer.bos_token_id] + tokenizer("你好", add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    assert tokenizer.decode(ids) == "<sos>你好<eos>"
    assert tokenizer.decode(ids, skip_special_tokens=True) == "你好"
    assert tokenizer.decode([tokenizer.blank_token_id, *ids], skip_special_tokens=True) == "你好"


def test_special_tokens_in_text_are_kept_whole(tokenizer):
    assert tokenizer.tokenize("你好<eos>") == ["你", "好", "<eos>"]


def test_replace_punctuation_flag(files):
    keep = FireRedAsrTokenizer(files["vocab_file"], files["spm_file"], replace_punctuation=False)
    reference = ChineseCharEnglishSpmTokenizer(files["vocab_file"], files["spm_file"])
    text = "你好，HELLO. world!"
    assert keep(text, add_special_tokens=False).input_ids == reference.tokenize(text, replace_punc=False)[1]
    assert "," in keep.tokenize(text)  # kept (sentencepiece's NFKC normalization turns "，" into ",")


def test_without_sentencepiece_model_uses_characters_and_space(files):
    tok = FireRedAsrTokenizer(files["vocab_file"])
    assert tok.tokenize("你好 go home") == ["你", "好", "G", "O", "<space>", "H", "O", "M", "E"]
    ids = tok("go home", add_special_tokens=False).input_ids
    assert tok.unk_token_id not in ids
    assert tok.decode(ids) == "GO HOME"
    # The original maps `<space>` to unk here: its dict stores the space token as " ", not "<space>".
    reference = ChineseCharEnglishSpmTokenizer(files["vocab_file"], None)
    assert reference.tokenize("go home")[1] == [i if i != tok.convert_tokens_to_ids("<space>") else 1 for i in ids]


def test_save_and_load_round_trip(tokenizer, files, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    assert (tmp_path / "dict.txt").read_text(encoding="utf-8") == open(files["vocab_file"], encoding="utf-8").read()
    assert (tmp_path / "train_bpe1000.model").read_bytes() == open(files["spm_file"], "rb").read()
    loaded = FireRedAsrTokenizer.from_pretrained(tmp_path)
    assert loaded.get_vocab() == tokenizer.get_vocab()
    assert loaded.all_special_tokens == tokenizer.all_special_tokens
    assert loaded.blank_token_id == tokenizer.blank_token_id
    for text in MIXED_TEXTS:
        assert loaded(text).input_ids == tokenizer(text).input_ids
        assert loaded.decode(loaded(text).input_ids) == tokenizer.decode(tokenizer(text).input_ids)


def test_round_trip_keeps_init_flags_and_works_without_spm(files, tmp_path):
    tok = FireRedAsrTokenizer(files["vocab_file"], replace_punctuation=False)
    tok.save_pretrained(tmp_path)
    assert not (tmp_path / "train_bpe1000.model").exists()
    loaded = FireRedAsrTokenizer.from_pretrained(tmp_path)
    assert loaded.sp_model is None and loaded.replace_punctuation is False
    assert loaded("你好, go").input_ids == tok("你好, go").input_ids


def test_pickle(tokenizer):
    clone = pickle.loads(pickle.dumps(tokenizer))
    for text in MIXED_TEXTS:
        assert clone(text).input_ids == tokenizer(text).input_ids


def test_bad_vocab_files(tmp_path):
    (tmp_path / "gap.txt").write_text("<unk> 0\n<eos> 2\n", encoding="utf-8")
    with pytest.raises(ValueError, match="expected id 1"):
        FireRedAsrTokenizer(str(tmp_path / "gap.txt"))
    (tmp_path / "dup.txt").write_text("<unk> 0\n你 1\n你 2\n", encoding="utf-8")
    with pytest.raises(ValueError, match="duplicate"):
        FireRedAsrTokenizer(str(tmp_path / "dup.txt"))
    (tmp_path / "nounk.txt").write_text("<blank> 0\n你 1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="unknown token"):
        FireRedAsrTokenizer(str(tmp_path / "nounk.txt"))
