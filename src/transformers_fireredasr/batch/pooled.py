"""Transcribing many files in one process: the engine's pooled decoding, fed by DataLoader workers.

Workers decode each file and run the engine's `prepare` on it (segmentation and features); the engine pools the
segments of many files, sorts them by length and decodes batches whose padded length stays within
`POOL_BATCHES * batch_seconds` (FireRedASR-AED; `batch_seconds` for the LLM variant), and hands back each file's
result once all of its segments are decoded. Short files thus fill batches together, and reading overlaps decoding.

Why decoding batches are larger than encoder batches: a decoding batch costs about as many steps as its longest
transcript, whatever its size, since finished utterances leave it (the original search), so fewer, larger batches
take fewer steps; the encoder's cost grows with padding instead, so for FireRedASR-AED it runs over sub-batches of
at most `batch_seconds` of padded audio (`generate(encoder_batch_frames=...)`).

One bad file loses only itself: a read or segmentation error comes back from the worker as that file's failure,
and a batch that fails is retried one segment at a time (by the engine).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from torch.utils.data import DataLoader, Dataset

from ..engine import Engine, TranscribeOptions
from ..engine.variants import uses_original_search
from .inputs import Item

# Segments are pooled until they hold this many encoder batches' worth of audio, then sorted and decoded in batches
# of up to that much (benchmarks/RESULTS.md compares this with one encoder batch per decoding batch).
POOL_BATCHES = 4
# fbank frames a second (10 ms hop): the encoder's sub-batch budget is counted in them.
FRAMES_PER_SECOND = 100


class PreparedFiles(Dataset):
    """Reads item `i` and prepares it (in a DataLoader worker): `(i, Prepared)`, or `(i, the exception)`."""

    def __init__(self, items: Sequence[Item], reader: Callable[[Item], Any], engine: Engine, options):
        self.items, self.reader, self.engine, self.options = items, reader, engine, options

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[int, Any]:
        try:
            return index, self.engine.prepare(self.reader(self.items[index]), self.options)
        except Exception as error:  # reported as this file's failure; the others go on
            return index, ValueError(str(error) or type(error).__name__)


def _first(batch: list) -> Any:
    return batch[0]


class PooledTranscriber:
    """`transcribe(items)` yields `(item, result or None, seconds, error or None)` as each file completes."""

    def __init__(
        self,
        engine: Engine,
        reader: Callable[[Item], Any],
        options: TranscribeOptions,
        batch_seconds: float = 120.0,
        num_workers: int = 0,
        progress: Callable[[float], None] | None = None,
    ):
        self.engine, self.reader = engine, reader
        self.batch_seconds, self.num_workers, self.progress = batch_seconds, num_workers, progress
        # Decoding batches of several encoder batches pay where finished utterances leave them and the encoder runs
        # in sub-batches: the original search. The LLM variant encodes whole and decodes with transformers' search,
        # where larger batches would only pad more.
        self.decoding_seconds = batch_seconds
        if uses_original_search(engine.model.config):
            frames = {"encoder_batch_frames": round(batch_seconds * FRAMES_PER_SECOND)}
            options = dataclasses.replace(options, generate_kwargs={**frames, **options.generate_kwargs})
            self.decoding_seconds = POOL_BATCHES * batch_seconds
        self.options = options

    def transcribe(self, items: Sequence[Item]) -> Iterator[tuple[Item, dict | None, float, str | None]]:
        loader = DataLoader(
            PreparedFiles(items, self.reader, self.engine, self.options),
            batch_size=1,
            collate_fn=_first,
            num_workers=self.num_workers,
            prefetch_factor=4 if self.num_workers else None,
        )
        outcomes = self.engine.transcribe_many(
            loader,
            self.options,
            batch_seconds=self.decoding_seconds,
            pool_seconds=POOL_BATCHES * self.batch_seconds,
        )
        for outcome in outcomes:
            if self.progress is not None:
                self.progress(outcome.duration)
            result = outcome.result
            if result is not None and "chunks" not in result:
                result = {**result, "chunks": outcome.pieces}  # records keep the decoded pieces' times
            yield items[outcome.key], result, outcome.duration, outcome.error


__all__ = ["POOL_BATCHES", "PooledTranscriber", "PreparedFiles"]
