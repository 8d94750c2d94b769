"""Batches cut by length: items sorted longest first, each batch's padded size (count x longest) within a budget.

Used wherever padding costs compute: the engine's decoding batches (audio seconds) and the encoder pass of a
large decoding batch (fbank frames, `modeling_conformer.encode_in_length_batches`).
"""

from __future__ import annotations

from collections.abc import Sequence


def plan_batches(lengths: Sequence[float], budget: float | None, max_size: int | None = None) -> list[list[int]]:
    """Indices into `lengths` in batches, longest first, each batch's padded length (count x longest) within
    `budget` (a longer item goes alone; None: no limit) and at most `max_size` items (None: no limit)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for index in order:
        current = batches[-1] if batches else None
        if (
            current is not None
            and (budget is None or lengths[current[0]] * (len(current) + 1) <= budget)
            and (max_size is None or len(current) < max_size)
        ):
            current.append(index)
        else:
            batches.append([index])
    return batches


__all__ = ["plan_batches"]
