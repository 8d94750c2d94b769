"""The server's settings, one frozen dataclass shared by the command line, the app and the tests."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServerSettings:
    """What `fireredasr-serve` was started with (see `cli.py` for each option's meaning)."""

    served_model_name: str
    api_key: str | None = None
    max_batch_size: int = 8
    max_wait_ms: float = 10.0
    max_queue: int = 64
    max_upload_mb: float = 25.0
    max_audio_seconds: float = 3600.0
    request_timeout_s: float = 600.0
    max_realtime_sessions: int = 16
    realtime_idle_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        for name in ("max_batch_size", "max_queue", "max_realtime_sessions"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_upload_mb", "max_audio_seconds", "request_timeout_s", "realtime_idle_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {self.max_wait_ms}")
        if self.api_key is not None and not self.api_key:
            raise ValueError("api_key must not be empty (leave it out to serve without a key)")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)
