"""Benchmark scripts under `benchmarks/` imported as modules, for the tests that run them at a tiny size."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def benchmark_module(name: str) -> Iterator:
    """Yields `benchmarks/<name>.py` as module `name` (registered in `sys.modules` while in use, which its
    dataclasses need), then forgets it; a module-scoped fixture's body: `yield from benchmark_module(...)`."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(name, None)
