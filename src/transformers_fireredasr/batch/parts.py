"""Part files: each rank appends one JSON line per finished item to `parts/rank-I-of-N.jsonl`, flushed and synced
line by line, so that a killed process loses at most the line it was writing.

Readers take every part file in the folder, whatever world size wrote it, and skip a line that is not complete JSON
(the truncated last line of a killed writer). A writer that reopens a file whose last line was cut first ends it
with a newline, so that its own lines stay whole. An exclusive lock stops two processes writing one part file.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PARTS_DIR = "parts"


def part_path(run_dir: str | Path, rank: int, world_size: int) -> Path:
    return Path(run_dir) / PARTS_DIR / f"rank-{rank}-of-{world_size}.jsonl"


class PartWriter:
    """Appends records to one rank's part file; use as a context manager."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a+b")  # noqa: SIM115 - closed by close()
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.close()
            raise RuntimeError(
                f"{self.path} is being written by another process: is this shard already running?"
            ) from None
        self._file.seek(0, os.SEEK_END)
        if self._file.tell() > 0:
            self._file.seek(-1, os.SEEK_END)
            if self._file.read(1) != b"\n":  # a killed writer's cut line: end it, so ours start on their own
                self._file.write(b"\n")
                self._flush()

    def write(self, record: dict[str, Any]) -> None:
        self._file.write((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
        self._flush()

    def _flush(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> PartWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def part_files(run_dir: str | Path) -> list[Path]:
    """Every part file of the run, whatever world size wrote it."""
    return sorted((Path(run_dir) / PARTS_DIR).glob("*.jsonl"))


def parse_record(line: bytes) -> dict[str, Any] | None:
    """One part-file line as its record, or None for a cut or garbled line (or JSON that is not a record)."""
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) and "id" in record and "status" in record else None


def read_records(run_dir: str | Path) -> Iterator[dict[str, Any]]:
    """Every complete record in every part file of the run (cut or garbled lines are skipped)."""
    for path in part_files(run_dir):
        with path.open("rb") as f:
            for line in f:
                if (record := parse_record(line)) is not None:
                    yield record


def latest_records(run_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Per id, its successful record if it has one, else its most recent failure."""
    best: dict[str, dict[str, Any]] = {}
    for record in read_records(run_dir):
        known = best.get(record["id"])
        if known is None or (known["status"] != "ok" and (record["status"] == "ok" or _later(record, known))):
            best[record["id"]] = record
    return best


def _later(record: dict, other: dict) -> bool:
    return record.get("finished", 0.0) >= other.get("finished", 0.0)


def done_ids(run_dir: str | Path) -> set[str]:
    """The ids with a successful record: a resumed run skips them; failed ones are tried again."""
    return {key for key, record in latest_records(run_dir).items() if record["status"] == "ok"}


__all__ = ["PartWriter", "done_ids", "latest_records", "parse_record", "part_files", "part_path", "read_records"]
