"""Starting `fireredasr-serve` as a child process from Python (benchmarks, tests, notebooks) and stopping it.

`with ServerProcess(["--max-batch-size", "1"]) as server: ...` starts the server on 127.0.0.1 with a free port
(`--port 0`), reads the port from uvicorn's "Uvicorn running on http://HOST:PORT" line, waits until `/health`
answers and stops the process on exit. Everything the server printed is kept in `output` for error messages.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence

_RUNNING = re.compile(r"Uvicorn running on (http://[^\s]+)")


class ServerProcess:
    """A `python -m transformers_fireredasr.serving` child process on 127.0.0.1, port chosen by the system."""

    def __init__(self, args: Sequence[str] = (), startup_timeout: float = 120.0) -> None:
        self.args = ["--host", "127.0.0.1", "--port", "0", *args]
        self.startup_timeout = startup_timeout
        self.url: str | None = None
        self.lines: list[str] = []
        self.process: subprocess.Popen | None = None
        self._found = threading.Event()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    @property
    def base_url(self) -> str:
        """The OpenAI clients' `base_url`."""
        return f"{self.url}/v1"

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)
            match = _RUNNING.search(line)
            if match and not self._found.is_set():
                self.url = match.group(1)
                self._found.set()

    def start(self) -> ServerProcess:
        command = [sys.executable, "-m", "transformers_fireredasr.serving", *self.args]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, encoding="utf-8"
        )
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + self.startup_timeout
        while not self._found.wait(0.1):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"fireredasr-serve did not start ({' '.join(command)}):\n{self.output[-4000:]}")
        while self.health() is None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"fireredasr-serve never answered /health:\n{self.output[-4000:]}")
            time.sleep(0.1)
        return self

    def health(self) -> dict | None:
        """`/health`'s body, or None while the server does not answer it with 200."""
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=5) as response:
                return json.loads(response.read())
        except OSError:
            return None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


__all__ = ["ServerProcess"]
