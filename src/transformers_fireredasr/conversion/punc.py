"""Converts an original FireRedPunc folder (FireRedASR2S's punctuation model) into a folder that `from_pretrained`
loads as a `BertForTokenClassification`.

Input, as upstream publishes it:
- `model.pth.tar`: `{"args", "model_state_dict"}`, the fine-tuned BERT (`bert.*`, no pooler) and its tag classifier
  (`classifier.*`); `args` holds `odim` (the number of tags), `classifier_dropout` and `cls_id`;
- `chinese-lert-base/`: the base BERT's `config.json` (the architecture) and `vocab.txt` (the tokenizer upstream
  splits text with); its weights are not read, since the checkpoint must hold every weight;
- `chinese-bert-wwm-ext_vocab.txt`: the ids the model was trained with (upstream looks each lert token up here);
- `out_dict`: the tags, one a line (`<space>` or an empty line is "no mark"; then `，`, `。`, `？`, `！`).

Output: `config.json` (with `id2label` from `out_dict`, "no mark" as `O`), `model.safetensors`, the tokenizer
(lert-base's vocab and settings) and the model card as `README.md`.

Differences from upstream's loader, on purpose:
- upstream loads the checkpoint over lert-base with `strict=False`, silently keeping a base weight for any key the
  checkpoint lacks and ignoring any key the model lacks; here either fails, naming the keys;
- the two vocabularies are compared: when they list the same tokens in the same order the tokenizer's ids are the
  trained ids; otherwise the embedding rows are remapped so that each lert token id reads the row upstream would
  use (its id in `chinese-bert-wwm-ext_vocab.txt`, or `[UNK]`'s).
"""

from __future__ import annotations

import argparse
import logging
from importlib import resources
from pathlib import Path

import torch
from transformers import BertConfig, BertForTokenClassification, BertTokenizer

from .aed import check_input_dir
from .checkpoint import load_original_package, require_args
from .hub import converter_main, finish_conversion

logger = logging.getLogger(__name__)

BASE_DIR = "chinese-lert-base"
TRAINED_VOCAB = "chinese-bert-wwm-ext_vocab.txt"
OUT_DICT = "out_dict"
PUNC_FILES = ("model.pth.tar", OUT_DICT, TRAINED_VOCAB, f"{BASE_DIR}/config.json", f"{BASE_DIR}/vocab.txt")
PUNC_ARGS = ["odim", "cls_id"]
# The tag meaning "no mark after this token" (upstream's `out_dict` spells it `<space>`, read as " ").
NO_MARK = "O"
PUNC_CARD = "FireRedPunc"
# A buffer older transformers releases saved with BERT's weights; it holds no learned values.
_POSITION_IDS = "bert.embeddings.position_ids"
# Upstream's training code keeps the loaded BertModel in `args.bert`, so a checkpoint may pickle that module beside
# the weights. Classes from these packages (kernels: what transformers 5 attaches to a loaded model) are read as
# inert placeholders, never constructed.
_MODULE_PACKAGES = ("torch.nn.", "torch._C._nn.", "transformers.", "kernels.")


class _Placeholder:
    """Stands in for a pickled module object in `args`: accepts whatever it is built with and does nothing."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass

    def __call__(self, *args, **kwargs):
        return _Placeholder()


def load_punc_package(path: Path) -> tuple[argparse.Namespace | None, dict[str, torch.Tensor]]:
    """`(args, state_dict)` of FireRedPunc's `model.pth.tar`, read with `torch.load(weights_only=True)`.

    Besides tensors and `argparse.Namespace`, only classes of torch.nn and transformers are accepted (a module kept in
    `args`), each replaced by an inert placeholder; anything else is refused as `load_original_package` refuses it.
    """
    try:
        return load_original_package(path)
    except ValueError as error:
        try:
            names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
        except Exception:
            raise error from None
        names = [name for name in names if name != "argparse.Namespace"]
        if not names or not all(name.startswith(_MODULE_PACKAGES) for name in names):
            raise
        placeholders = [(type(name, (_Placeholder,), {}), name) for name in names]
        with torch.serialization.safe_globals(placeholders):
            return load_original_package(path)


def is_punc_folder(folder: str | Path) -> bool:
    """Whether `folder` holds an original FireRedPunc release (the files `convert_punc` reads, no `config.json`)."""
    folder = Path(folder)
    if not folder.is_dir() or (folder / "config.json").is_file():
        return False
    try:
        check_input_dir(folder, PUNC_FILES)
    except FileNotFoundError:
        return False
    return True


def read_token_list(path: str | Path) -> list[str]:
    """The tokens of a vocabulary or tag file, by id, read the way upstream reads them: one token a line, optionally
    followed by its id (which must be the line number); `<space>`, an empty or a blank line mean " "."""
    tokens = []
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file):
            fields = line.strip().split()
            token = fields[0] if fields else " "
            if len(fields) >= 2 and int(fields[1]) != number:
                raise ValueError(f"{path}:{number + 1}: id {fields[1]} is not the line's position {number}")
            tokens.append(" " if token == "<space>" else token)
    if len(set(tokens)) != len(tokens):
        repeated = sorted({token for token in tokens if tokens.count(token) > 1})
        raise ValueError(f"{path} lists {', '.join(map(repr, repeated[:5]))} more than once")
    return tokens


def labels_from_out_dict(path: str | Path) -> dict[int, str]:
    """`id2label` from `out_dict`: "no mark" (upstream's " ") becomes `O`, each mark is its own label."""
    tags = read_token_list(path)
    if " " not in tags:
        raise ValueError(f"{path} has no 'no mark' tag (`<space>` or an empty line); found {tags}")
    return {index: NO_MARK if tag == " " else tag for index, tag in enumerate(tags)}


def embedding_rows(base_vocab: list[str], trained_vocab: list[str]) -> list[int] | None:
    """None when the base tokenizer's ids are the trained ids; otherwise, for each base token id, the trained id
    upstream feeds the model for that token (its id in the trained vocabulary, else `[UNK]`'s)."""
    if base_vocab == trained_vocab:
        return None
    index = {token: position for position, token in enumerate(trained_vocab)}
    if "[UNK]" not in index:
        raise ValueError(f"{TRAINED_VOCAB} has no [UNK] token")
    return [index.get(token, index["[UNK]"]) for token in base_vocab]


def punc_card_text() -> str:
    """The packaged FireRedPunc model card (YAML metadata + markdown)."""
    return (
        resources.files("transformers_fireredasr").joinpath("model_cards", PUNC_CARD, "README.md").read_text("utf-8")
    )


def _checked_weights(state_dict: dict[str, torch.Tensor], model: BertForTokenClassification) -> dict:
    """The checkpoint's tensors, after checking that they are exactly the model's weights."""
    weights = dict(state_dict)
    position_ids = weights.pop(_POSITION_IDS, None)
    if position_ids is not None and not torch.equal(position_ids.flatten(), torch.arange(position_ids.numel())):
        raise ValueError(f"{_POSITION_IDS} in the checkpoint is not 0, 1, 2, ...")
    shapes = {key: tensor.shape for key, tensor in model.state_dict().items()}
    expected = set(shapes)
    missing = sorted(expected - set(weights))
    unexpected = sorted(set(weights) - expected)
    if missing or unexpected:
        raise ValueError(
            f"model.pth.tar does not match a BertForTokenClassification of chinese-lert-base's config: missing "
            f"{missing}, unexpected {unexpected} (upstream's strict=False loading would silently keep lert-base's "
            "weights for the missing keys and drop the unexpected ones)"
        )
    for key, tensor in weights.items():
        if tensor.shape != shapes[key]:
            raise ValueError(
                f"model.pth.tar: {key} has shape {tuple(tensor.shape)}, the config gives {tuple(shapes[key])}"
            )
    return weights


def convert_punc(
    input_dir: str | Path, output_dir: str | Path, dtype: torch.dtype = torch.float32, push_to_hub: str | None = None
) -> Path:
    """Converts the original FireRedPunc folder `input_dir` into `output_dir`; returns `output_dir`.

    Raises FileNotFoundError for a missing input file and ValueError when the checkpoint, its `args`, the tags or the
    vocabularies do not fit together (every missing or unexpected weight is named).
    """
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    check_input_dir(input_dir, PUNC_FILES)
    checkpoint = input_dir / "model.pth.tar"
    args, state_dict = load_punc_package(checkpoint)
    require_args(args, PUNC_ARGS, checkpoint)

    id2label = labels_from_out_dict(input_dir / OUT_DICT)
    if len(id2label) != args.odim:
        raise ValueError(f"{OUT_DICT} lists {len(id2label)} tags but the checkpoint's odim is {args.odim}")
    base_dir = input_dir / BASE_DIR
    base_vocab = read_token_list(base_dir / "vocab.txt")
    trained_vocab = read_token_list(input_dir / TRAINED_VOCAB)
    if "[CLS]" not in trained_vocab or args.cls_id != trained_vocab.index("[CLS]"):
        raise ValueError(f"the checkpoint's cls_id {args.cls_id} is not [CLS]'s id in {TRAINED_VOCAB}")
    rows = embedding_rows(base_vocab, trained_vocab)

    config = BertConfig.from_json_file(str(base_dir / "config.json"))
    config.architectures = ["BertForTokenClassification"]
    config.id2label = id2label
    config.label2id = {label: index for index, label in id2label.items()}
    config.classifier_dropout = float(getattr(args, "classifier_dropout", config.hidden_dropout_prob))
    embeddings = state_dict.get("bert.embeddings.word_embeddings.weight")
    if rows is not None and embeddings is not None:
        if len(trained_vocab) > embeddings.shape[0]:
            raise ValueError(f"{TRAINED_VOCAB} has {len(trained_vocab)} ids; the embedding has {embeddings.shape[0]}")
        logger.info(
            "%s/vocab.txt and %s differ: remapping the embedding rows to lert-base's ids", BASE_DIR, TRAINED_VOCAB
        )
        state_dict = {**state_dict, "bert.embeddings.word_embeddings.weight": embeddings[rows].clone()}
        config.vocab_size = len(base_vocab)

    model = BertForTokenClassification(config)
    model.load_state_dict(_checked_weights(state_dict, model), strict=True)
    model.to(dtype).eval()

    tokenizer = BertTokenizer.from_pretrained(str(base_dir))
    if len(tokenizer) != config.vocab_size:
        raise ValueError(f"{BASE_DIR}'s tokenizer has {len(tokenizer)} tokens but the model {config.vocab_size} ids")
    if "[CLS]" not in base_vocab or tokenizer.cls_token_id != base_vocab.index("[CLS]"):
        raise ValueError(f"{BASE_DIR}'s tokenizer does not use [CLS] as its class token")

    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    (output_dir / "README.md").write_text(punc_card_text(), encoding="utf-8")
    return finish_conversion(output_dir, push_to_hub)


def main(argv: list[str] | None = None) -> None:
    converter_main(convert_punc, "FireRedPunc", __doc__, argv)


if __name__ == "__main__":
    main()
