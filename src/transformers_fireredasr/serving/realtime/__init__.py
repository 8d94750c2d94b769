"""Live transcription over OpenAI's Realtime API in transcription mode (`WS /v1/realtime`): the protocol's events
(`protocol.py`), a session's state (`session.py`), resampling (`resample.py`), turn detection (`vad.py`), captions
that only grow (`stabilise.py`), the route (`route.py`), and the `fireredasr-live` client (`live_cli.py`)."""

from .route import add_realtime_route

__all__ = ["add_realtime_route"]
