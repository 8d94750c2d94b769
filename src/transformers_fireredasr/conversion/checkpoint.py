"""Safe reading of the original `.pth.tar` packages: weights only, with `argparse.Namespace` as the one allowed class.

A converter must never run code hidden in a downloaded file, so `torch.load(weights_only=True)` is used and
only the `args` namespace the original stores next to its weights is allow-listed.
"""

from __future__ import annotations

import argparse
import pickle
import zipfile
from pathlib import Path

import torch


def load_original_package(
    path: str | Path, weights_optional: bool = False
) -> tuple[argparse.Namespace | None, dict[str, torch.Tensor]]:
    """Returns `(args, state_dict)` of an original FireRedASR `*.pth.tar` file.

    `weights_optional`: a package of `args` alone (FireRedASR2-LLM's `asr_encoder.pth.tar`) gives an empty state dict.

    Tensors are memory-mapped, so converting a multi-GB checkpoint does not hold a second copy in RAM.
    Raises FileNotFoundError for a missing file and ValueError for anything that is not such a package.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            # Memory-map zip-format files; the legacy torch format cannot be mapped and is read normally.
            mmap = zipfile.is_zipfile(path)
            package = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as error:
        raise ValueError(
            f"{path} is not a readable FireRedASR checkpoint (only tensors and argparse.Namespace are allowed "
            f"when unpickling): {error}"
        ) from error
    if weights_optional and isinstance(package, dict) and "model_state_dict" not in package and "args" in package:
        package = {**package, "model_state_dict": {}}
    if not isinstance(package, dict) or "model_state_dict" not in package:
        found = sorted(package) if isinstance(package, dict) else type(package).__name__
        raise ValueError(f"{path} has no 'model_state_dict' (found {found}); is it a FireRedASR .pth.tar package?")
    args = package.get("args")
    if args is not None and not isinstance(args, argparse.Namespace):
        raise ValueError(f"{path}: 'args' should be an argparse.Namespace, got {type(args).__name__}")
    return args, package["model_state_dict"]


def require_args(args: argparse.Namespace | None, names: list[str], path: str | Path) -> None:
    """Raises ValueError naming every hyper-parameter missing from a package's `args`."""
    missing = [name for name in names if args is None or not hasattr(args, name)]
    if missing:
        raise ValueError(f"{path}: 'args' lacks {', '.join(missing)}")
