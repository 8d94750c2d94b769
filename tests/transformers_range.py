"""The transformers range the package declares (pyproject.toml), for tests/run.sh and the range tests."""

from __future__ import annotations

import re
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def declared_range() -> str:
    """The `transformers` requirement of the project's dependencies, e.g. `>=5.23,<6`."""
    match = re.search(r'"transformers\s*([<>=!~][^"]*)"', PYPROJECT.read_text())
    if match is None:
        raise ValueError(f"{PYPROJECT} declares no transformers requirement")
    return match.group(1).strip()


def lowest_supported() -> str:
    """The floor of that range as a full release number (`>=5.23` -> `5.23.0`)."""
    match = re.search(r">=\s*([0-9.]+)", declared_range())
    if match is None:
        raise ValueError(f"the transformers requirement {declared_range()!r} has no >= floor")
    parts = match.group(1).split(".")
    return ".".join(parts + ["0"] * (3 - len(parts)))
