"""Converts an original FireRedASR-AED directory into a folder that `from_pretrained` loads.

Input: `model.pth.tar`, `cmvn.ark`, `dict.txt`, `train_bpe1000.model`. Output: `config.json`,
`model.safetensors`, `generation_config.json` (the published decoding settings), feature extractor, tokenizer
and processor files, and the model card as `README.md` (whatever the converted sizes).

Reads FireRedASR-AED (v1) and FireRedASR2-AED folders alike and tells them apart by the checkpoint: v2 has a CTC head
(`ctc.ctc_lo`, kept as the model's `ctc_head`, for word timestamps), an 8,667-token `dict.txt`, and lowercases
English in its output, dropping `<blank>`/`<sil>`; it gets the FireRedASR2-AED card.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from transformers import GenerationConfig

from ..configuration_fireredasr import FireRedAedConfig
from ..feature_extraction_fireredasr import FireRedAsrFeatureExtractor
from ..modeling_fireredasr_aed import FireRedAedForConditionalGeneration
from ..processing_fireredasr import FireRedAsrProcessor
from ..tokenization_fireredasr import FireRedAsrTokenizer
from .checkpoint import load_original_package, require_args
from .hub import AED2_CARD, AED_CARD, converter_main, finish_conversion
from .key_mapping import AED_PREFIXES, V2_AED_MARKER, convert_state_dict

AED_FILES = ("model.pth.tar", "cmvn.ark", "dict.txt", "train_bpe1000.model")
AED_ARGS = ["idim", "odim", "d_model", "n_head", "n_layers_enc", "n_layers_dec", "kernel_size", "sos_id", "eos_id",
            "pad_id"]  # fmt: skip

# Decoding settings published with FireRedASR-AED (beam 3, smoothing 1.25, GNMT length penalty 0.6, eos penalty 1).
# `max_new_tokens` is only a ceiling: each transcript is also limited to its encoder frame count, the original's
# rule; a value here also keeps the ASR pipeline from imposing its own 256-token default.
AED_DECODING = {
    "num_beams": 3,
    "softmax_smoothing": 1.25,
    "gnmt_length_penalty": 0.6,
    "eos_penalty": 1.0,
    "original_beam_search": True,
    "max_new_tokens": 4096,
}


def check_input_dir(input_dir: Path, names: tuple[str, ...]) -> None:
    """Raises FileNotFoundError listing every expected file missing from `input_dir`."""
    if not input_dir.is_dir():
        raise FileNotFoundError(f"input directory not found: {input_dir}")
    missing = [name for name in names if not (input_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{input_dir} lacks {', '.join(missing)} (expected {', '.join(names)})")


def encoder_config_from_args(args: argparse.Namespace) -> dict:
    """The Conformer encoder's config fields from the original argparse hyper-parameters."""
    return {
        "num_mel_bins": args.idim,
        "hidden_size": args.d_model,
        "num_hidden_layers": args.n_layers_enc,
        "num_attention_heads": args.n_head,
        "intermediate_size": args.d_model * 4,  # the original hard-codes 4 x d_model (its d_inner is unused)
        "conv_kernel_size": args.kernel_size,
        "hidden_dropout": getattr(args, "residual_dropout", 0.1),
        "activation_dropout": getattr(args, "dropout_rate", 0.1),
    }


def load_cmvn(cmvn_path: Path, num_mel_bins: int) -> FireRedAsrFeatureExtractor:
    """The feature extractor of `cmvn.ark`, checked against the encoder's input size."""
    feature_extractor = FireRedAsrFeatureExtractor.from_kaldi_cmvn(cmvn_path)
    if feature_extractor.feature_size != num_mel_bins:
        raise ValueError(
            f"{cmvn_path} has statistics for {feature_extractor.feature_size} fbank bins but the encoder expects "
            f"{num_mel_bins} (idim)"
        )
    return feature_extractor


def aed_version(state_dict: dict) -> int:
    """1 for FireRedASR-AED, 2 for FireRedASR2-AED (whose checkpoint adds the CTC head `ctc.ctc_lo`)."""
    return 2 if V2_AED_MARKER in state_dict else 1


def encoder_decoder_fields(args: argparse.Namespace) -> dict:
    """The config fields an encoder-decoder model takes from the original argparse hyper-parameters: the encoder,
    the decoder's width, heads and dropout, and the special ids (the AED's, and FireRedLID's label decoder's)."""
    return {
        "encoder_config": encoder_config_from_args(args),
        "d_model": args.d_model,
        "decoder_attention_heads": args.n_head,
        "decoder_ffn_dim": args.d_model * 4,
        "dropout": getattr(args, "residual_dropout", 0.1),
        "pad_token_id": args.pad_id,
        "bos_token_id": args.sos_id,
        "eos_token_id": args.eos_id,
        "decoder_start_token_id": args.sos_id,
        "blank_token_id": getattr(args, "blank_id", 0),
    }


def aed_config_from_args(args: argparse.Namespace, ctc_head: bool = False) -> FireRedAedConfig:
    """Maps the original argparse hyper-parameters to a [`FireRedAedConfig`] (with a CTC head for v2)."""
    return FireRedAedConfig(
        ctc_head=ctc_head, vocab_size=args.odim, decoder_layers=args.n_layers_dec, **encoder_decoder_fields(args)
    )


def decoding_generation_config(config, decoding: dict) -> GenerationConfig:
    """A generation config of `config`'s special ids and the decoding settings `decoding`."""
    return GenerationConfig(
        decoder_start_token_id=config.decoder_start_token_id,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
        **decoding,
    )


def aed_generation_config(config: FireRedAedConfig) -> GenerationConfig:
    """The published decoding settings as a generation config."""
    return decoding_generation_config(config, AED_DECODING)


def convert_aed(
    input_dir: str | Path, output_dir: str | Path, dtype: torch.dtype = torch.float32, push_to_hub: str | None = None
) -> Path:
    """Converts the original AED directory `input_dir` into `output_dir`; returns `output_dir`."""
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    check_input_dir(input_dir, AED_FILES)
    args, state_dict = load_original_package(input_dir / "model.pth.tar")
    require_args(args, AED_ARGS, input_dir / "model.pth.tar")
    version = aed_version(state_dict)
    config = aed_config_from_args(args, ctc_head=version == 2)

    with torch.device("meta"):
        model = FireRedAedForConditionalGeneration(config)
    weights = convert_state_dict(state_dict, AED_PREFIXES)
    missing, unexpected = model.load_state_dict(weights, strict=False, assign=True)
    missing = [key for key in missing if key not in model._tied_weights_keys]
    if missing or unexpected:
        raise ValueError(f"checkpoint does not match its args: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    model.to(dtype).eval()
    model.generation_config = aed_generation_config(config)

    feature_extractor = load_cmvn(input_dir / "cmvn.ark", args.idim)
    # FireRedASR2 lowercases English in its output and never shows `<blank>` / `<sil>`.
    v2_output = {"lowercase_output": True, "hidden_tokens": ["<blank>", "<sil>"]} if version == 2 else {}
    tokenizer = FireRedAsrTokenizer(
        vocab_file=str(input_dir / "dict.txt"), spm_file=str(input_dir / "train_bpe1000.model"), **v2_output
    )
    if len(tokenizer) != config.vocab_size:
        raise ValueError(f"dict.txt has {len(tokenizer)} tokens but the model's output size is {config.vocab_size}")
    processor = FireRedAsrProcessor(feature_extractor, tokenizer)

    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    return finish_conversion(output_dir, push_to_hub, model_card=AED2_CARD if version == 2 else AED_CARD)


def main(argv: list[str] | None = None) -> None:
    converter_main(convert_aed, "FireRedASR-AED", __doc__, argv)


if __name__ == "__main__":
    main()
