"""What a batch run transcribes: a NeMo-style JSONL manifest, a folder or glob of audio files, or a `datasets`
dataset with an Audio column, each read into the same list of `Item`s.

Every item has a unique `id` (the manifest's, or the audio path; `path@offset` for a NeMo segment) and a length in
seconds: the manifest's `duration`, a wav header's, or an estimate from the file size (shares are balanced by it, so
an estimate only costs balance, never correctness). Problems (a bad line, a missing field, a duplicate id) raise
`InputError` naming the line or the id.
"""

from __future__ import annotations

import glob
import json
import wave
from dataclasses import asdict, dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".m4a", ".ogg", ".opus", ".aac", ".wma", ".webm", ".mp4", ".aiff")
# Bytes per second assumed for files whose header gives no length: 128 kbit/s, a common compressed bitrate.
ESTIMATE_BYTES_PER_SECOND = 16000


class InputError(ValueError):
    """A manifest, folder or dataset that cannot be read as a list of audio items."""


@dataclass(frozen=True)
class Item:
    """One unit of work: a file (or a NeMo segment of one, or a dataset row) with its reference text if known."""

    id: str
    audio_filepath: str
    duration: float  # seconds: stated or estimated, used to balance shares (records hold the decoded length)
    offset: float | None = None  # NeMo: decode `duration` seconds from `offset`
    text: str | None = None
    dataset_index: int | None = None  # a row of the run's dataset instead of a file

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> Item:
        return cls(**row)


def wav_seconds(source: str | Path | bytes) -> float | None:
    """The length a wav header states, or None when `source` is not a readable wav."""
    try:
        with wave.open(BytesIO(source) if isinstance(source, bytes) else str(source), "rb") as f:
            return f.getnframes() / f.getframerate()
    except (wave.Error, EOFError, OSError, ValueError, ZeroDivisionError):
        return None


def file_seconds(path: str | Path) -> float:
    """The wav header's length, else an estimate from the file size (0 for a missing file)."""
    seconds = wav_seconds(path)
    if seconds is not None:
        return seconds
    try:
        return Path(path).stat().st_size / ESTIMATE_BYTES_PER_SECOND
    except OSError:
        return 0.0


def _number(row: dict, key: str, where: str) -> float | None:
    value = row.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise InputError(f"{where}: {key!r} must be a non-negative number of seconds, got {value!r}")
    return float(value)


def _manifest_item(row: Any, where: str, folder: Path) -> Item:
    if not isinstance(row, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(row).__name__}")
    path = row.get("audio_filepath")
    if not isinstance(path, str) or not path:
        raise InputError(f"{where}: needs 'audio_filepath' (a path to an audio file)")
    resolved = Path(path) if Path(path).is_absolute() else folder / path  # relative to the manifest, as NeMo does
    duration, offset = _number(row, "duration", where), _number(row, "offset", where)
    text = row.get("text")
    if text is not None and not isinstance(text, str):
        raise InputError(f"{where}: 'text' must be a string, got {type(text).__name__}")
    default_id = path if offset is None else f"{path}@{offset:g}"
    item_id = row.get("id", default_id)
    if not isinstance(item_id, (str, int)) or isinstance(item_id, bool):
        raise InputError(f"{where}: 'id' must be a string or an integer, got {item_id!r}")
    if duration is None:
        if offset is not None:
            raise InputError(f"{where}: an 'offset' needs the segment's 'duration'")
        duration = file_seconds(resolved)
    return Item(str(item_id), str(resolved), duration, offset, text)


def read_manifest(path: str | Path) -> list[Item]:
    """The items of a JSONL manifest (`audio_filepath`, optional `id`, `duration`, `offset`, `text`)."""
    manifest = Path(path)
    if not manifest.is_file():
        raise InputError(f"{path}: no such manifest file")
    items = []
    with manifest.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise InputError(f"{path}:{number}: not JSON ({error.msg})") from None
            items.append(_manifest_item(row, f"{path}:{number}", manifest.parent))
    return check_unique(items, str(path))


def read_audio_files(pattern: str) -> list[Item]:
    """Audio files under a folder (recursively, by suffix) or matching a glob (`**` allowed), in sorted order."""
    folder = Path(pattern)
    if folder.is_dir():
        paths = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    else:
        paths = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
    if not paths:
        raise InputError(f"{pattern}: no audio files found (give a folder or a glob such as 'calls/**/*.wav')")
    items = [Item(str(p), str(p), file_seconds(p)) for p in paths]
    return check_unique(items, pattern)


def check_unique(items: list[Item], source: str) -> list[Item]:
    """`items` unchanged; InputError naming the first repeated id (resume and merge key on ids)."""
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise InputError(f"{source}: id {item.id!r} appears twice; give each row a unique 'id'")
        seen.add(item.id)
    if not items:
        raise InputError(f"{source}: no items to transcribe")
    return items


__all__ = [
    "InputError",
    "Item",
    "check_unique",
    "file_seconds",
    "read_audio_files",
    "read_manifest",
    "wav_seconds",
]
