"""One live transcription session: audio in, captions out, over OpenAI's Realtime transcription events.

Audio arrives as base64 pcm16 (`input_audio_buffer.append`), is resampled on the accumulated stream
(`resample.py`) and kept from the start of the current utterance on. An utterance (an item) begins where the
engine's voice activity detector hears speech (`server_vad`, `vad.py`), or with the first audio after a commit when
the client commits; it ends at the end of speech, at the client's commit, or, at the latest, `max_utterance_seconds`
after it began, cut at its quietest moment, so the buffer and the cost of re-decoding stay bounded.

While an utterance grows it is re-decoded about once a second (more rarely when decoding takes longer), cut at
pauses as the final decode cuts it, through the server's batcher, so concurrent sessions and HTTP requests share
`generate` calls; one decode per session is in flight at a time and it takes the latest audio. Text that the last three hypotheses agree on is sent
as `...delta` events (`stabilise.py`). When the utterance ends, it is decoded as the HTTP endpoint decodes a file
(cut at pauses, punctuated when the server punctuates, with its timed words when the session includes them) and
sent as `...completed`, after a last delta with the rest
of that transcript when what was sent is its prefix. Items complete in order. The model runs on the batcher's thread
and the feature and VAD work in worker threads, so the event loop stays free.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

import numpy as np
from starlette.concurrency import run_in_threadpool
from transformers.utils import logging

from ...engine import Engine, OptionError, join_segment_texts
from ...segmentation import fixed_segments, is_silent
from ..batcher import DynamicBatcher
from ..settings import ServerSettings
from ..transcriber import punctuated, request_options
from .protocol import (
    SHAPES,
    WORDS,
    ProtocolError,
    SessionConfig,
    TurnDetection,
    error_event,
    new_id,
    server_event,
    updated_config,
)
from .resample import TARGET_RATE, StreamingResampler
from .stabilise import LocalAgreement
from .vad import StreamingVad, live_detector, turn_detection_available

logger = logging.get_logger(__name__)

RATE = TARGET_RATE
MS = RATE // 1000  # samples per millisecond; item bounds fall on whole milliseconds
# OpenAI's limits: the least audio a commit takes, the most bytes an append carries.
MIN_COMMIT_MS = 100
MAX_APPEND_BYTES = 15 * 1024 * 1024
# The largest websocket message: such an append in base64, with room for its JSON.
MAX_MESSAGE_BYTES = MAX_APPEND_BYTES * 4 // 3 + 1024 * 1024
# The longest utterance before it is committed whatever the speaker does (also kept under the model's limit).
MAX_UTTERANCE_SECONDS = 30.0
# New audio between two re-decodes of an utterance: 1.5 times the last decode's time, within these bounds.
MIN_STEP_SECONDS, MAX_STEP_SECONDS = 0.5, 2.0
# The step until the first agreement is possible: short audio decodes fast, and the first captions come sooner.
FIRST_STEP_SECONDS = 0.3
# Audio kept after the end of speech (speech_stopped's audio_end_ms), and before speech while no one speaks.
END_PADDING_SECONDS = 0.2
IDLE_KEEP_SECONDS = 1.0
# Consecutive hypotheses that must agree before their shared text is sent.
AGREEMENT = 3
# The shortest utterance worth a partial decode.
MIN_PARTIAL_SECONDS = 0.3


@dataclass
class Item:
    """The utterance being heard: its id, where it starts (16 kHz samples since the session began), its captions."""

    id: str
    start: int
    by_vad: bool
    agreement: LocalAgreement = field(default_factory=lambda: LocalAgreement(AGREEMENT))
    decoded_until: int = 0


def session_words(results: list, offset: float) -> list[dict]:
    """The results' timed words as verbose_json's `words` has them (`word`, `start`, `end`, `confidence`), moved by
    `offset` seconds (where the utterance starts in the session's audio)."""
    return [
        {
            "word": word["text"],
            "start": round(word["timestamp"][0] + offset, 3),
            "end": round(word["timestamp"][1] + offset, 3),
            "confidence": word["confidence"],
        }
        for result in results
        for word in result.words or []
    ]


def _ms(samples: int) -> int:
    return samples // MS


def _on_ms(samples: int) -> int:
    return samples // MS * MS


class LiveSession:
    """The state of one websocket; `handle` takes each client event in order, `send` delivers server events."""

    def __init__(
        self,
        engine: Engine,
        batcher: DynamicBatcher,
        settings: ServerSettings,
        send: Callable[[str], Awaitable[None]],
    ) -> None:
        self.engine, self.batcher, self.settings = engine, batcher, settings
        self.id = new_id("sess")
        self.config = SessionConfig(
            model=settings.served_model_name,
            turn_detection=TurnDetection() if turn_detection_available(engine) else None,
        )
        self.options = request_options()
        self.max_utterance = _on_ms(int(min(MAX_UTTERANCE_SECONDS, 0.9 * engine.max_segment_seconds) * RATE))
        self.max_append_bytes = min(MAX_APPEND_BYTES, settings.max_upload_bytes)
        self._send_text = send
        self._send_lock = asyncio.Lock()
        self._resampler = StreamingResampler(self.config.rate)
        self._vad: StreamingVad | None = None
        self._vad_origin = 0
        self._audio = np.zeros(0, dtype=np.float32)
        self._offset = 0  # the session sample `_audio[0]` is
        self._floor = 0  # where the next item may start: the end of the last committed one
        self.item: Item | None = None
        self._previous_item: str | None = None
        self._completion: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self._wake = asyncio.Event()
        self._partials: asyncio.Task | None = None

    @property
    def total(self) -> int:
        """16 kHz samples received since the session began."""
        return self._offset + len(self._audio)

    # ---- lifecycle
    async def start(self) -> None:
        if self.config.turn_detection is not None:
            await self._new_vad()
        self._partials = asyncio.create_task(self._partial_loop())
        await self.send(server_event("session.created", session=self.config.current_shape(self.id)))

    async def close(self) -> None:
        """Stops the session's work: decodes in flight are cancelled (their batcher items are skipped)."""
        tasks = [task for task in (self._partials, *self._tasks) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def receive(self, receive: Callable[[], Awaitable[dict]]) -> dict | None:
        """The socket's next message (`receive` waits for it); None once the client has sent nothing for the
        server's idle timeout while no transcript was pending, after an `error` event (`idle_timeout`) says so."""
        timeout = self.settings.realtime_idle_timeout_s
        while True:
            try:
                return await asyncio.wait_for(receive(), timeout if math.isfinite(timeout) else None)
            except asyncio.TimeoutError:
                if self._completion is None or self._completion.done():
                    break
        message = (
            f"the session sent nothing for {timeout:g} s and is closed (the server's --realtime-idle-timeout); "
            "connect again to go on"
        )
        await self._send_quietly(error_event(message, code="idle_timeout"))
        return None

    async def send(self, event: dict) -> None:
        async with self._send_lock:
            await self._send_text(json.dumps(event, ensure_ascii=False))

    async def _send_quietly(self, event: dict) -> None:
        """For background tasks: a socket that went away ends the session elsewhere."""
        try:
            await self.send(event)
        except Exception as error:  # the client disconnected
            logger.debug(f"live session {self.id}: could not send {event['type']} ({error})")

    # ---- client events
    async def handle(self, text: str) -> None:
        """One client event; a bad one is answered with an `error` event and changes nothing."""
        event_id = None
        try:
            try:
                event = json.loads(text)
            except ValueError as error:
                raise ProtocolError(f"the message is not JSON ({error})", None, "invalid_json") from None
            if not isinstance(event, dict) or not isinstance(event.get("type"), str):
                raise ProtocolError("an event is a JSON object with a string `type`", "type", "invalid_event")
            event_id = event.get("event_id")
            kind = event["type"]
            if kind in SHAPES:
                await self._update(event)
            elif kind == "input_audio_buffer.append":
                await self._append(event)
            elif kind == "input_audio_buffer.commit":
                await self._client_commit()
            elif kind == "input_audio_buffer.clear":
                await self._clear()
            else:
                raise ProtocolError(
                    f"unknown or unsupported event type {kind!r}: a transcription session takes session.update "
                    "(or transcription_session.update) and input_audio_buffer.append, commit and clear",
                    "type",
                    "invalid_event",
                )
        except ProtocolError as error:
            await self.send(error_event(str(error), code=error.code, param=error.param, event_id=event_id))

    async def _update(self, event: dict) -> None:
        config = updated_config(self.config, event, self.settings.served_model_name)
        if config.turn_detection is not None and not turn_detection_available(self.engine):
            raise ProtocolError(
                "server_vad needs silero-vad (the vad extra) or a FireRedVAD model on the server: set turn_detection "
                "to null and commit",
                "turn_detection",
            )
        options = self.options
        if config.keywords != self.config.keywords:
            try:
                options = request_options(hotwords=config.keywords) if config.keywords else request_options()
                self.engine.check(options)
            except OptionError as error:
                raise ProtocolError(str(error), "keywords") from None
        if WORDS in config.include and not self.engine.times_words:
            raise ProtocolError(
                f"{WORDS!r} needs word timestamps, and this model has no CTC head to time words with",
                "session.include",
            )
        previous, self.config, self.options = self.config, config, options
        if config.rate != previous.rate:
            self._resampler = StreamingResampler(config.rate)
        if config.turn_detection != previous.turn_detection:
            self._vad = None
            if config.turn_detection is not None:
                await self._new_vad()
        if SHAPES[event["type"]] == "beta":
            await self.send(server_event("transcription_session.updated", session=config.beta_shape(self.id)))
        else:
            await self.send(server_event("session.updated", session=config.current_shape(self.id)))

    async def _new_vad(self) -> None:
        detection = self.config.turn_detection
        self._vad = await run_in_threadpool(
            StreamingVad,
            detection.threshold,
            detection.prefix_padding_ms,
            detection.silence_duration_ms,
            live_detector(self.engine),
        )
        self._vad_origin = self.total

    def _decoded_audio(self, event: dict) -> np.ndarray:
        data = event.get("audio")
        if not isinstance(data, str):
            raise ProtocolError("input_audio_buffer.append needs `audio`: base64 of pcm16 samples", "audio")
        if len(data) * 3 // 4 > self.max_append_bytes:
            raise ProtocolError(
                f"one append carries at most {self.max_append_bytes} bytes of audio; send smaller pieces",
                "audio",
                "audio_too_large",
            )
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as error:
            raise ProtocolError(f"audio is not valid base64 ({error})", "audio") from None
        if len(raw) % 2:
            raise ProtocolError(f"audio holds {len(raw)} bytes, an odd number: pcm16 takes 2 bytes a sample", "audio")
        return np.frombuffer(raw, dtype="<i2")

    def _ingest(self, pcm: np.ndarray, flush: bool) -> tuple[np.ndarray, list, int]:
        """Worker thread: resampling and voice activity detection of new audio."""
        samples = self._resampler.push(pcm)
        if flush:
            samples = np.concatenate([samples, self._resampler.flush()])
        vad, origin = self._vad, self._vad_origin
        events = vad.feed(samples) if vad is not None else []
        return samples, events, origin

    async def _take(self, pcm: np.ndarray, flush: bool = False) -> None:
        """Adds audio, follows speech starts and stops, and force-commits an utterance at the limit."""
        samples, events, origin = await run_in_threadpool(self._ingest, pcm, flush)
        self._audio = np.concatenate([self._audio, samples])
        for event in events if self._vad is not None else []:
            at = _on_ms(origin + event.sample)
            if event.kind == "start" and self.item is None:
                await self._open(max(at, self._floor, self._offset), by_vad=True)
            elif event.kind == "stop" and self.item is not None and self.item.by_vad:
                end = min(_on_ms(at + int(END_PADDING_SECONDS * RATE)), _on_ms(self.total))
                end = max(end, self.item.start)
                await self.send(
                    server_event("input_audio_buffer.speech_stopped", audio_end_ms=_ms(end), item_id=self.item.id)
                )
                await self._commit(end)
        if self.item is None and self.config.turn_detection is None and self.total > self._floor:
            await self._open(self._floor, by_vad=False)
        while self.item is not None and self.total - self.item.start >= self.max_utterance:
            await self._force_commit()
        if self.item is None:  # nobody speaks: keep only what a coming utterance may start with
            self._drop_before(max(self._floor, self.total - int(IDLE_KEEP_SECONDS * RATE)))
        self._wake.set()

    async def _append(self, event: dict) -> None:
        pcm = self._decoded_audio(event)
        if len(pcm):
            await self._take(pcm)

    async def _open(self, start: int, by_vad: bool) -> None:
        self.item = Item(new_id("item"), start, by_vad, decoded_until=start)
        if by_vad:
            await self.send(
                server_event("input_audio_buffer.speech_started", audio_start_ms=_ms(start), item_id=self.item.id)
            )

    async def _force_commit(self) -> None:
        """Commits the utterance at its quietest moment before the limit; speech goes on in a new item."""
        item = self.item
        audio = self._audio[item.start - self._offset : item.start - self._offset + self.max_utterance]
        spans = fixed_segments(audio, RATE, self.max_utterance / RATE)
        cut = item.start + _on_ms(spans[0][1] if spans else len(audio))
        cut = cut if cut > item.start else item.start + self.max_utterance
        await self._commit(cut)
        await self._open(cut, by_vad=item.by_vad)

    async def _client_commit(self) -> None:
        pending = max(self._floor, self._offset)
        await self._take(np.zeros(0, dtype="<i2"), flush=True)  # the stream so far, to its last sample
        start = self.item.start if self.item is not None else pending
        heard = _ms(self.total - start)
        if heard < MIN_COMMIT_MS:
            raise ProtocolError(
                f"buffer too small: expected at least {MIN_COMMIT_MS} ms of audio, but the buffer only has {heard} ms",
                None,
                "input_audio_buffer_commit_empty",
            )
        if self.item is None:
            self.item = Item(new_id("item"), start, by_vad=False, decoded_until=start)
        await self._commit(self.total)
        if self._vad is not None and self._vad.speaking:  # the speaker goes on: what follows is the next item
            await self._open(self.total, by_vad=True)

    async def _clear(self) -> None:
        self._resampler = StreamingResampler(self.config.rate)
        self.item = None
        self._drop_before(self.total)
        self._floor = self.total
        if self.config.turn_detection is not None:
            await self._new_vad()
        await self.send(server_event("input_audio_buffer.cleared"))

    def _drop_before(self, sample: int) -> None:
        if sample > self._offset:
            self._audio = self._audio[sample - self._offset :]
            self._offset = sample

    async def _commit(self, end: int) -> None:
        """Ends the current item at `end` and queues its final transcription (items complete in order)."""
        item, self.item = self.item, None
        audio = self._audio[item.start - self._offset : end - self._offset].copy()
        self._floor = end
        self._drop_before(end)
        await self.send(
            server_event("input_audio_buffer.committed", item_id=item.id, previous_item_id=self._previous_item)
        )
        self._previous_item = item.id
        self._completion = self._spawn(self._complete(item, audio, self._completion))

    def _spawn(self, work) -> asyncio.Task:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ---- decoding
    async def _decode(self, segments: list, options) -> list:
        futures = [self.batcher.submit(segment, options) for segment in segments]
        try:
            return await asyncio.wait_for(
                asyncio.gather(*(asyncio.wrap_future(future) for future in futures)), self.settings.request_timeout_s
            )
        finally:
            for future in futures:
                future.cancel()  # a session that went away frees the batcher from its items

    async def _partial_loop(self) -> None:
        """Re-decodes the current utterance as it grows, one decode at a time, and sends what has stabilised."""
        cost = 0.0
        while True:
            await self._wake.wait()
            self._wake.clear()
            item, end = self.item, self.total
            if item is not None and len(item.agreement.recent) < AGREEMENT:
                step = int(FIRST_STEP_SECONDS * RATE)
            else:
                step = int(min(max(1.5 * cost, MIN_STEP_SECONDS), MAX_STEP_SECONDS) * RATE)
            if item is None or end - item.decoded_until < step or end - item.start < MIN_PARTIAL_SECONDS * RATE:
                continue
            audio = self._audio[item.start - self._offset : end - self._offset]
            item.decoded_until = end
            began = time.monotonic()
            try:
                text = await self._partial_text(audio)
            except Exception as error:  # a failed partial only delays the captions; `completed` reports failures
                logger.warning(f"live session {self.id}: a partial decode failed ({error})")
                continue
            cost = time.monotonic() - began
            if self.item is item:
                delta = item.agreement.update(text)
                if delta:
                    await self._send_quietly(self._delta(item, delta))
            if self.total > end:
                self._wake.set()

    async def _partial_text(self, audio: np.ndarray) -> str:
        """The utterance so far, cut at pauses and decoded as `completed` will be: its finished parts then decode
        from the same audio as in the end, so the hypotheses agree with the final transcript as often as they can."""
        if is_silent(audio):
            return ""
        prepared = await run_in_threadpool(self.engine.prepare, audio, self.options)
        results = await self._decode(prepared.segments, self.options)
        return join_segment_texts([result.text for result in results])

    def _delta(self, item: Item, text: str) -> dict:
        return server_event(
            "conversation.item.input_audio_transcription.delta", item_id=item.id, content_index=0, delta=text
        )

    async def _transcript(self, audio: np.ndarray, start: int = 0) -> tuple[str, list[dict] | None]:
        """The utterance decoded as `POST /v1/audio/transcriptions` decodes a file with the same audio, and, when
        the session includes words, its timed words as verbose_json has them, in seconds of the session's audio
        (the utterance starts at sample `start`)."""
        words = WORDS in self.config.include
        options = replace(self.options, timestamps="word") if words else self.options
        if len(audio) < self.engine.feature_extractor.win_length:
            return "", [] if words else None
        prepared = await run_in_threadpool(self.engine.prepare, audio, options)
        results = await self._decode(prepared.segments, options)
        output = await run_in_threadpool(punctuated, self.engine, prepared, results, options)
        text = join_segment_texts([r.text for r in results]) if output is None else output["text"]
        return text, session_words(results, start / RATE) if words else None

    async def _complete(self, item: Item, audio: np.ndarray, previous: asyncio.Task | None) -> None:
        try:
            (transcript, words), failure = await self._transcript(audio, item.start), None
        except asyncio.CancelledError:
            raise
        except Exception as error:
            transcript, words, failure = "", None, error
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        if failure is not None:
            if isinstance(failure, asyncio.TimeoutError):
                message = f"timed out after {self.settings.request_timeout_s:g} s waiting for the model"
            else:
                message = f"transcription failed: {failure}"
            await self._send_quietly(
                server_event(
                    "conversation.item.input_audio_transcription.failed",
                    item_id=item.id,
                    content_index=0,
                    error={"type": "server_error", "code": "transcription_failed", "message": message, "param": None},
                )
            )
            return
        rest = item.agreement.finish(transcript)
        if rest:
            await self._send_quietly(self._delta(item, rest))
        await self._send_quietly(
            server_event(
                "conversation.item.input_audio_transcription.completed",
                item_id=item.id,
                content_index=0,
                transcript=transcript,
                usage={"type": "duration", "seconds": math.ceil(len(audio) / RATE * 1000) / 1000},
                **({} if words is None else {"words": words}),
            )
        )


__all__ = ["Item", "LiveSession", "session_words"]
