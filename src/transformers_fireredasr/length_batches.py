"""Batches cut by length: items sorted longest first, each batch's padded size (count x longest) within a budget.

Used wherever padding costs compute: the archive runs' pooled segments (audio seconds) and the encoder pass of a
large decoding batch (fbank frames, `modeling_conformer.encode_in_length_batches`).
"""

from __future__ import annotations

from collections.abc import Sequence


def plan_batches(lengths: Sequence[float], budget: float) -> list[list[int]]:
    """Indices into `lengths` in batches, longest first, each batch's padded length (count x longest) within
    `budget` (a longer item goes alone)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for index in order:
        if batches and lengths[batches[-1][0]] * (len(batches[-1]) + 1) <= budget:
            batches[-1].append(index)
        else:
            batches.append([index])
    return batches


__all__ = ["plan_batches"]
