"""Transcribing archives on a Ray cluster with Ray Data (the optional `[ray]` extra; ray is imported lazily).

`FireRedAsrPredictor` is a callable class for `Dataset.map_batches`: each actor loads the model once (on its GPU when
Ray gave it one and CUDA is there; an original release is converted once per node, in `batch.run.load_engine`) and
transcribes its batches with the same pooled path as `fireredasr-transcribe --manifest` (`batch.pooled`: the
engine's prepare, decode and assemble), so the texts are the CLI's.
`transcribe_manifest` is the recipe:

    manifest -> items.jsonl (ids, absolute paths; `batch.inputs.read_manifest`) -> ray.data.read_json
      -> map(decode_row)  (CPU tasks: ffmpeg decode, NeMo offsets)
      -> map_batches(FireRedAsrPredictor, concurrency=N, num_gpus=1)  (segment and transcribe, one GPU per actor)
      -> write_json(OUTPUT_DIR/transcripts/)

with Ray Data's checkpointing (`CheckpointConfig(id_column="id")`): a rerun after a killed run skips the rows whose
output was written. Resume needs a `read_*` input, which is why the manifest is rewritten as items.jsonl and read
back rather than passed with `from_items` (that redoes every row).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .batch.inputs import Item, read_manifest
from .batch.pooled import PooledTranscriber
from .batch.run import RunConfig, make_record
from .batch.shards import Shard
from .batch.sources import AudioReader, InputSpec

ITEM_FIELDS = ("id", "audio_filepath", "duration", "offset", "text", "dataset_index")


def _value(value: Any) -> Any:
    """None for a null as Ray batches carry it (None, or NaN in a column Arrow or pandas made float)."""
    return None if value is None or (isinstance(value, (float, np.floating)) and np.isnan(value)) else value


def _item(row: dict[str, Any]) -> Item:
    value = {key: _value(row.get(key)) for key in ITEM_FIELDS}
    value["id"], value["audio_filepath"] = str(value["id"]), str(value["audio_filepath"])
    if value["dataset_index"] is not None:
        value["dataset_index"] = int(value["dataset_index"])
    return Item(**value)


def decode_row(row: dict[str, Any]) -> dict[str, Any]:
    """The row with `audio` (16 kHz float32; empty when it cannot be read) and `decode_error` (None or why)."""
    try:
        audio, error = AudioReader(InputSpec("manifest", ""))(_item(row)), None
    except Exception as exc:
        audio, error = np.zeros(0, dtype=np.float32), str(exc) or type(exc).__name__
    return {**row, "audio": audio, "decode_error": error}


class FireRedAsrPredictor:
    """`map_batches` callable class: the model loaded once per actor, batches transcribed by the pooled path."""

    def __init__(self, config: RunConfig | dict[str, Any]):
        import ray

        self.config = config if isinstance(config, RunConfig) else RunConfig.from_mapping(config)
        from .batch.run import load_engine

        self.gpu_ids = [str(i) for i in ray.get_gpu_ids()]
        device = self.config.device
        if device == "auto":
            import torch

            device = "cuda:0" if self.gpu_ids and torch.cuda.is_available() else "cpu"  # Ray sets CUDA_VISIBLE_DEVICES
        self.config.device = device
        self.engine = load_engine(self.config, Shard(0, 1))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        rows = [{key: batch[key][i] for key in batch} for i in range(len(batch["id"]))]
        items = [_item(row) for row in rows]
        audio = {item.id: row["audio"] for item, row in zip(items, rows, strict=True)}
        errors = {item.id: _value(row["decode_error"]) for item, row in zip(items, rows, strict=True)}
        errors = {key: error for key, error in errors.items() if error}

        def reader(item: Item) -> np.ndarray:
            if item.id in errors:
                raise ValueError(errors[item.id])
            return audio[item.id]

        transcriber = PooledTranscriber(
            self.engine, reader, self.config.transcribe_options(), self.config.batch_seconds, num_workers=0
        )
        done = {}
        for item, result, seconds, error in transcriber.transcribe(items):
            record = make_record(item, result, seconds, error, Shard(0, 1), {})
            for key in ("rank", "world_size"):
                record.pop(key)
            record["gpu_ids"], record["actor_pid"] = self.gpu_ids, os.getpid()
            done[item.id] = record
        out = [done[item.id] for item in items]  # the batch's order
        keys = dict.fromkeys(key for record in out for key in record)  # a failed record lacks the optional fields
        return {key: [record.get(key) for record in out] for key in keys}


def write_items(manifest: str | Path, output_dir: str | Path) -> Path:
    """The manifest as items.jsonl in `output_dir` (unique ids, absolute paths), kept as is on a resume."""
    items = read_manifest(manifest)
    path = Path(output_dir) / "items.jsonl"
    text = "".join(json.dumps(item.to_json(), ensure_ascii=False) + "\n" for item in items)
    if path.is_file() and path.read_text(encoding="utf-8") != text:
        raise ValueError(f"{output_dir} was started with another manifest: use another output folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def transcribe_manifest(
    manifest: str | Path,
    output_dir: str | Path,
    config: RunConfig,
    actors: int = 1,
    gpus_per_actor: float = 1.0,
    batch_size: int = 16,
) -> Path:
    """The recipe (see the module doc): transcripts as JSON lines under OUTPUT_DIR/transcripts/; returns that folder.
    Call inside `ray.init(...)`; `gpus_per_actor=0` runs the actors on CPUs."""
    import ray
    from ray.data.checkpoint import CheckpointConfig

    output_dir = Path(output_dir).resolve()
    items = write_items(manifest, output_dir)
    context = ray.data.DataContext.get_current()
    context.checkpoint_config = CheckpointConfig(
        id_column="id", checkpoint_path=str(output_dir / "checkpoint"), delete_checkpoint_on_success=False
    )
    dataset = ray.data.read_json(str(items))
    dataset = dataset.map(decode_row)
    dataset = dataset.map_batches(
        FireRedAsrPredictor,
        fn_constructor_kwargs={"config": config},
        batch_size=batch_size,
        concurrency=actors,
        num_gpus=gpus_per_actor or None,
    )
    target = output_dir / "transcripts"
    dataset.write_json(str(target), force_ascii=False)
    return target


def read_transcripts(folder: str | Path) -> list[dict[str, Any]]:
    """Every record the recipe wrote (all its JSON-lines files)."""
    rows = []
    for path in sorted(Path(folder).glob("*.json*")):
        rows += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows


__all__ = ["FireRedAsrPredictor", "decode_row", "read_transcripts", "transcribe_manifest", "write_items"]
