"""One progress bar for the whole run, in seconds of audio, without the ranks talking to each other: rank 0 shows it
and, at most once a second, reads the lines every rank appended to its part file since the last look.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from tqdm.auto import tqdm

from .inputs import Item
from .parts import parse_record, part_files


class RunProgress:
    """A tqdm bar over every item's seconds, advanced by whatever any part file records as finished."""

    def __init__(self, run_dir: str | Path, items: list[Item], show: bool, interval: float = 1.0, file=None):
        """`show`: whether this process shows the bar (on a terminal, or always when writing to `file`)."""
        self.run_dir = run_dir
        self.seconds = {item.id: item.duration for item in items}
        self.offsets: dict[Path, int] = {}
        self.finished: set[str] = set()
        self.interval, self.last = interval, 0.0
        self.bar = tqdm(
            total=round(sum(self.seconds.values()), 2),
            unit="s",
            desc="transcribing (all ranks)",
            file=file or sys.stderr,
            disable=True if not show else (False if file is not None else None),
        )
        self.poll(force=True)

    def poll(self, force: bool = False) -> None:
        """Advances the bar by the items finished since the last call (throttled to `interval` unless `force`)."""
        if self.bar.disable or (not force and time.monotonic() - self.last < self.interval):
            return
        self.last = time.monotonic()
        gained = 0.0
        for path in part_files(self.run_dir):
            with path.open("rb") as f:
                f.seek(self.offsets.get(path, 0))
                data = f.read()
            complete = data[: data.rfind(b"\n") + 1]  # a line still being written waits for the next look
            self.offsets[path] = self.offsets.get(path, 0) + len(complete)
            for line in complete.splitlines():
                record = parse_record(line)
                key = None if record is None else record["id"]
                if key in self.seconds and key not in self.finished:
                    self.finished.add(key)
                    gained += self.seconds[key]
        if gained:
            self.bar.update(round(gained, 2))

    def close(self) -> None:
        self.poll(force=True)
        self.bar.close()


__all__ = ["RunProgress"]
