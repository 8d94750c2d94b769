"""One process's part of a run: read the items, check run.json, take this rank's share, skip what any earlier
process finished, transcribe the rest (pooled) and append a record per file to this rank's part file.

A record: `id`, `audio_filepath`, `duration` (seconds decoded), `text`, `segments` (`start`, `end`, `text` of each
decoded piece), `words` with word timestamps, `sentences` (`text`, `start`, `end`) and `sentence_timing` with a
punctuation model, `language` and `language_confidence` (also in each segment and sentence) with a language model,
`confidence`, `status` ("ok" / "failed"), `error`, and who wrote it
when (`rank`, `world_size`, `session`, `session_start`, `finished`), from which merge computes the wall time.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import socket
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..engine import Engine, LoadOptions, OptionError, TranscribeOptions
from ..formats import LANGUAGE_KEYS, segment_records, word_records
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
    temperature: float = 0.0
    hotwords: list | None = None
    hotword_score: float | None = None  # the bonus of hotwords given without their own
    max_segment_seconds: float | None = None
    merge_segments_seconds: float | None = None
    segmentation: str = "auto"
    timestamps: str = "segment"  # "segment": the decoded pieces; "word" / "char" add CTC-timed words (tokens)
    # --compile: compiled decoding steps, a speed setting like the ones below (fp32 transcripts are unchanged).
    compile: bool = False
    # --punctuation: a punctuation model; records then carry the punctuated text and timed `sentences`.
    punctuation: str | None = None
    # --lid-model: a language model; records, their segments and sentences then carry `language` and its confidence.
    lid_model: str | None = None
    # --vad-model: the segmenter (None: silero-vad; else a FireRedVAD model); --skip-music: with its audio-event
    # variant, segments without speech are skipped (records then carry `events`).
    vad_model: str | None = None
    skip_music: bool = False
    batch_seconds: float = 120.0
    num_workers: int | None = None  # None: 1 with CUDA, 0 on the CPU (workers would take the model's cores)
    progress: bool = True
    force: bool = False

    def __post_init__(self) -> None:
        self.load_options()  # an OptionError names a bad value, as every entry point's does
        self.transcribe_options()

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> RunConfig:
        """The settings from a mapping (a Ray actor's, a settings file's), refusing unknown names."""
        known = [f.name for f in fields(cls)]
        for name in values:
            if name not in known:
                close = difflib.get_close_matches(name, known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"
                raise OptionError(f"unknown run option {name!r}{hint}")
        return cls(**values)

    def load_options(self) -> LoadOptions:
        return LoadOptions(
            device=self.device,
            dtype=self.dtype,
            quantize=self.quantize,
            compile=self.compile,
            punctuation=self.punctuation,
            lid_model=self.lid_model,
            vad_model=self.vad_model,
            skip_music=self.skip_music,
        )

    def transcribe_options(self) -> TranscribeOptions:
        """The engine's options: records always carry the decoded pieces, so "segment" asks for nothing more (and
        short files are decoded whole, as `fireredasr-transcribe` decodes them for text)."""
        return TranscribeOptions(
            num_beams=self.num_beams,
            temperature=self.temperature,
            hotwords=tuple(self.hotwords or ()),
            hotword_score=self.hotword_score,
            max_segment_seconds=self.max_segment_seconds,
            merge_segments_seconds=self.merge_segments_seconds,
            segmentation=self.segmentation,
            timestamps=None if self.timestamps == "segment" else self.timestamps,
        )

    def decoding(self) -> dict[str, Any]:
        names = (
            "dtype",
            "quantize",
            "num_beams",
            "temperature",
            "hotwords",
            "max_segment_seconds",
            "merge_segments_seconds",
            "segmentation",
            "timestamps",
            "punctuation",
            "lid_model",
            "vad_model",
            "skip_music",
        )
        return {name: getattr(self, name) for name in names}


def model_revision(model: str, engine: Engine) -> str | None:
    """The Hub commit the model was loaded from, or a fingerprint of a local folder."""
    commit = getattr(engine.model.config, "_commit_hash", None)
    if commit:
        return commit
    return fingerprint(model) if Path(model).is_dir() else None


def load_engine(config: RunConfig, shard: Shard) -> Engine:
    """The engine on this rank's device (`cuda` becomes `cuda:LOCAL_RANK` under a launcher); an original release is
    converted once (run.json names the original)."""
    load = config.load_options()
    if load.resolved_device() == "cuda" and shard.world_size > 1:
        import torch

        load = dataclasses.replace(load, device=f"cuda:{shard.local_rank % max(torch.cuda.device_count(), 1)}")
    return Engine.from_pretrained(config.model, load)


def run_settings(config: RunConfig, spec: InputSpec, engine: Engine) -> dict[str, Any]:
    from .. import __version__

    model = str(Path(config.model).resolve()) if Path(config.model).is_dir() else config.model
    return {
        "input": spec.to_json(),
        "model": model,
        "revision": model_revision(config.model, engine),
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
        if "sentences" in result:  # punctuated: the sentences' text, start and end, and where the times came from
            record["sentences"], record["sentence_timing"] = result["sentences"], result["sentence_timing"]
        if "language" in result:  # with a language model: the language of most of the speech, and its confidence
            record.update({key: result[key] for key in LANGUAGE_KEYS})
        if "events" in result:  # FireRedVAD's audio-event variant: speech, singing and music, timed
            record["events"] = result["events"]
    return {**record, "rank": shard.rank, "world_size": shard.world_size, **session, "finished": round(time.time(), 3)}


def transcribe_run(spec: InputSpec, run_dir: str | Path, config: RunConfig, shard_arg: str | None = None) -> dict:
    """Transcribes this process's share of the run; returns counts {"assigned", "skipped", "ok", "failed"}."""
    started = time.time()
    shard = current_shard(shard_arg, config.device)
    items = load_items(spec)
    engine = load_engine(config, shard)
    items = prepare_run(run_dir, run_settings(config, spec, engine), items, force=config.force)
    mine = share(items, shard)
    done = done_ids(run_dir)
    todo = [item for item in mine if item.id not in done]
    counts = {"assigned": len(mine), "skipped": len(mine) - len(todo), "ok": 0, "failed": 0}
    session = {"session": f"{socket.gethostname()}:{os.getpid()}:{started:.3f}", "session_start": round(started, 3)}
    progress = RunProgress(run_dir, items, show=config.progress and shard.rank == 0)
    workers = config.num_workers
    if workers is None:
        workers = 1 if engine.model.device.type == "cuda" else 0
    transcriber = PooledTranscriber(
        engine, AudioReader(spec), config.transcribe_options(), config.batch_seconds, workers
    )
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


__all__ = ["RunConfig", "load_engine", "make_record", "run_settings", "transcribe_run"]
