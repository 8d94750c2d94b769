"""Transcribing archives: manifests, shards over processes and nodes, resumable part files, and the merge.

`transcribe_run` is one process's share of a run (started by `fireredasr-transcribe --manifest ... --output-dir`),
`merge_run` writes the run's transcripts.jsonl and summary (`fireredasr-transcribe --merge RUN_DIR`).
"""

from .inputs import InputError, Item, read_audio_files, read_manifest
from .merge import format_summary, merge_run
from .parts import PartWriter, done_ids, latest_records, read_records
from .pooled import PooledTranscriber
from .run import RunConfig, transcribe_run
from .settings import SettingsError, prepare_run
from .shards import Shard, assign, current_shard, parse_shard, share
from .sources import AudioReader, InputSpec, load_items

__all__ = [
    "AudioReader",
    "InputError",
    "InputSpec",
    "Item",
    "PartWriter",
    "PooledTranscriber",
    "RunConfig",
    "SettingsError",
    "Shard",
    "assign",
    "current_shard",
    "done_ids",
    "format_summary",
    "latest_records",
    "load_items",
    "merge_run",
    "parse_shard",
    "prepare_run",
    "read_audio_files",
    "read_manifest",
    "read_records",
    "share",
    "transcribe_run",
]
