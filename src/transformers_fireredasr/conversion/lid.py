"""Converts an original FireRedLID folder (FireRedASR2S's language identifier) into a folder that `from_pretrained`
loads as a [`FireRedLidForConditionalGeneration`].

Input, as upstream publishes it: `model.pth.tar` (`{"args", "model_state_dict"}` with the Conformer encoder under
`encoder.` and the label decoder under `lid_decoder.`), `dict.txt` (the labels, `label id` per line, `<pad>`,
`<sos>`, `<eos>` = 2, 3, 4) and `cmvn.ark` (its own fbank statistics). Output: `config.json`, `model.safetensors`,
`generation_config.json` (upstream's decoding settings), the feature extractor, the tokenizer, and the model card as
`README.md`.

Differences from upstream's loader, on purpose: the decoder's layer count and label count are read from the weights
(not from `args`); upstream loads the checkpoint with `strict=False`, silently keeping random weights for any key
it lacks and ignoring any key the model lacks, while this converter fails naming such keys.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import torch
from transformers import GenerationConfig

from ..configuration_fireredlid import FireRedLidConfig
from ..modeling_fireredlid import FireRedLidForConditionalGeneration
from ..processing_fireredasr import FireRedAsrProcessor
from ..tokenization_fireredlid import FireRedLidTokenizer
from .aed import check_input_dir, decoding_generation_config, encoder_decoder_fields, load_cmvn
from .checkpoint import load_original_package, require_args
from .hub import converter_main, finish_conversion
from .key_mapping import LID_PREFIXES, convert_state_dict

LID_FILES = ("model.pth.tar", "cmvn.ark", "dict.txt")
# An AED folder has these too, plus its sentencepiece model; a LID's `dict.txt` lists a few hundred labels at most.
AED_ONLY_FILE = "train_bpe1000.model"
MAX_LID_LABELS = 1000
LID_ARGS = ["idim", "d_model", "n_head", "n_layers_enc", "kernel_size", "sos_id", "eos_id", "pad_id"]
LID_CARD = "FireRedLID"
EMBEDDING = "lid_decoder.tgt_word_emb.weight"
PROJECTION = "lid_decoder.tgt_word_prj.weight"
_DECODER_LAYER = re.compile(r"^lid_decoder\.layer_stack\.(\d+)\.")
_SINUSOID_TABLE = re.compile(r"(^|\.)positional_encoding\.pe$")

# Upstream's decoding settings (FireRedLid in fireredlid/lid.py): beam 3, at most 2 labels, smoothing 1.25, GNMT
# length penalty 0.6, eos penalty 1, one hypothesis.
LID_DECODING = {
    "num_beams": 3,
    "max_new_tokens": 2,
    "softmax_smoothing": 1.25,
    "gnmt_length_penalty": 0.6,
    "eos_penalty": 1.0,
    "original_beam_search": True,
}


def is_lid_folder(folder: str | Path) -> bool:
    """Whether `folder` holds an original FireRedLID release: `model.pth.tar`, `cmvn.ark` and a short `dict.txt` of
    labels, no sentencepiece model (an AED's) and no `config.json`."""
    folder = Path(folder)
    if not folder.is_dir() or (folder / "config.json").is_file() or (folder / AED_ONLY_FILE).exists():
        return False
    try:
        check_input_dir(folder, LID_FILES)
    except FileNotFoundError:
        return False
    with open(folder / "dict.txt", encoding="utf-8", errors="replace") as file:
        return sum(1 for _ in zip(file, range(MAX_LID_LABELS + 1), strict=False)) <= MAX_LID_LABELS


def lid_card_text() -> str:
    """The packaged FireRedLID model card (YAML metadata + markdown)."""
    return resources.files("transformers_fireredasr").joinpath("model_cards", LID_CARD, "README.md").read_text("utf-8")


def decoder_layer_count(state_dict: dict) -> int:
    """The label decoder's layer count, from its `lid_decoder.layer_stack.N.*` keys (0, 1, ... with no gap)."""
    layers = {int(match.group(1)) for key in state_dict if (match := _DECODER_LAYER.match(key))}
    if not layers:
        raise ValueError("the checkpoint has no lid_decoder.layer_stack.N.* weights: is it a FireRedLID checkpoint?")
    if layers != set(range(len(layers))):
        raise ValueError(f"the checkpoint's decoder layers are numbered {sorted(layers)}, not 0..{len(layers) - 1}")
    return len(layers)


def lid_weights(state_dict: dict) -> dict:
    """The checkpoint's tensors under this package's names; raises ValueError naming every key that is neither the
    encoder's nor the label decoder's, and when the output projection is not the label embedding (it is tied)."""
    unexpected = sorted(key for key in state_dict if not key.startswith(tuple(LID_PREFIXES)))
    if unexpected:
        hint = (
            " (an ASR checkpoint? FireRedLID's decoder is under lid_decoder.)"
            if any(key.startswith("decoder.") for key in unexpected)
            else ""
        )
        raise ValueError(f"unexpected keys in the FireRedLID checkpoint{hint}: {unexpected}")
    weights = {key: tensor for key, tensor in state_dict.items() if not _SINUSOID_TABLE.search(key)}
    projection = weights.pop(PROJECTION, None)
    if projection is not None and (EMBEDDING not in weights or not torch.equal(projection, weights[EMBEDDING])):
        raise ValueError(f"{PROJECTION} differs from {EMBEDDING}: FireRedLID ties its output projection")
    try:
        return convert_state_dict(weights, LID_PREFIXES)
    except KeyError as error:
        raise ValueError(error.args[0]) from None


def lid_config(args, state_dict: dict) -> FireRedLidConfig:
    """The model's config: the encoder from `args`, the decoder's label and layer counts from the weights."""
    if EMBEDDING not in state_dict:
        raise ValueError(f"the checkpoint lacks {EMBEDDING}")
    labels, width = state_dict[EMBEDDING].shape
    declared = getattr(args, "lid_odim", None)
    if declared is not None and declared != labels:
        raise ValueError(f"args.lid_odim is {declared} but {EMBEDDING} has {labels} rows")
    if width != args.d_model:
        raise ValueError(f"{EMBEDDING} is {width} wide but args.d_model is {args.d_model}")
    return FireRedLidConfig(
        vocab_size=labels, decoder_layers=decoder_layer_count(state_dict), **encoder_decoder_fields(args)
    )


def lid_generation_config(config: FireRedLidConfig) -> GenerationConfig:
    """Upstream's decoding settings as a generation config."""
    return decoding_generation_config(config, LID_DECODING)


def convert_lid(
    input_dir: str | Path, output_dir: str | Path, dtype: torch.dtype = torch.float32, push_to_hub: str | None = None
) -> Path:
    """Converts the original FireRedLID folder `input_dir` into `output_dir`; returns `output_dir`.

    Raises FileNotFoundError for a missing input file and ValueError when the checkpoint, its `args` and the labels
    do not fit together (every missing or unexpected weight is named).
    """
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    check_input_dir(input_dir, LID_FILES)
    checkpoint = input_dir / "model.pth.tar"
    args, state_dict = load_original_package(checkpoint)
    require_args(args, LID_ARGS, checkpoint)
    weights = lid_weights(state_dict)
    config = lid_config(args, state_dict)

    with torch.device("meta"):
        model = FireRedLidForConditionalGeneration(config)
    missing, unexpected = model.load_state_dict(weights, strict=False, assign=True)
    missing = [key for key in missing if key not in model._tied_weights_keys]
    if missing or unexpected:
        raise ValueError(
            f"model.pth.tar does not match its args: missing {missing}, unexpected {unexpected} (upstream's "
            "strict=False loading would silently keep random weights for the missing keys)"
        )
    model.tie_weights()
    model.to(dtype).eval()
    model.generation_config = lid_generation_config(config)

    tokenizer = FireRedLidTokenizer(vocab_file=str(input_dir / "dict.txt"))
    if len(tokenizer) != config.vocab_size:
        raise ValueError(f"dict.txt has {len(tokenizer)} labels but the model's output size is {config.vocab_size}")
    # The labels as a classification model names them (`config.id2label`), for the audio-classification pipeline.
    model.config.id2label = {index: tokenizer.convert_ids_to_tokens(index) for index in range(len(tokenizer))}
    model.config.label2id = {label: index for index, label in model.config.id2label.items()}
    specials = {"pad": config.pad_token_id, "bos": config.bos_token_id, "eos": config.eos_token_id}
    for name, index in specials.items():
        if getattr(tokenizer, f"{name}_token_id") != index:
            raise ValueError(
                f"dict.txt gives {getattr(tokenizer, f'{name}_token')} the id {getattr(tokenizer, f'{name}_token_id')}"
                f", the checkpoint's args {index}"
            )
    processor = FireRedAsrProcessor(load_cmvn(input_dir / "cmvn.ark", args.idim), tokenizer)

    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    (output_dir / "README.md").write_text(lid_card_text(), encoding="utf-8")
    return finish_conversion(output_dir, push_to_hub)


def main(argv: list[str] | None = None) -> None:
    converter_main(convert_lid, "FireRedLID", __doc__, argv)


if __name__ == "__main__":
    main()
