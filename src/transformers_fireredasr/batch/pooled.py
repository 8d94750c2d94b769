"""Transcribing many files in one process: speech segments pooled across files and batched by audio seconds.

The pipeline's own steps do the work, so the transcripts are the pipeline's: DataLoader workers decode each file and
run `pipeline.preprocess` on it (segmentation and features, exactly as a pipeline call would), the main process
pools the segments of many files, sorts them by length and cuts decoding batches whose padded length stays within
`POOL_BATCHES * batch_seconds` (FireRedASR-AED; `batch_seconds` for the LLM variant), runs `pipeline.forward` on each and hands each file's outputs to
`pipeline.postprocess` once all of its segments are back. Short files thus fill batches together, and decoding
overlaps transcription.

Why decoding batches are larger than encoder batches: a decoding batch costs about as many steps as its longest
transcript, whatever its size, since finished utterances leave it (`original_beam_search`), so fewer, larger
batches take fewer steps; the encoder's cost grows with padding instead, so for FireRedASR-AED it runs over
sub-batches of at most `batch_seconds` of padded audio (`generate(encoder_batch_frames=...)`).

One bad file loses only itself: a decode or segmentation error comes back from the worker as that file's failure,
and a batch whose forward fails is retried one segment at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from transformers.pipelines.base import pad_collate_fn

from ..audio_io import SAMPLING_RATE
from ..length_batches import plan_batches
from .inputs import Item

# Segments are pooled until they hold this many encoder batches' worth of audio, then sorted and decoded in batches
# of up to that much (at the demo's size on 2 CPU cores: 0.29 s of decoding for 585 s of short clips, against 0.48 s
# in batches of one encoder batch each; benchmarks/RESULTS.md).
POOL_BATCHES = 4


@dataclass
class Prepared:
    """A file's pipeline inputs (one dict per segment) as a worker returns them, or its error."""

    index: int
    seconds: float
    segments: list[dict] = field(default_factory=list)
    error: str | None = None


class PreparedFiles(Dataset):
    """Decodes item `i` and runs the pipeline's preprocess on it (in a DataLoader worker)."""

    def __init__(self, items: Sequence[Item], reader: Callable[[Item], Any], pipe, preprocess_params: dict):
        self.items, self.reader, self.pipe, self.params = items, reader, pipe, preprocess_params

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Prepared:
        try:
            audio = self.reader(self.items[index])
            segments = list(self.pipe.preprocess(audio, **self.params))
        except Exception as error:  # reported as this file's failure; the others go on
            return Prepared(index, 0.0, error=str(error) or type(error).__name__)
        return Prepared(index, len(audio) / SAMPLING_RATE, segments)


def _first(batch: list) -> Any:
    return batch[0] if isinstance(batch, list) else batch


def _unbatch(output: dict, rows: int) -> list[dict]:
    """A batched forward output as one batch-of-one dict per row, as the pipeline's iterator slices it."""
    pieces = []
    for row in range(rows):
        piece = {}
        for key, value in output.items():
            if isinstance(value, torch.Tensor):
                piece[key] = value[row].unsqueeze(0)
            elif isinstance(value, list):
                piece[key] = value[row]
            else:
                piece[key] = value
        pieces.append(piece)
    return pieces


# fbank frames a second (10 ms hop): segment lengths and the encoder's sub-batch budget are counted in them.
FRAMES_PER_SECOND = 100


def _seconds(segment: dict) -> float:
    return float(segment["input_features"].shape[1]) / FRAMES_PER_SECOND


class PooledTranscriber:
    """`transcribe(items)` yields `(item, result or None, seconds, error or None)` as each file completes."""

    def __init__(
        self,
        pipe,
        reader: Callable[[Item], Any],
        call_kwargs: dict,
        batch_seconds: float = 120.0,
        num_workers: int = 0,
        progress: Callable[[float], None] | None = None,
    ):
        self.pipe, self.reader = pipe, reader
        self.batch_seconds, self.num_workers, self.progress = batch_seconds, num_workers, progress
        pre, self.forward_params, post = pipe._sanitize_parameters(**call_kwargs)
        self.preprocess_params = {**pipe._preprocess_params, **pre}
        self.forward_params = {**pipe._forward_params, **self.forward_params}
        self.postprocess_params = {**pipe._postprocess_params, **post}
        # Decoding batches of several encoder batches pay where finished utterances leave them and the encoder runs
        # in sub-batches: FireRedASR-AED's generate. The LLM variant's encodes whole and decodes with transformers'
        # search, where larger batches would only pad more.
        self.decoding_seconds = batch_seconds
        if pipe.model.config.model_type == "fireredasr_aed":
            self.forward_params.setdefault("encoder_batch_frames", round(batch_seconds * FRAMES_PER_SECOND))
            self.decoding_seconds = POOL_BATCHES * batch_seconds
        if self.postprocess_params.get("return_timestamps") is None:
            # The decoded pieces' times (the whole file when it was decoded whole): the text does not change.
            self.postprocess_params["return_timestamps"] = "segment"
        self.collate = pad_collate_fn(pipe.tokenizer, pipe.feature_extractor)

    def transcribe(self, items: Sequence[Item]) -> Iterator[tuple[Item, dict | None, float, str | None]]:
        loader = DataLoader(
            PreparedFiles(items, self.reader, self.pipe, self.preprocess_params),
            batch_size=1,
            collate_fn=_first,
            num_workers=self.num_workers,
            prefetch_factor=4 if self.num_workers else None,
        )
        files: dict[int, dict] = {}  # index -> {"prepared", "outputs", "failed"}
        pool: list[tuple[int, dict]] = []
        pooled = 0.0
        for prepared in loader:
            if prepared.error is not None:
                yield items[prepared.index], None, 0.0, prepared.error
                continue
            files[prepared.index] = {"prepared": prepared, "outputs": [], "error": None}
            pool += [(prepared.index, segment) for segment in prepared.segments]
            pooled += sum(_seconds(segment) for segment in prepared.segments)
            if pooled >= POOL_BATCHES * self.batch_seconds:
                yield from self._decode_pool(pool, files, items)
                pool, pooled = [], 0.0
        yield from self._decode_pool(pool, files, items)

    def _decode_pool(self, pool: list[tuple[int, dict]], files: dict[int, dict], items: Sequence[Item]) -> Iterator:
        for batch in plan_batches([_seconds(segment) for _, segment in pool], self.decoding_seconds):
            segments = [pool[i] for i in batch]
            for (index, _), output in zip(segments, self._forward([s for _, s in segments]), strict=True):
                state = files[index]
                if isinstance(output, Exception):
                    state["error"] = state["error"] or f"transcription failed ({output})"
                state["outputs"].append(output)
            for index in dict.fromkeys(index for index, _ in segments):
                state = files[index]
                if len(state["outputs"]) == len(state["prepared"].segments):
                    del files[index]
                    yield self._finish(items[index], state)

    def _forward(self, segments: list[dict]) -> list:
        """Outputs per segment; when the batch fails, segment by segment (an exception where one fails)."""
        try:
            return _unbatch(self.pipe.forward(self.collate(segments), **self.forward_params), len(segments))
        except Exception as error:
            if len(segments) == 1:
                return [error]
        return [output for segment in segments for output in self._forward([segment])]

    def _finish(self, item: Item, state: dict) -> tuple[Item, dict | None, float, str | None]:
        seconds = state["prepared"].seconds
        if self.progress is not None:
            self.progress(seconds)
        if state["error"] is not None:
            return item, None, seconds, state["error"]
        try:
            return item, self.pipe.postprocess(state["outputs"], **self.postprocess_params), seconds, None
        except Exception as error:
            return item, None, seconds, f"postprocessing failed ({error})"


__all__ = ["PooledTranscriber", "PreparedFiles", "plan_batches"]
