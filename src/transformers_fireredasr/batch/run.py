"""One process's part of a run: read the items, check run.json, take this rank's share, skip what any earlier
process finished, transcribe the rest (pooled) and append a record per file to this rank's part file.

A record: `id`, `audio_filepath`, `duration` (seconds decoded), `text`, `segments` (`start`, `end`, `text` of each
decoded piece), `words` with word timestamps, `confidence`, `status` ("ok" / "failed"), `error`, and who wrote it
when (`rank`, `world_size`, `session`, `session_start`, `finished`), from which merge computes the wall time.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..formats import segment_records, word_records
from .parts import PartWriter, done_ids, part_path
from .pooled import PooledTranscriber
from .progress import RunProgress
from .settings import fingerprint, prepare_run
from .shards import Shard, current_shard, share
from .sources import AudioReader, InputSpec, load_items


@dataclass
class RunConfig:
    """How to transcribe: the model and the decoding settings (checked on resume), and how hard to work (not)."""

    model: str
    device: str = "cpu"
    dtype: str = "float32"
    quantize: str | None = None  # --quantize: a CPU int8 mode (quantization.py)
    num_beams: int | None = None
    hotwords: list | None = None
    max_segment_seconds: float | None = None
    merge_segments_seconds: float | None = None
    timestamps: str = "segment"  # "segment": the decoded pieces; "word" / "char" add CTC-timed words (tokens)
    # --compile: compiled decoding steps, a speed setting like the ones below (fp32 transcripts are unchanged).
    compile: bool = False
    batch_seconds: float = 120.0
    num_workers: int | None = None  # None: 1 with CUDA, 0 on the CPU (workers would take the model's cores)
    progress: bool = True
    force: bool = False

    def call_kwargs(self) -> dict[str, Any]:
        """The pipeline call options, as `fireredasr-transcribe` passes them."""
        from ..cli import pipeline_call_kwargs

        kwargs = pipeline_call_kwargs(
            self.num_beams,
            self.hotwords,
            self.max_segment_seconds,
            self.merge_segments_seconds,
            compile_device=self.device if self.compile else None,
        )
        if self.timestamps != "segment":  # word times never change the text; segments would (pauses)
            kwargs["return_timestamps"] = self.timestamps
        return kwargs

    def decoding(self) -> dict[str, Any]:
        names = (
            "dtype",
            "quantize",
            "num_beams",
            "hotwords",
            "max_segment_seconds",
            "merge_segments_seconds",
            "timestamps",
        )
        return {name: getattr(self, name) for name in names}


def model_revision(model: str, pipe) -> str | None:
    """The Hub commit the model was loaded from, or a fingerprint of a local folder."""
    commit = getattr(pipe.model.config, "_commit_hash", None)
    if commit:
        return commit
    return fingerprint(model) if Path(model).is_dir() else None


def load_pipeline(config: RunConfig, shard: Shard):
    """The ASR pipeline on this rank's device (`cuda` becomes `cuda:LOCAL_RANK` under a launcher)."""
    import torch
    from transformers import pipeline

    import transformers_fireredasr  # noqa: F401 - registers the FireRedASR classes

    device = config.device
    if device == "cuda" and shard.world_size > 1:
        device = f"cuda:{shard.local_rank % max(torch.cuda.device_count(), 1)}"
    from ..cli import pipeline_model_kwargs
    from ..conversion.resolve import resolve_model
    from ..quantization import check_quantized

    pipe = pipeline(
        "automatic-speech-recognition",
        model=resolve_model(config.model),  # an original release: its cached conversion (run.json names the original)
        device=device,
        dtype=getattr(torch, config.dtype),
        model_kwargs=pipeline_model_kwargs(config.quantize, compile_device=device if config.compile else None),
    )
    check_quantized(pipe.model, config.quantize)
    return pipe


def run_settings(config: RunConfig, spec: InputSpec, pipe) -> dict[str, Any]:
    from .. import __version__

    model = str(Path(config.model).resolve()) if Path(config.model).is_dir() else config.model
    return {
        "input": spec.to_json(),
        "model": model,
        "revision": model_revision(config.model, pipe),
        "decoding": config.decoding(),
        "package_version": __version__,
    }


def make_record(item, result: dict | None, seconds: float, error: str | None, shard: Shard, session: dict) -> dict:
    """The part-file record of one item (see the module doc)."""
    record: dict[str, Any] = {"id": item.id, "audio_filepath": item.audio_filepath, "duration": round(seconds, 3)}
    if result is None:
        record.update(text=None, segments=[], status="failed", error=error)
    else:
        segments = result.get("segments", result.get("chunks", []))
        record.update(
            text=result["text"],
            segments=segment_records(segments),
            status="ok",
            error=None,
        )
        if "segments" in result:
            record["words"] = word_records(result["chunks"])
        if "confidence" in result:
            record["confidence"] = result["confidence"]
    return {**record, "rank": shard.rank, "world_size": shard.world_size, **session, "finished": round(time.time(), 3)}


def transcribe_run(spec: InputSpec, run_dir: str | Path, config: RunConfig, shard_arg: str | None = None) -> dict:
    """Transcribes this process's share of the run; returns counts {"assigned", "skipped", "ok", "failed"}."""
    started = time.time()
    shard = current_shard(shard_arg, config.device)
    items = load_items(spec)
    pipe = load_pipeline(config, shard)
    items = prepare_run(run_dir, run_settings(config, spec, pipe), items, force=config.force)
    mine = share(items, shard)
    done = done_ids(run_dir)
    todo = [item for item in mine if item.id not in done]
    counts = {"assigned": len(mine), "skipped": len(mine) - len(todo), "ok": 0, "failed": 0}
    session = {"session": f"{socket.gethostname()}:{os.getpid()}:{started:.3f}", "session_start": round(started, 3)}
    progress = RunProgress(run_dir, items, show=config.progress and shard.rank == 0)
    workers = config.num_workers
    if workers is None:
        workers = 1 if pipe.device.type == "cuda" else 0
    transcriber = PooledTranscriber(pipe, AudioReader(spec), config.call_kwargs(), config.batch_seconds, workers)
    with PartWriter(part_path(run_dir, shard.rank, shard.world_size)) as writer:
        for item, result, seconds, error in transcriber.transcribe(todo):
            writer.write(make_record(item, result, seconds, error, shard, session))
            counts["ok" if error is None else "failed"] += 1
            progress.poll()
            if error is not None:
                message = error if item.audio_filepath in error else f"{item.audio_filepath}: {error}"
                print(f"error: {message}", file=sys.stderr, flush=True)
    progress.close()
    return counts


__all__ = ["RunConfig", "load_pipeline", "make_record", "run_settings", "transcribe_run"]
