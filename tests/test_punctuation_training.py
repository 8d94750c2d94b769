"""Fine-tuning a punctuation model: text prepared as a recogniser writes it, examples shaped as the punctuator calls
the model (their labels give the original marks back through the punctuator), F1 per mark, and
examples/finetune_punctuation.py learning with `Trainer`."""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForTokenClassification, BertTokenizer

from transformers_fireredasr.punctuation import Punctuator
from transformers_fireredasr.punctuation_training import (
    LABELS,
    mark_scores,
    punctuation_examples,
    punctuation_metrics,
    split_marks,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "finetune_punctuation.py"
TEXTS = [
    "今天天气很好，我们去公园吧。你来不来？",
    "质量不错,价格3.5元!!还会再买吗?",
    "Hello, world! I'm fine. 我很好。",
    "访问www.example.com：价格1,000元；10:30到《好书》“很好”、真的...",
]
LABEL2ID = {label: index for index, label in enumerate(LABELS)}


def with_marks(text: str, marks: dict[int, str]) -> str:
    return "".join(char + marks.get(index, "") for index, char in enumerate(text))


@pytest.mark.parametrize(
    ("text", "plain", "marked"),
    [
        (TEXTS[0], "今天天气很好我们去公园吧你来不来", "今天天气很好，我们去公园吧。你来不来？"),
        # Half-width marks count as full-width ones, the strongest of a run is kept; 3.5 keeps its point.
        (TEXTS[1], "质量不错价格3.5元还会再买吗", "质量不错，价格3.5元！还会再买吗？"),
        # Latin is lowercased, keeps its spaces and apostrophes, and loses them next to Chinese.
        (TEXTS[2], "hello world i'm fine我很好", "hello， world！ i'm fine。我很好。"),
        # Names and numbers keep their points, commas and colons; ；：count as commas; quotes, brackets, 、 go.
        (
            TEXTS[3],
            "访问www.example.com价格1,000元10:30到好书很好真的",
            "访问www.example.com，价格1,000元，10:30到好书很好真的。",
        ),
    ],
)
def test_text_is_prepared_as_a_recogniser_writes_it(text, plain, marked):
    got, marks = split_marks(text)
    assert got == plain and with_marks(got, marks) == marked


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    chars = sorted({char for text in TEXTS for char in split_marks(text)[0] if not char.isspace()})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *(f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz")]
    vocab += ["hello", "world", "fine", "www", "example", "com"]
    folder = tmp_path_factory.mktemp("punc_vocab")
    (folder / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n", encoding="utf-8")
    return BertTokenizer.from_pretrained(str(folder))


class FromLabels(Punctuator):
    """A punctuator whose model answers with the examples' labels: the marks the training text had."""

    def __init__(self, model, tokenizer, examples):
        super().__init__(model, tokenizer)
        self.answers = {tuple(e["input_ids"][1:]): e["labels"][1:] for e in examples}

    def token_probabilities(self, token_ids):
        labels = [torch.tensor([max(label, 0) for label in self.answers[tuple(ids)]]) for ids in token_ids]
        return [torch.nn.functional.one_hot(row, len(LABELS)).float() for row in labels]


def tiny_model(tokenizer, positions: int = 64) -> BertForTokenClassification:
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=positions,
        id2label=dict(enumerate(LABELS)),
        label2id=LABEL2ID,
    )
    return BertForTokenClassification(config)


def test_examples_are_cls_and_ids_without_sep_labelled_with_the_marks_the_punctuator_writes(tokenizer):
    examples = punctuation_examples(TEXTS[:3], tokenizer, LABEL2ID, max_tokens=63)
    assert len(examples) == 3
    for example in examples:
        ids = example["input_ids"]
        assert ids[0] == tokenizer.cls_token_id and tokenizer.sep_token_id not in ids
        assert example["labels"][0] == -100 and len(example["labels"]) == len(ids) == len(example["attention_mask"])
    # Inner pieces of a word are not trained: "hello" is one token here, "i'm" several.
    pieces = examples[2]["labels"][1:]
    assert pieces.count(-100) == len(tokenizer.tokenize("i'm")) - 1
    punctuator = FromLabels(tiny_model(tokenizer), tokenizer, examples)
    plain = [split_marks(text)[0] for text in TEXTS[:3]]
    assert punctuator.punctuate(plain) == [
        "今天天气很好，我们去公园吧。你来不来？",
        "质量不错，价格3.5元！还会再买吗？",
        "Hello, world! I'm fine. 我很好。",
    ]


def test_long_texts_are_cut_into_chunks_that_each_start_with_cls(tokenizer):
    whole = punctuation_examples(TEXTS[:1], tokenizer, LABEL2ID, max_tokens=100)[0]
    chunks = punctuation_examples(TEXTS[:1], tokenizer, LABEL2ID, max_tokens=4)
    assert all(c["input_ids"][0] == tokenizer.cls_token_id and len(c["input_ids"]) <= 5 for c in chunks)
    assert [i for c in chunks for i in c["input_ids"][1:]] == whole["input_ids"][1:]
    assert [label for c in chunks for label in c["labels"][1:]] == whole["labels"][1:]


def test_bad_settings_are_refused(tokenizer):
    with pytest.raises(ValueError, match="max_tokens must be at least 1"):
        punctuation_examples(TEXTS, tokenizer, LABEL2ID, max_tokens=0)
    with pytest.raises(ValueError, match="no label for ？"):
        punctuation_examples(TEXTS, tokenizer, {"O": 0, "，": 1, "。": 2, "！": 3}, max_tokens=10)
    assert punctuation_examples(["。。。", ""], tokenizer, LABEL2ID, max_tokens=10) == []


def test_f1_per_mark_counts_only_the_right_mark_at_the_right_place():
    labels = np.array([[-100, 0, 1, 0, 2, 1], [-100, 3, 0, 1, -100, -100]])
    predictions = np.array([[4, 0, 1, 1, 2, 0], [0, 3, 0, 1, 2, 2]])
    scores = mark_scores(predictions, labels, dict(enumerate(LABELS)))
    # ，: 2 of 3 found, 1 false alarm; 。 and ？: all right; ！: never wanted, never predicted.
    assert scores["precision_，"] == pytest.approx(200 / 3) and scores["recall_，"] == pytest.approx(200 / 3)
    assert scores["f1_。"] == 100 and scores["f1_？"] == 100 and scores["f1_！"] == 0
    assert scores["precision"] == pytest.approx(80) and scores["recall"] == pytest.approx(80)
    assert scores["f1"] == pytest.approx(80)
    logits = np.eye(len(LABELS))[predictions]
    evaluation = type("Evaluation", (), {"predictions": (logits,), "label_ids": labels})()
    assert punctuation_metrics(dict(enumerate(LABELS)))(evaluation) == scores
    with pytest.raises(ValueError, match="differ in shape"):
        mark_scores(predictions[:1], labels, dict(enumerate(LABELS)))


def synthetic_lines(count: int, seed: int) -> list[str]:
    """Punctuated text with a learnable rule: 说 is followed by a comma, 吗 ends a question, 了 a statement."""
    rng = random.Random(seed)
    words = "我你他们天气公园学校工作朋友电影音乐"

    def clause() -> str:
        return "".join(rng.choice(words) for _ in range(rng.randint(2, 5)))

    lines = []
    for _ in range(count):
        sentences = []
        for _ in range(rng.randint(1, 3)):
            body = f"{clause()}说，{clause()}" if rng.random() < 0.5 else clause()
            sentences.append(f"{body}吗？" if rng.random() < 0.4 else f"{body}了。")
        lines.append("".join(sentences))
    return lines


def test_the_example_script_learns_with_trainer_and_reports_f1_per_mark(tmp_path):
    spec = importlib.util.spec_from_file_location("finetune_punctuation", EXAMPLE)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    (tmp_path / "train.txt").write_text("\n".join(synthetic_lines(400, 0)) + "\n", encoding="utf-8")
    (tmp_path / "test.txt").write_text("\n".join(synthetic_lines(60, 1)) + "\n", encoding="utf-8")
    chars = sorted(set("我你他们天气公园学校工作朋友电影音乐说吗了"))
    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars]) + "\n")
    common = ["--train-file", str(tmp_path / "train.txt"), "--eval-file", str(tmp_path / "test.txt")]
    sizes = ["--hidden-size", "32", "--layers", "1", "--heads", "2", "--intermediate-size", "64"]
    out = tmp_path / "model"
    results = script.main(
        ["--new-model", str(tmp_path / "vocab.txt"), *common, "--output-dir", str(out), *sizes, "--max-positions",
         "64", "--max-steps", "80", "--batch-size", "16", "--learning-rate", "3e-3", "--max-tokens", "40"]
    )  # fmt: skip
    assert json.loads((out / "eval_results.json").read_text()) == json.loads(json.dumps(results))
    after, before = results["after"], results["before"]
    assert after["eval_f1"] > 90 > before["eval_f1"]
    assert min(after["eval_f1_，"], after["eval_f1_。"], after["eval_f1_？"]) > 80
    # The folder it writes punctuates, and fine-tuning it again starts from what it learned.
    punctuator = Punctuator.from_pretrained(out)
    assert punctuator.punctuate(["我们说天气了你去学校吗"]) == ["我们说，天气了。你去学校吗？"]
    again = script.main(["--model", str(out), *common, "--output-dir", str(tmp_path / "again"), "--max-steps", "1"])
    assert again["before"]["eval_f1"] == pytest.approx(after["eval_f1"])


def test_the_bundled_punctuation_model_punctuates_offline_and_its_card_quotes_its_evaluation():
    from transformers_fireredasr import demo_punctuation_dir

    folder = demo_punctuation_dir()
    text = "这个手机质量不错价格也便宜物流很快下次还会再买"
    punctuated = Punctuator.from_pretrained(folder).punctuate([text])[0]
    assert punctuated.endswith("。") and "，" in punctuated
    assert "".join(char for char in punctuated if char not in "，。？！") == text
    results = json.loads((folder / "eval_results.json").read_text(encoding="utf-8"))["after"]
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert f"value: {results['eval_f1']:.1f}" in card
    for mark in ("，", "。", "？", "！"):
        assert f"| `{mark}` | {results[f'eval_precision_{mark}']:.1f} |" in card
