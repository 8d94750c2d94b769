"""`fireredasr-live FILE_OR_MIC`: live captions from a transcription server over OpenAI's Realtime API.

Streams an audio file at real time (`--speed` faster, 0 as fast as the connection takes it), or the microphone
(`mic`, through the `sounddevice` package), to `WS /v1/realtime` of `fireredasr-serve` (or any server that speaks
the protocol) with the official `openai` client, and prints one line per utterance as the server completes it. On a
terminal the line grows with the captions as they arrive; `--events` prints every server event as a JSON line.
The server's turn detection cuts utterances at pauses (`--turn-detection none`: the whole input is one utterance).
The API key comes from `--api-key` or FIREREDASR_API_KEY.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
from collections.abc import AsyncIterator, Sequence

import numpy as np

API_KEY_VARIABLE = "FIREREDASR_API_KEY"
DEFAULT_URL = "http://127.0.0.1:8000/v1"
MIC = "mic"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fireredasr-live", description=__doc__)
    parser.add_argument("source", metavar="FILE_OR_MIC", help="an audio file (anything ffmpeg reads), or `mic`")
    parser.add_argument("--base-url", default=DEFAULT_URL, help=f"the server's API root (default: {DEFAULT_URL})")
    parser.add_argument("--api-key", default=os.environ.get(API_KEY_VARIABLE), help=f"the key ({API_KEY_VARIABLE})")
    parser.add_argument(
        "--model", default="fireredasr-demo", help="the served model's name (default: fireredasr-demo)"
    )
    parser.add_argument("--language", choices=["zh", "en"], help="the language spoken")
    parser.add_argument(
        "--turn-detection",
        choices=["server_vad", "none"],
        default="server_vad",
        help="server_vad: the server cuts utterances at pauses; none: one utterance, committed at the end",
    )
    parser.add_argument("--silence-ms", type=int, default=500, help="the pause that ends an utterance (server_vad)")
    parser.add_argument(
        "--speed", type=float, default=1.0, help="how much faster than real time a file is sent (0: at once)"
    )
    parser.add_argument("--chunk-ms", type=int, default=100, help="audio per append (default: 100 ms)")
    parser.add_argument(
        "--rate",
        type=int,
        choices=[24000, 16000],
        default=24000,
        help="the pcm16 rate sent: 24000 (OpenAI's) or 16000 (fireredasr-serve's addition: no resampling)",
    )
    parser.add_argument("--events", action="store_true", help="print every server event as a JSON line")
    return parser


def session_settings(options: argparse.Namespace) -> dict:
    """The `session.update` payload for these options."""
    transcription: dict = {"model": options.model}
    if options.language:
        transcription["language"] = options.language
    detection = None
    if options.turn_detection == "server_vad":
        detection = {"type": "server_vad", "silence_duration_ms": options.silence_ms}
    audio_input = {
        "format": {"type": "audio/pcm", "rate": options.rate},
        "transcription": transcription,
        "turn_detection": detection,
    }
    return {"type": "transcription", "audio": {"input": audio_input}}


async def file_chunks(path: str, rate: int, chunk_ms: int, speed: float) -> AsyncIterator[bytes]:
    """The file as pcm16 at `rate`, `chunk_ms` at a time, paced at `speed` times real time."""
    from ...audio_io import decode_file

    audio = decode_file(path, rate)
    pcm = np.clip(np.round(audio * 32768.0), -32768, 32767).astype("<i2")
    step = rate * chunk_ms // 1000
    loop = asyncio.get_running_loop()
    started = loop.time()
    for begin in range(0, len(pcm), step):
        if speed > 0:  # keep to the clock, whatever the sending took
            await asyncio.sleep(max(started + begin / rate / speed - loop.time(), 0))
        yield pcm[begin : begin + step].tobytes()


async def mic_chunks(rate: int, chunk_ms: int) -> AsyncIterator[bytes]:
    """The default microphone as pcm16 at `rate`, until Ctrl-C."""
    try:
        import sounddevice
    except (ImportError, OSError) as error:
        message = f"error: the microphone needs sounddevice and PortAudio: pip install sounddevice ({error})"
        raise SystemExit(message) from None
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes] = asyncio.Queue()

    def captured(data, frames, time, status) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, bytes(data))

    with sounddevice.RawInputStream(
        samplerate=rate, channels=1, dtype="int16", blocksize=rate * chunk_ms // 1000, callback=captured
    ):
        print("listening (Ctrl-C to stop)", file=sys.stderr)
        while True:
            yield await queue.get()


class Captions:
    """Prints the utterances: a growing line on a terminal, one line per completed utterance in any case."""

    def __init__(self, events: bool, terminal: bool) -> None:
        self.events, self.terminal = events, terminal
        self.line = ""
        self.committed: list[str] = []
        self.finished: set[str] = set()
        self.error: str | None = None

    def show(self, event) -> None:
        kind = event.type
        if self.events:
            print(json.dumps(event.model_dump(exclude_unset=True), ensure_ascii=False), flush=True)
        if kind == "input_audio_buffer.committed":
            self.committed.append(event.item_id)
        elif kind == "conversation.item.input_audio_transcription.delta" and not self.events:
            self.line += event.delta or ""
            if self.terminal:
                print(f"\r{self.line}", end="", flush=True)
        elif kind == "conversation.item.input_audio_transcription.completed":
            self.finished.add(event.item_id)
            if not self.events and (event.transcript or self.line):  # not the silence after the last words
                print(f"\r\033[K{event.transcript}" if self.terminal else event.transcript, flush=True)
            self.line = ""
        elif kind == "conversation.item.input_audio_transcription.failed":
            self.finished.add(event.item_id)
            print(f"error: {event.error.message}", file=sys.stderr)
        elif kind == "error" and event.error.code != "input_audio_buffer_commit_empty":
            self.error = event.error.message
            print(f"error: {event.error.message}", file=sys.stderr)

    @property
    def done(self) -> bool:
        return set(self.committed) <= self.finished


async def run(options: argparse.Namespace) -> int:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=options.base_url, api_key=options.api_key or "none", max_retries=0)
    captions = Captions(options.events, sys.stdout.isatty())
    if options.source == MIC:
        chunks = mic_chunks(options.rate, options.chunk_ms)
    else:
        chunks = file_chunks(options.source, options.rate, options.chunk_ms, options.speed)
    async with client.realtime.connect(extra_query={"intent": "transcription"}) as connection:
        await connection.session.update(session=session_settings(options))
        updates: list = []
        answered = asyncio.Event()  # both session.update events answered

        async def receive() -> None:
            async for event in connection:
                captions.show(event)
                if event.type == "session.updated":
                    updates.append(event)
                    if len(updates) >= 2:
                        answered.set()
                if event.type == "error" and event.error.code in ("session_limit_reached", "model_not_found"):
                    return

        receiver = asyncio.create_task(receive())
        try:
            async for chunk in chunks:
                if receiver.done():
                    break
                await connection.input_audio_buffer.append(audio=base64.b64encode(chunk).decode())
        except (KeyboardInterrupt, asyncio.CancelledError):
            pass
        if not receiver.done():
            await connection.input_audio_buffer.commit()  # what is left; an empty buffer only gets an error event
            # The server answers events in order: once this update is answered, every commit has been announced.
            await connection.session.update(session=session_settings(options))
            await asyncio.wait([receiver, asyncio.create_task(answered.wait())], return_when=asyncio.FIRST_COMPLETED)
            while not captions.done and not receiver.done():
                await asyncio.sleep(0.05)
        receiver.cancel()
    return 1 if captions.error else 0


def main(argv: Sequence[str] | None = None) -> int:
    options = build_parser().parse_args(argv)
    if options.source != MIC and not os.path.isfile(options.source):
        print(f"error: {options.source}: no such file (pass a file, or `mic`)", file=sys.stderr)
        return 2
    try:
        return asyncio.run(run(options))
    except KeyboardInterrupt:
        return 130
    except ImportError as error:
        print(f'error: {error}; pip install "openai[realtime]"', file=sys.stderr)
        return 2
    except Exception as error:  # the server refused or went away
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
