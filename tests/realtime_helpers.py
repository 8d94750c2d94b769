"""Helpers for the live transcription tests: 24 kHz pcm16 from the test clips, streaming it with the official
client's realtime connection, collecting the server's events, and the HTTP endpoint's transcript of the same audio."""

from __future__ import annotations

import asyncio
import base64
import io
import time
import wave
from collections.abc import Callable

import httpx
import numpy as np

RATE_24K = 24000
TRANSCRIBED = "conversation.item.input_audio_transcription.completed"
DELTA = "conversation.item.input_audio_transcription.delta"


def to_pcm24(audio16: np.ndarray) -> np.ndarray:
    """16 kHz float audio -> 24 kHz int16 samples (band-limited, by zero-padding the spectrum)."""
    count = len(audio16) * 3 // 2
    spectrum = np.fft.rfft(np.asarray(audio16, dtype=np.float64))
    padded = np.zeros(count // 2 + 1, dtype=complex)
    padded[: len(spectrum)] = spectrum
    upsampled = np.fft.irfft(padded, n=count) * (count / len(audio16))
    return np.clip(np.round(upsampled * 32768), -32768, 32767).astype("<i2")


def b64(pcm: np.ndarray) -> str:
    return base64.b64encode(np.asarray(pcm, dtype="<i2").tobytes()).decode()


async def stream(connection, pcm: np.ndarray, chunk_ms: int = 100, speed: float | None = None, rate: int = RATE_24K):
    """Appends `pcm` in `chunk_ms` pieces, `speed` times faster than real time (None: as fast as it goes)."""
    step = rate * chunk_ms // 1000
    for begin in range(0, len(pcm), step):
        await connection.input_audio_buffer.append(audio=b64(pcm[begin : begin + step]))
        if speed:
            await asyncio.sleep(chunk_ms / 1000 / speed)


async def collect(connection, done: Callable[[list], bool], timeout: float = 60.0) -> list:
    """Server events (as dicts, in arrival order, each with the `at` time it arrived) until `done(events)`."""
    events: list[dict] = []
    deadline = time.monotonic() + timeout
    while not done(events):
        event = await asyncio.wait_for(connection.recv(), deadline - time.monotonic())
        record = event.model_dump(exclude_unset=True) if hasattr(event, "model_dump") else dict(event)
        record["at"] = time.monotonic()
        events.append(record)
    return events


def of_type(events: list[dict], kind: str) -> list[dict]:
    return [event for event in events if event["type"] == kind]


def completed_count(count: int) -> Callable[[list], bool]:
    return lambda events: len(of_type(events, TRANSCRIBED)) >= count


def http_transcript(base_url: str, audio16: np.ndarray, api_key: str | None = None) -> str:
    """What `POST /v1/audio/transcriptions` returns for this 16 kHz audio (as a 16-bit wav)."""
    return http_transcription(base_url, audio16, api_key)["text"]


def http_words(base_url: str, audio16: np.ndarray, api_key: str | None = None) -> list[dict]:
    """verbose_json's timed words of this 16 kHz audio."""
    form = {"response_format": "verbose_json", "timestamp_granularities[]": "word"}
    return http_transcription(base_url, audio16, api_key, form)["words"]


def http_transcription(base_url: str, audio16: np.ndarray, api_key: str | None = None, form: dict | None = None):
    """`POST /v1/audio/transcriptions`'s JSON body for this 16 kHz audio (as a 16-bit wav) and extra form fields."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(16000)
        file.writeframes(np.clip(np.round(audio16 * 32768.0), -32768, 32767).astype("<i2").tobytes())
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
    response = httpx.post(
        f"{base_url}/audio/transcriptions",
        data={"model": "fireredasr-demo", **(form or {})},
        files={"file": ("utterance.wav", buffer.getvalue(), "audio/wav")},
        headers=headers,
        timeout=120,
    )
    response.raise_for_status()
    return response.json()
