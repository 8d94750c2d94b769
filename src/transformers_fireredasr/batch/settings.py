"""`run.json` and `items.jsonl`: what a run transcribes and how, written by the first process of the run and checked
by every later one, so that a resume never mixes transcripts of two models or two decoding settings.

run.json holds the input, the model and its revision (the Hub commit, or a fingerprint of a local folder), the
decoding settings and the package version; items.jsonl the item list the shares are computed from (every process uses
the first one's, lengths included, so they agree on the shares; merge reads it for the manifest order). A process whose settings or items differ stops with `SettingsError` naming the fields, unless
`force`: then the new ones replace them (the old settings are kept under "previous") and finished items stay.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from .inputs import Item

RUN_FILE, ITEMS_FILE = "run.json", "items.jsonl"
# Compared on a resume; the rest of run.json is a record.
CHECKED = ("input", "model", "revision", "decoding", "package_version")
WHOLE_FILE_BYTES = 64 * 2**20  # larger weight files are fingerprinted by size and their first and last MiB


class SettingsError(RuntimeError):
    """A resumed run whose settings or items differ from the run's own."""


def fingerprint(folder: str | Path) -> str:
    """A sha256 over a model folder's file names, sizes and contents (large files: their ends), cheap enough to
    compute on every start and changed by any retraining or conversion."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.name != "README.md"):
        size = path.stat().st_size
        digest.update(f"{path.relative_to(folder)}\0{size}\0".encode())
        with path.open("rb") as f:
            if size <= WHOLE_FILE_BYTES:
                digest.update(f.read())
            else:
                digest.update(f.read(2**20))
                f.seek(-(2**20), os.SEEK_END)
                digest.update(f.read())
    return "sha256:" + digest.hexdigest()[:16]


def _write_once(path: Path, text: str, replace: bool) -> bool:
    """Writes `path` atomically; unless `replace`, only if it does not exist yet (False if another process won)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    try:
        if replace:
            os.replace(f.name, path)
            return True
        os.link(f.name, path)  # fails if the file exists: the first writer wins
        return True
    except FileExistsError:
        return False
    finally:
        if os.path.exists(f.name):
            os.unlink(f.name)


def items_text(items: list[Item]) -> str:
    return "".join(json.dumps(item.to_json(), ensure_ascii=False) + "\n" for item in items)


def read_items(run_dir: str | Path) -> list[Item]:
    """The run's items, in input order."""
    path = Path(run_dir) / ITEMS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: no {ITEMS_FILE}; is this a run folder (--output-dir of a run)?")
    return [Item.from_json(json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line]


def read_settings(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: no {RUN_FILE}; is this a run folder (--output-dir of a run)?")
    return json.loads(path.read_text(encoding="utf-8"))


def _differences(old: dict, new: dict) -> list[str]:
    return [f"{key}: {old.get(key)!r} -> {new.get(key)!r}" for key in CHECKED if old.get(key) != new.get(key)]


def prepare_run(run_dir: str | Path, settings: dict[str, Any], items: list[Item], force: bool = False) -> list[Item]:
    """Creates the run's run.json and items.jsonl, or checks a resumed run against them (see the module doc).
    Returns the items to share out: those in items.jsonl, as the run's first process listed them."""
    run_dir = Path(run_dir)
    settings = {**settings, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    text = json.dumps(settings, ensure_ascii=False, indent=2) + "\n"
    if not _write_once(run_dir / RUN_FILE, text, replace=False):
        old = read_settings(run_dir)
        changed = _differences(old, settings)
        if changed and not force:
            raise SettingsError(
                f"{run_dir} was started with other settings ({'; '.join(changed)}): rerun with the same ones, use "
                "another --output-dir, or pass --force to continue with the new settings (finished files are kept)"
            )
        if changed:
            settings["previous"] = [*old.pop("previous", []), {key: old.get(key) for key in (*CHECKED, "created")}]
            _write_once(run_dir / RUN_FILE, json.dumps(settings, ensure_ascii=False, indent=2) + "\n", replace=True)
    listed = items_text(items)
    if _write_once(run_dir / ITEMS_FILE, listed, replace=False):
        return items
    stored = read_items(run_dir)
    if _identity(stored) == _identity(items):
        return stored  # the first process's lengths, so that every process computes the same shares
    if not force:
        raise SettingsError(
            f"{run_dir} was started with another list of items (the manifest, folder or dataset changed): "
            "use another --output-dir, or pass --force to continue with the new list"
        )
    _write_once(run_dir / ITEMS_FILE, listed, replace=True)
    return items


def _identity(items: list[Item]) -> list[dict]:
    """Items without their lengths: a fixed file (a new wav header) is still the same item."""
    return [{k: v for k, v in item.to_json().items() if k != "duration"} for item in items]


__all__ = ["SettingsError", "fingerprint", "prepare_run", "read_items", "read_settings"]
