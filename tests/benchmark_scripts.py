"""Scripts under `benchmarks/` (and `examples/`) imported as modules, for the tests that call them at a tiny size."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def benchmark_module(name: str) -> Iterator:
    """Yields `benchmarks/<name>.py` as module `name`; see `script_module`."""
    yield from script_module(BENCHMARKS / f"{name}.py")


def script_module(path: Path) -> Iterator:
    """Yields the script at `path` as a module named after its file (registered in `sys.modules` while in use,
    which its dataclasses need), then forgets it; a fixture's body: `yield from script_module(...)`."""
    name = path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(name, None)
