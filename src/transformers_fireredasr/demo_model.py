"""Where the bundled demo models live: the demo recogniser (the default model of the CLI, the server and the
notebooks) and the demo punctuation model (what `--punctuation` alone names)."""

from __future__ import annotations

from pathlib import Path


def demo_model_dir() -> Path:
    """The folder of the small demo model shipped inside the package (a converted FireRedASR-AED with a CTC head).

    Raises FileNotFoundError when this build ships none (a source tree without its `demo/` folder).
    """
    folder = Path(__file__).parent / "demo"
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"this build of transformers-fireredasr ships no demo model ({folder} is missing)")
    return folder


def demo_punctuation_dir() -> Path:
    """The folder of the small punctuation model shipped inside the package (a BERT token classifier trained on
    Chinese product reviews; see its README.md).

    Raises FileNotFoundError when this build ships none.
    """
    folder = Path(__file__).parent / "demo_punctuation"
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"this build of transformers-fireredasr ships no demo punctuation model ({folder})")
    return folder


__all__ = ["demo_model_dir", "demo_punctuation_dir"]
