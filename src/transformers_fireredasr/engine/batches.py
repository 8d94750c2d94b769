"""The one place a failed decoding batch is retried segment by segment."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from transformers.utils import logging

Result = TypeVar("Result")
logger = logging.get_logger(__name__)


def each_or_error(run: Callable[[Sequence], list[Result]], items: Sequence) -> list[Result | Exception]:
    """`run(items)`, and when the batch fails, `run([item])` for each item: one bad item loses only itself (its
    exception takes its place in the list) and never the rest of its batch."""
    if not items:
        return []
    try:
        results = run(items)
        if len(results) != len(items):
            raise RuntimeError(f"{len(results)} results for a batch of {len(items)}")
        return list(results)
    except Exception as error:
        if len(items) == 1:
            return [error]
        logger.warning(f"a batch of {len(items)} failed ({error}); running its items one at a time")
    outcomes: list[Result | Exception] = []
    for item in items:
        try:
            outcomes.append(run([item])[0])
        except Exception as error:
            outcomes.append(error)
    return outcomes


__all__ = ["each_or_error"]
