"""Where a run's audio comes from, as a JSON-able `InputSpec` (kept in run.json so that a resume or a merge reopens
the same input), and how one item's waveform is read from it.

A `datasets` dataset is either a folder written by `save_to_disk` or `audiofolder:DIR`. Its Audio column is read
undecoded (`Audio(decode=False)`: the file's bytes or path) and decoded with ffmpeg like every other input, so that a
row and the same file given by path give the same samples and the same transcript.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..audio_io import SAMPLING_RATE, decode_bytes, decode_file
from .inputs import (
    ESTIMATE_BYTES_PER_SECOND,
    InputError,
    Item,
    check_unique,
    read_audio_files,
    read_manifest,
    wav_seconds,
)

TEXT_COLUMNS = ("text", "transcription", "sentence", "transcript")


@dataclass(frozen=True)
class InputSpec:
    """One of: a manifest file, a folder or glob of files, or a dataset (with its split and columns)."""

    kind: str  # "manifest" | "files" | "dataset"
    path: str
    split: str | None = None
    audio_column: str | None = None
    text_column: str | None = None
    id_column: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def load_items(spec: InputSpec) -> list[Item]:
    """The items `spec` names, in input order."""
    if spec.kind == "manifest":
        return read_manifest(spec.path)
    if spec.kind == "files":
        return read_audio_files(spec.path)
    if spec.kind == "dataset":
        return _dataset_items(spec)
    raise InputError(f"unknown input kind {spec.kind!r}")


def open_dataset(spec: InputSpec):
    """The dataset split with its Audio column undecoded; InputError naming what is missing."""
    import datasets

    if spec.path.startswith("audiofolder:"):
        folder = spec.path.removeprefix("audiofolder:")
        if not Path(folder).is_dir():
            raise InputError(f"{spec.path}: no such folder")
        loaded = datasets.load_dataset("audiofolder", data_dir=folder)
    else:
        if not Path(spec.path).is_dir():
            raise InputError(f"{spec.path}: no such dataset folder (save_to_disk output, or audiofolder:DIR)")
        try:
            loaded = datasets.load_from_disk(spec.path)
        except FileNotFoundError as error:
            raise InputError(f"{spec.path}: not a dataset written by save_to_disk ({error})") from None
    if isinstance(loaded, datasets.DatasetDict):
        if spec.split is None and len(loaded) != 1:
            raise InputError(f"{spec.path}: has splits {sorted(loaded)}; choose one with --split")
        split = spec.split or next(iter(loaded))
        if split not in loaded:
            raise InputError(f"{spec.path}: no split {split!r} (it has {sorted(loaded)})")
        loaded = loaded[split]
    column = audio_column(loaded, spec)
    return loaded.cast_column(column, datasets.Audio(decode=False))


def audio_column(dataset, spec: InputSpec) -> str:
    """The Audio column: `spec.audio_column`, else the only column of Audio type."""
    import datasets

    if spec.audio_column is not None:
        if spec.audio_column not in dataset.column_names:
            raise InputError(f"{spec.path}: no column {spec.audio_column!r} (it has {dataset.column_names})")
        return spec.audio_column
    found = [name for name, feature in dataset.features.items() if isinstance(feature, datasets.Audio)]
    if len(found) != 1:
        raise InputError(f"{spec.path}: {len(found)} Audio columns ({found}); choose one with --audio-column")
    return found[0]


def _dataset_items(spec: InputSpec) -> list[Item]:
    dataset = open_dataset(spec)
    column = audio_column(dataset, spec)
    text_column = spec.text_column or next((c for c in TEXT_COLUMNS if c in dataset.column_names), None)
    for name in (spec.text_column, spec.id_column):
        if name is not None and name not in dataset.column_names:
            raise InputError(f"{spec.path}: no column {name!r} (it has {dataset.column_names})")
    items = []
    for index, row in enumerate(dataset):
        audio = row[column] or {}
        path = audio.get("path") or ""
        data = audio.get("bytes")
        if data:
            seconds = wav_seconds(data) or len(data) / ESTIMATE_BYTES_PER_SECOND
        else:
            seconds = wav_seconds(path) or 0.0
        item_id = str(row[spec.id_column]) if spec.id_column else (path or str(index))
        text = row[text_column] if text_column else None
        items.append(Item(item_id, path, seconds, None, text, index))
    return check_unique(items, spec.path)


class AudioReader:
    """Reads items' waveforms (16 kHz mono float32) for one input; picklable, the dataset is opened lazily."""

    def __init__(self, spec: InputSpec):
        self.spec = spec
        self._dataset = None

    def __call__(self, item: Item) -> np.ndarray:
        if item.dataset_index is not None:
            if self._dataset is None:
                self._dataset = open_dataset(self.spec)
            column = audio_column(self._dataset, self.spec)
            audio = self._dataset[item.dataset_index][column]
            name = audio.get("path") or f"row {item.dataset_index}"
            waveform = decode_bytes(audio["bytes"], SAMPLING_RATE, name) if audio.get("bytes") else decode_file(name)
        else:
            waveform = decode_file(item.audio_filepath, SAMPLING_RATE)
        if item.offset is None:
            return waveform
        start = int(round(item.offset * SAMPLING_RATE))
        end = start + int(round(item.duration * SAMPLING_RATE))
        if start >= len(waveform):
            raise ValueError(f"{item.audio_filepath}: offset {item.offset:g} s is past the end of the audio")
        return waveform[start:end]


__all__ = ["AudioReader", "InputSpec", "audio_column", "load_items", "open_dataset"]
