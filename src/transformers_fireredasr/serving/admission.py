"""The queue limit: at most `limit` transcription requests are admitted at once; the next one is refused at once
(429) instead of waiting without bound, so a burst never makes the server hang or run out of memory."""

from __future__ import annotations

import threading


class QueueFull(RuntimeError):
    """Every place in the queue is taken."""


class Ticket:
    """One admitted request's place; `release()` frees it, once, however often it is called."""

    def __init__(self, gate: AdmissionGate) -> None:
        self._gate: AdmissionGate | None = gate

    def release(self) -> None:
        gate, self._gate = self._gate, None
        if gate is not None:
            gate._leave()


class AdmissionGate:
    """Counts admitted requests; `enter()` gives a Ticket, or raises QueueFull at the limit."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"the queue limit must be >= 1, got {limit}")
        self.limit = limit
        self._admitted = 0
        self._lock = threading.Lock()

    @property
    def admitted(self) -> int:
        return self._admitted

    def enter(self) -> Ticket:
        with self._lock:
            if self._admitted >= self.limit:
                raise QueueFull(f"the server is busy: {self.limit} requests are already queued; retry later")
            self._admitted += 1
        return Ticket(self)

    def _leave(self) -> None:
        with self._lock:
            self._admitted -= 1


__all__ = ["AdmissionGate", "QueueFull", "Ticket"]
