"""The last step of both converters: the model card (`README.md`) and the optional upload to the Hugging Face Hub
(`--push_to_hub REPO_ID`)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path

logger = logging.getLogger(__name__)

# The Hub model cards ship inside the package (`transformers_fireredasr/model_cards/<name>/README.md`, package data
# in pyproject.toml) so that a converter installed with `pip install` finds them; `model_cards/` at the top of the
# repository is a relative symlink to that folder, for browsing. The real files live in the package (not the other
# way round) because package data must sit inside the package, and a wheel or sdist built from a checkout without
# symlink support (Windows) would otherwise lose them.
AED_CARD = "FireRedASR-AED-L"
LLM_CARD = "FireRedASR-LLM-L"
AED2_CARD = "FireRedASR2-AED"
LLM2_CARD = "FireRedASR2-LLM"
MODEL_CARDS = (AED_CARD, LLM_CARD, AED2_CARD, LLM2_CARD)


def model_card_text(name: str) -> str:
    """The packaged Hub model card `name` (one of `MODEL_CARDS`): YAML metadata + markdown."""
    if name not in MODEL_CARDS:
        raise ValueError(f"unknown model card {name!r}; expected one of {', '.join(MODEL_CARDS)}")
    return resources.files("transformers_fireredasr").joinpath("model_cards", name, "README.md").read_text("utf-8")


def write_model_card(output_dir: Path, name: str) -> Path:
    """Writes the model card `name` as `output_dir/README.md` (replacing any there) and returns its path.

    The card describes the model family as released (the L size, its paper results); it is written whatever the
    sizes of the converted checkpoint, so small or fine-tuned conversions carry the card of their family too.
    """
    path = Path(output_dir) / "README.md"
    path.write_text(model_card_text(name), encoding="utf-8")
    return path


def finish_conversion(output_dir: Path, push_to_hub: str | None, model_card: str | None = None) -> Path:
    """Writes the model card `model_card` (a name in `MODEL_CARDS`, see `write_model_card`) as `README.md`, logs
    the written folder and, when `push_to_hub` names a repo, creates it and uploads the folder (card included)."""
    if model_card is not None:
        write_model_card(output_dir, model_card)
    logger.info("wrote %s", output_dir)
    if push_to_hub:
        from huggingface_hub import HfApi

        api = HfApi()
        api.create_repo(push_to_hub, exist_ok=True)
        api.upload_folder(folder_path=str(output_dir), repo_id=push_to_hub)
        logger.info("uploaded %s to %s", output_dir, push_to_hub)
    return output_dir


def converter_main(convert: Callable[..., Path], what: str, description: str, argv: Sequence[str] | None) -> None:
    """The command line every one-folder converter shares: `--input_dir` (the original `what` folder),
    `--output_dir`, `--dtype` and `--push_to_hub`, handed to `convert(input_dir, output_dir, dtype, push_to_hub)`."""
    import torch

    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input_dir", required=True, help=f"original {what} directory")
    parser.add_argument("--output_dir", required=True, help="where to write the transformers folder")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--push_to_hub", default=None, metavar="REPO_ID", help="also upload the folder to the Hub")
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    convert(options.input_dir, options.output_dir, getattr(torch, options.dtype), options.push_to_hub)
