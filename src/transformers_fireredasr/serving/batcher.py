"""Dynamic batching: work items submitted from many requests are gathered into shared calls of one function.

One worker thread owns the model. It takes the oldest waiting item, then waits until `max_batch_size` items with
the same key are queued or the oldest has waited `max_wait_ms`, whichever comes first, and runs them in one call.
Items with other keys (other decoding options) wait for a later call, in arrival order. `run` returns one result per
item, or an exception in the place of an item that failed (the engine's `decode_each` retries a failed batch item
by item, so one bad item never takes the others of its batch with it); that item's future gets the exception.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from transformers.utils import logging

logger = logging.get_logger(__name__)


class BatcherStopped(RuntimeError):
    """The batcher is stopped: submitted work is refused, waiting work is failed with this."""


@dataclass
class _Entry:
    item: Any
    key: Hashable
    future: Future
    queued_at: float = field(default_factory=time.monotonic)


@dataclass
class BatchStats:
    """Counts since start: calls made, items run, and the largest batch."""

    batches: int = 0
    items: int = 0
    largest: int = 0

    @property
    def mean_batch_size(self) -> float:
        return self.items / self.batches if self.batches else 0.0


class DynamicBatcher:
    """Runs `run(items, key) -> results` (one result or exception per item, in order) on batches gathered from
    `submit` calls."""

    def __init__(
        self,
        run: Callable[[Sequence[Any], Hashable], list[Any]],
        max_batch_size: int = 8,
        max_wait_ms: float = 10.0,
        name: str = "fireredasr-batcher",
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        self.run = run
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000
        self.stats = BatchStats()
        self._pending: deque[_Entry] = deque()
        self._condition = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stops the worker after its current call; items still waiting fail with BatcherStopped."""
        with self._condition:
            self._stopped = True
            self._condition.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._stopped

    @property
    def pending(self) -> int:
        """Items waiting for a call (not counting the call in progress)."""
        return len(self._pending)

    def submit(self, item: Any, key: Hashable = None) -> Future:
        """Queues one item; the future gets its result, or the exception its call raised."""
        future: Future = Future()
        with self._condition:
            if self._stopped:
                raise BatcherStopped("the server is shutting down")
            self._pending.append(_Entry(item, key, future))
            self._condition.notify_all()
        return future

    def _next_batch(self) -> list[_Entry] | None:
        """Blocks until a batch is due; None once stopped."""
        with self._condition:
            while True:
                while not self._pending and not self._stopped:
                    self._condition.wait()
                if self._stopped:
                    for entry in self._pending:
                        if entry.future.set_running_or_notify_cancel():  # not for a cancelled one
                            entry.future.set_exception(BatcherStopped("the server is shutting down"))
                    self._pending.clear()
                    return None
                oldest = self._pending[0]
                same = [entry for entry in self._pending if entry.key == oldest.key][: self.max_batch_size]
                remaining = oldest.queued_at + self.max_wait_s - time.monotonic()
                if len(same) >= self.max_batch_size or remaining <= 0:
                    break
                self._condition.wait(remaining)
            for entry in same:
                self._pending.remove(entry)
        # A request that gave up (timed out, disconnected) cancelled its futures: skip those items.
        return [entry for entry in same if entry.future.set_running_or_notify_cancel()]

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            if batch:
                self._run(batch)

    def _run(self, batch: list[_Entry]) -> None:
        self.stats.batches += 1
        self.stats.items += len(batch)
        self.stats.largest = max(self.stats.largest, len(batch))
        try:
            results = self.run([entry.item for entry in batch], batch[0].key)
            if len(results) != len(batch):
                raise RuntimeError(f"run returned {len(results)} results for {len(batch)} items")
        except Exception as error:  # `run` itself failed: every item of the call gets its error
            logger.warning(f"a batch of {len(batch)} failed ({error})")
            results = [error] * len(batch)
        for entry, result in zip(batch, results, strict=True):
            if isinstance(result, Exception):
                entry.future.set_exception(result)
            else:
                entry.future.set_result(result)


__all__ = ["BatchStats", "BatcherStopped", "DynamicBatcher"]
