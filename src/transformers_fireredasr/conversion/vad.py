"""Converts an original FireRedVAD folder (`VAD`, `Stream-VAD` or `AED` of the FireRedVAD release, or the release with
all three) into a folder that `from_pretrained` loads as a `FireRedVadForAudioFrameClassification` with its feature
extractor.

Input, as upstream publishes it (one folder per variant; the release holds the three side by side):
- `model.pth.tar`: `{"args", "model_state_dict"}`; `args` holds the DFSMN's sizes (`idim`, `R`, `M`, `H`, `P`, `N1`,
  `S1`, `N2`, `S2`, `odim`, `dropout`) and the weights are `dfsmn.*` and `out.*`;
- `cmvn.ark`: the variant's Kaldi global CMVN statistics.

Output: `config.json` (the sizes; `id2label` speech, or speech/singing/music for the audio-event variant),
`model.safetensors`, `preprocessor_config.json` (the project's Kaldi fbank with this variant's CMVN) and the model card
as `README.md`. Every weight must match: a missing, unexpected or misshapen one fails, naming it.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import torch

from ..configuration_fireredvad import EVENT_LABELS, FireRedVadConfig
from ..feature_extraction_fireredasr import FireRedAsrFeatureExtractor
from ..modeling_fireredvad import FireRedVadForAudioFrameClassification
from .aed import check_input_dir
from .checkpoint import load_original_package, require_args
from .hub import converter_main, finish_conversion

VAD_FILES = ("model.pth.tar", "cmvn.ark")
VAD_ARGS = ["idim", "R", "M", "H", "P", "N1", "S1", "N2", "S2", "odim"]
# The variant folders of the FireRedVAD release, the offline VAD first (the one a release folder stands for).
VARIANTS = ("VAD", "Stream-VAD", "AED")
VAD_CARD = "FireRedVAD"
# files of the other original releases that share `model.pth.tar` and `cmvn.ark` (ASR, LLM, LID), or of a converted one
_OTHER_RELEASES = ("config.json", "dict.txt", "asr_encoder.pth.tar", "train_bpe1000.model", "out_dict")
# upstream name -> this model's name; `dnns` is a Sequential of (Linear, ReLU, Dropout) triples
_KEY_PATTERNS = (
    (r"dfsmn\.fc1\.0\.", "input_block.expand."),
    (r"dfsmn\.fc2\.0\.", "input_block.project."),
    (r"dfsmn\.fsmn1\.lookback_filter\.", "input_block.memory.lookback."),
    (r"dfsmn\.fsmn1\.lookahead_filter\.", "input_block.memory.lookahead."),
    (r"dfsmn\.fsmns\.(\d+)\.fc1\.0\.", r"blocks.\1.expand."),
    (r"dfsmn\.fsmns\.(\d+)\.fc2\.", r"blocks.\1.project."),
    (r"dfsmn\.fsmns\.(\d+)\.fsmn\.lookback_filter\.", r"blocks.\1.memory.lookback."),
    (r"dfsmn\.fsmns\.(\d+)\.fsmn\.lookahead_filter\.", r"blocks.\1.memory.lookahead."),
    (r"out\.", "classifier."),
)


def is_vad_folder(folder: str | Path) -> bool:
    """Whether `folder` holds one original FireRedVAD variant: `model.pth.tar` and `cmvn.ark`, and none of the files
    that make it another release (a vocabulary, the LLM's ASR encoder, a `config.json`)."""
    folder = Path(folder)
    if not folder.is_dir() or any((folder / name).exists() for name in _OTHER_RELEASES):
        return False
    return all((folder / name).is_file() for name in VAD_FILES)


def release_variant(folder: str | Path, variant: str | None = None) -> Path | None:
    """The variant folder of a FireRedVAD release folder (`VAD/`, `Stream-VAD/`, `AED/` side by side): `variant`,
    by default the offline `VAD`. None when `folder` is no such release."""
    folder = Path(folder)
    if not any(is_vad_folder(folder / name) for name in VARIANTS):
        return None
    chosen = folder / (variant or VARIANTS[0])
    if variant is not None and variant not in VARIANTS:
        raise ValueError(f"unknown FireRedVAD variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    if not is_vad_folder(chosen):
        raise FileNotFoundError(f"{folder} holds no {chosen.name}/ with model.pth.tar and cmvn.ark")
    return chosen


def vad_card_text() -> str:
    """The packaged FireRedVAD model card (YAML metadata + markdown)."""
    return resources.files("transformers_fireredasr").joinpath("model_cards", VAD_CARD, "README.md").read_text("utf-8")


def config_from_args(args) -> FireRedVadConfig:
    """The model configuration for upstream's DFSMN hyper-parameters."""
    if args.odim not in (1, len(EVENT_LABELS)):
        raise ValueError(f"odim {args.odim}: FireRedVAD has 1 output (speech) or 3 (speech, singing, music)")
    return FireRedVadConfig(
        num_mel_bins=args.idim,
        num_blocks=args.R,
        num_dnn_layers=args.M,
        hidden_size=args.H,
        projection_size=args.P,
        lookback_order=args.N1,
        lookback_stride=args.S1,
        lookahead_order=args.N2,
        lookahead_stride=args.S2,
        dropout=float(getattr(args, "dropout", 0.1)),
        id2label=dict(enumerate(EVENT_LABELS[: args.odim])),
        architectures=["FireRedVadForAudioFrameClassification"],
    )


def map_key(key: str) -> str:
    """This model's name for an upstream weight name (unchanged when no pattern applies)."""
    for pattern, replacement in _KEY_PATTERNS:
        if re.match(pattern, key):
            return re.sub(pattern, replacement, key, count=1)
    found = re.match(r"dfsmn\.dnns\.(\d+)\.(weight|bias)$", key)
    if found and int(found.group(1)) % 3 == 0:
        return f"dnn.{int(found.group(1)) // 3}.{found.group(2)}"
    return key


def convert_vad(
    input_dir: str | Path, output_dir: str | Path, dtype: torch.dtype = torch.float32, push_to_hub: str | None = None
) -> Path:
    """Converts the original FireRedVAD folder `input_dir` into `output_dir`; returns `output_dir`.

    `input_dir` is one variant folder, or the release folder: then its `VAD` variant goes to `output_dir` itself and
    `Stream-VAD` and `AED` into subfolders of that name (load them with `subfolder=`). Raises FileNotFoundError for a
    missing input file and ValueError when a checkpoint's `args` or weights do not make a FireRedVAD DFSMN.
    """
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if not is_vad_folder(input_dir) and release_variant(input_dir) is not None:
        _convert_variant(release_variant(input_dir), output_dir, dtype)
        for name in VARIANTS[1:]:
            if is_vad_folder(input_dir / name):
                _convert_variant(input_dir / name, output_dir / name, dtype)
    else:
        _convert_variant(input_dir, output_dir, dtype)
    return finish_conversion(output_dir, push_to_hub)


def _convert_variant(input_dir: Path, output_dir: Path, dtype: torch.dtype) -> None:
    check_input_dir(input_dir, VAD_FILES)
    checkpoint = input_dir / "model.pth.tar"
    args, state_dict = load_original_package(checkpoint)
    require_args(args, VAD_ARGS, checkpoint)
    config = config_from_args(args)
    model = FireRedVadForAudioFrameClassification(config)
    weights = {map_key(key): tensor for key, tensor in state_dict.items()}
    expected = {key: tensor.shape for key, tensor in model.state_dict().items()}
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(key for key in state_dict if map_key(key) not in expected)
    if missing or unexpected:
        raise ValueError(
            f"{checkpoint} does not match a FireRedVAD DFSMN of its args: missing {missing}, unexpected {unexpected}"
        )
    for key, tensor in weights.items():
        if tensor.shape != expected[key]:
            raise ValueError(f"{checkpoint}: {key} has shape {tuple(tensor.shape)}, args give {tuple(expected[key])}")
    model.load_state_dict(weights, strict=True)
    model.to(dtype).eval()
    features = FireRedAsrFeatureExtractor.from_kaldi_cmvn(input_dir / "cmvn.ark")
    if features.feature_size != config.num_mel_bins:
        raise ValueError(f"cmvn.ark has {features.feature_size} bins, the checkpoint's idim is {config.num_mel_bins}")
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output_dir)
    features.save_pretrained(output_dir)
    (output_dir / "README.md").write_text(vad_card_text(), encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    converter_main(convert_vad, "FireRedVAD (a VAD, Stream-VAD or AED folder, or the release)", __doc__, argv)


if __name__ == "__main__":
    main()
