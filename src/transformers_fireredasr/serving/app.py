"""The FastAPI app: OpenAI's transcription routes, `/v1/models`, `/health` and the page at `/`.

A request is admitted (or refused with 429 when the queue is full), its upload decoded and segmented in a worker
thread (`transcriber.prepare_upload`, the engine's prepare), its segments queued on the dynamic batcher, and the answer rendered in the asked
format, or streamed as server-sent events, one `transcript.text.delta` per finished segment (in order) and then
`transcript.text.done`. With a punctuation model (`--punctuation`), every format carries the punctuated text: srt and
vtt cues end at sentence ends, verbose_json adds the timed `sentences`, and a stream's deltas are the text as
decoded while its `done` event carries the punctuated text. With a language model (`--lid-model`), verbose_json's
`language` is the identified one, and its segments and sentences carry theirs; vtt cues carry theirs in cue language
spans, and a stream's `done` event carries the language of most of the speech (srt has no place for one). Every error is an OpenAI-style JSON body with its HTTP
status.

No `from __future__ import annotations` here: FastAPI reads the route signatures' annotations at run time.
"""

import asyncio
import json
import secrets
import time
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import Annotated

from fastapi import Depends, FastAPI, Form, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.sse import EventSourceResponse, format_sse_event
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from ..engine import Engine, OptionError, Prepared, SegmentResult, join_segment_texts
from ..engine.assemble import pieces
from ..engine.language import dominant_language, tag_pieces
from ..formats import cues_from_sentences, to_srt, to_text, to_vtt
from ..hotwords import hotword_entries
from .admission import AdmissionGate, QueueFull, Ticket
from .batcher import BatcherStopped, DynamicBatcher
from .openai_schema import (
    LANGUAGES,
    ModelCard,
    ModelList,
    Transcription,
    TranscriptionEvent,
    TranscriptionForm,
    TranscriptionSegment,
    TranscriptionSentence,
    TranscriptionVerbose,
    TranscriptionWord,
    error_body,
    validation_message,
)
from .realtime import add_realtime_route
from .settings import ServerSettings
from .transcriber import AudioTooLong, identified, prepare_upload, punctuated, request_options
from .upload_limit import UploadLimitMiddleware


class ServingError(Exception):
    """An error answered with `status` and OpenAI's error body."""

    def __init__(self, status: int, message: str, type: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code


def _error_response(error: ServingError) -> JSONResponse:
    headers = {"Retry-After": "1"} if error.status in (429, 503) else None
    body = error_body(error.message, error.type, error.param, error.code)
    return JSONResponse(body, status_code=error.status, headers=headers)


def _http_error_type(status: int) -> str:
    return "invalid_request_error" if status < 500 else "server_error"


def _check_options(form: TranscriptionForm, settings: ServerSettings) -> None:
    """The model name and the combinations of options this server refuses, each with its reason."""
    if form.model != settings.served_model_name:
        raise ServingError(
            404,
            f"The model {form.model!r} does not exist: this server serves {settings.served_model_name!r}",
            "invalid_request_error",
            "model",
            "model_not_found",
        )
    if form.timestamp_granularities and form.response_format != "verbose_json":
        raise ServingError(
            400,
            "timestamp_granularities needs response_format=verbose_json",
            "invalid_request_error",
            "timestamp_granularities[]",
        )
    if form.stream and form.response_format not in ("json", "text"):
        raise ServingError(
            400,
            f"stream=true sends text deltas; response_format {form.response_format!r} cannot be streamed "
            "(use json or text, or stream=false)",
            "invalid_request_error",
            "stream",
        )


def join_texts(results: list[SegmentResult]) -> str:
    """A request's transcript: its segment texts joined as the engine joins them."""
    return join_segment_texts([result.text for result in results])


# The form's fields that are the engine's options under the same names.
ENGINE_FIELDS = ("temperature", "num_beams", "max_segment_seconds", "merge_segments_seconds", "segmentation")


def _decode_options(form: TranscriptionForm, engine: Engine):
    """The request's options, checked by the engine against the model (a 400 naming the field otherwise)."""
    values = {name: getattr(form, name) for name in ENGINE_FIELDS if getattr(form, name) is not None}
    try:
        if form.hotwords:  # the phrases as given; the options add hotword_score to those without a score
            lines = [line for value in form.hotwords for line in value.splitlines()]
            try:
                values["hotwords"] = tuple(hotword_entries(lines, "hotwords"))
            except ValueError as error:
                raise OptionError(f"hotwords: {error}", "hotwords") from None
        if form.hotword_score is not None:
            values["hotword_score"] = form.hotword_score
        if "word" in form.timestamp_granularities:
            values["timestamps"] = "word"
        options = request_options(**values)
        engine.check(options)
    except OptionError as error:
        param = "timestamp_granularities[]" if error.option == "timestamps" else error.option
        raise ServingError(400, str(error), "invalid_request_error", param) from None
    return options


def _compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return round(len(data) / len(zlib.compress(data)), 3) if data else 0.0


def _language_fields(language) -> dict:
    """A segment's or sentence's language fields (none without a language model)."""
    if language is None:
        return {}
    return {"language": language.label, "language_confidence": round(language.confidence, 4)}


def _verbose(
    form: TranscriptionForm,
    prepared: Prepared,
    results: list[SegmentResult],
    output: dict | None,
    languages: list | None = None,
) -> TranscriptionVerbose:
    segments = []
    for index, (segment, result) in enumerate(zip(prepared.segments, results, strict=True)):
        text = result.text.strip()
        if not text:
            continue
        segments.append(
            TranscriptionSegment(
                id=len(segments),
                seek=round(segment.start * 100),
                start=round(segment.start, 3),
                end=round(segment.end, 3),
                text=text,
                tokens=result.tokens,
                temperature=form.temperature,
                compression_ratio=_compression_ratio(text),
                confidence=None if result.confidence is None else round(result.confidence, 4),
                **_language_fields(languages[index] if languages else None),
            )
        )
    words = None
    if "word" in form.timestamp_granularities:
        words = [
            TranscriptionWord(
                word=w["text"], start=w["timestamp"][0], end=w["timestamp"][1], confidence=w["confidence"]
            )
            for result in results
            for w in result.words or []
        ]
    sentences = None
    if output is not None:
        sentences = [
            TranscriptionSentence(
                id=number,
                start=round(s["start"], 3),
                end=round(s["end"], 3),
                text=s["text"],
                **{key: s[key] for key in ("language", "language_confidence") if key in s},
            )
            for number, s in enumerate(output["sentences"])
        ]
    overall = _overall_language(prepared, languages)
    return TranscriptionVerbose(
        language=overall.label if overall else LANGUAGES[form.language or "zh"],
        language_confidence=round(overall.confidence, 4) if overall else None,
        duration=round(prepared.duration, 3),
        text=join_texts(results) if output is None else output["text"],
        segments=segments,
        words=words,
        sentences=sentences,
        sentence_timing=None if output is None else output["sentence_timing"],
        events=None if prepared.events is None else [TranscriptionEvent(**event) for event in prepared.events],
    )


def _overall_language(prepared: Prepared, languages: list | None):
    """The language of most of the request's speech (`Language`), or None (no language model, no speech)."""
    spoken = [
        (s.seconds, language) for s, language in zip(prepared.segments, languages or [], strict=False) if language
    ]
    return dominant_language(spoken)


def _cues(
    prepared: Prepared, results: list[SegmentResult], output: dict | None, languages: list | None = None
) -> list[dict]:
    """srt/vtt cues: one per decoded segment (with its language, given `languages`), or, punctuated, cues that end
    at sentence ends (cut at pauses between timed words when the request asked for word timestamps; with a language
    model, the sentences carry theirs)."""
    if output is None:
        chunks = pieces(prepared, results)
        if languages:
            tag_pieces(chunks, languages)
        return chunks
    words = [word for result in results for word in result.words or []] or None
    return cues_from_sentences(output["sentences"], words)


def _render(
    form: TranscriptionForm,
    prepared: Prepared,
    results: list[SegmentResult],
    output: dict | None,
    languages: list | None = None,
) -> Response:
    """The response in the asked format; `output` is the punctuated result when the server punctuates, `languages`
    each segment's language when it has a language model (verbose_json and vtt carry them)."""
    text = join_texts(results) if output is None else output["text"]
    if form.response_format == "json":
        return JSONResponse(Transcription(text=text).model_dump())
    if form.response_format == "text":
        return PlainTextResponse(to_text(text))
    if form.response_format == "srt":
        return PlainTextResponse(to_srt(_cues(prepared, results, output)))
    if form.response_format == "vtt":
        return PlainTextResponse(to_vtt(_cues(prepared, results, output, languages)), media_type="text/vtt")
    return JSONResponse(_verbose(form, prepared, results, output, languages).model_dump(exclude_none=True))


def _sse(payload: dict, event: str | None = None) -> bytes:
    return format_sse_event(data_str=json.dumps(payload, ensure_ascii=False), event=event)


def create_app(engine: Engine, settings: ServerSettings) -> FastAPI:
    """The server for one loaded model; the batcher's worker runs while the app is up (its lifespan)."""
    batcher = DynamicBatcher(
        lambda segments, options: engine.decode_each(segments, options),
        max_batch_size=settings.max_batch_size,
        max_wait_ms=settings.max_wait_ms,
    )
    gate = AdmissionGate(settings.max_queue)
    started = int(time.time())
    page = (files(__package__) / "static" / "index.html").read_text(encoding="utf-8")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        yield
        await run_in_threadpool(batcher.stop)

    app = FastAPI(title="FireRedASR transcription server", lifespan=lifespan)
    app.add_middleware(
        UploadLimitMiddleware,
        max_bytes=settings.max_upload_bytes,
        applies_to=lambda path: path.startswith("/v1/audio/"),
        error_body=lambda: error_body(
            f"the upload is larger than this server's limit of {settings.max_upload_mb:g} MB",
            "invalid_request_error",
            "file",
            "file_too_large",
        ),
    )
    app.state.batcher, app.state.gate, app.state.settings = batcher, gate, settings

    @app.exception_handler(ServingError)
    async def serving_error(request: Request, error: ServingError) -> JSONResponse:
        return _error_response(error)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        message, param = validation_message(list(error.errors()))
        return _error_response(ServingError(400, message, "invalid_request_error", param))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        status = error.status_code
        return _error_response(ServingError(status, str(error.detail), _http_error_type(status)))

    bearer = HTTPBearer(auto_error=False)

    def require_api_key(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
        if settings.api_key is None:
            return
        given = credentials.credentials if credentials is not None else ""
        if not secrets.compare_digest(given.encode(), settings.api_key.encode()):
            message = "Incorrect API key provided" if given else "Missing API key: send `Authorization: Bearer KEY`"
            raise ServingError(401, message, "invalid_request_error", None, "invalid_api_key")

    def model_card() -> ModelCard:
        return ModelCard(id=settings.served_model_name, created=started)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/health")
    async def health() -> JSONResponse:
        status = 200 if batcher.alive else 503
        body = {
            "status": "ok" if batcher.alive else "unavailable",
            "model": settings.served_model_name,
            "model_type": engine.model.config.model_type,
            "word_timestamps": engine.times_words,
            "admitted_requests": gate.admitted,
            "queued_segments": batcher.pending,
            "batches": batcher.stats.batches,
            "mean_batch_size": round(batcher.stats.mean_batch_size, 3),
            "max_batch_size": settings.max_batch_size,
        }
        return JSONResponse(body, status_code=status)

    @app.get("/v1/models", dependencies=[Depends(require_api_key)])
    async def list_models() -> ModelList:
        return ModelList(data=[model_card()])

    @app.get("/v1/models/{model:path}", dependencies=[Depends(require_api_key)])
    async def retrieve_model(model: str) -> ModelCard:
        if model != settings.served_model_name:
            raise ServingError(
                404, f"The model {model!r} does not exist", "invalid_request_error", "model", "model_not_found"
            )
        return model_card()

    async def results_of(futures: list, deadline: float) -> list[SegmentResult]:
        try:
            return await asyncio.wait_for(
                asyncio.gather(*(asyncio.wrap_future(future) for future in futures)), deadline - time.monotonic()
            )
        except asyncio.TimeoutError:
            raise ServingError(
                503,
                f"timed out after {settings.request_timeout_s:g} s waiting for the model",
                "server_error",
                None,
                "timeout",
            ) from None
        except BatcherStopped as error:
            raise ServingError(503, str(error), "server_error", None, "unavailable") from None
        except Exception as error:
            raise ServingError(500, f"transcription failed: {error}", "server_error") from error
        finally:
            for future in futures:
                future.cancel()  # no-op for finished ones; frees the batcher from segments nobody waits for

    async def punctuated_result(prepared: Prepared, results: list[SegmentResult], options) -> dict | None:
        """The request's punctuated result (None without a punctuation model), computed off the event loop."""
        try:
            return await run_in_threadpool(punctuated, engine, prepared, results, options)
        except Exception as error:
            raise ServingError(500, f"punctuation failed: {error}", "server_error") from error

    async def language_result(prepared: Prepared, results: list[SegmentResult], options, output) -> list | None:
        """Each segment's language (None without a language model), computed off the event loop."""
        try:
            return await run_in_threadpool(identified, engine, prepared, results, options, output)
        except Exception as error:
            raise ServingError(500, f"language identification failed: {error}", "server_error") from error

    async def stream(
        futures: list, deadline: float, ticket: Ticket, prepared: Prepared, options
    ) -> AsyncIterator[bytes]:
        """One delta per finished segment, in time order; the deltas join to the non-streamed text (with a
        punctuation model: to the text as decoded, and `done` carries the punctuated text; with a language model,
        `done` also carries the language of most of the speech)."""
        results: list[SegmentResult] = []
        try:
            for future in futures:
                results.extend(await results_of([future], deadline))
                before, after = join_texts(results[:-1]), join_texts(results)
                if after != before:
                    yield _sse({"type": "transcript.text.delta", "delta": after[len(before) :]})
            output = await punctuated_result(prepared, results, options)
            text = join_texts(results) if output is None else output["text"]
            done = {"type": "transcript.text.done", "text": text}
            languages = await language_result(prepared, results, options, output)
            if languages is not None:  # with a language model, as verbose_json's `language` (None: no speech)
                overall = _overall_language(prepared, languages)
                done["language"] = overall.label if overall else None
                done["language_confidence"] = round(overall.confidence, 4) if overall else None
            yield _sse(done)
        except ServingError as error:
            yield _sse(error_body(error.message, error.type, error.param, error.code), event="error")
        finally:
            for future in futures:
                future.cancel()
            ticket.release()

    @app.post("/v1/audio/transcriptions", dependencies=[Depends(require_api_key)])
    async def transcriptions(form: Annotated[TranscriptionForm, Form()]) -> Response:
        _check_options(form, settings)
        options = _decode_options(form, engine)
        try:
            ticket = gate.enter()
        except QueueFull as error:
            raise ServingError(429, str(error), "rate_limit_error", None, "queue_full") from None
        streaming = False
        try:
            deadline = time.monotonic() + settings.request_timeout_s
            data = await form.file.read()
            name = f"file {form.file.filename or 'upload'!r}"
            try:
                prepared = await run_in_threadpool(
                    prepare_upload, engine, data, name, settings.max_audio_seconds, options
                )
            except AudioTooLong as error:
                raise ServingError(413, str(error), "invalid_request_error", "file", "audio_too_long") from None
            except ValueError as error:
                raise ServingError(400, str(error), "invalid_request_error", "file", "invalid_audio") from None
            try:
                futures = [batcher.submit(segment, options) for segment in prepared.segments]
            except BatcherStopped as error:
                raise ServingError(503, str(error), "server_error", None, "unavailable") from None
            if form.stream:
                # The stream frees the place when it ends; the background task too, should it never start.
                streaming = True
                return EventSourceResponse(
                    stream(futures, deadline, ticket, prepared, options), background=BackgroundTask(ticket.release)
                )
            results = await results_of(futures, deadline)
            output = await punctuated_result(prepared, results, options)
            languages = None
            if form.response_format in ("verbose_json", "vtt"):  # the formats with a place for languages
                languages = await language_result(prepared, results, options, output)
            return _render(form, prepared, results, output, languages)
        finally:
            if not streaming:
                ticket.release()

    add_realtime_route(app, engine, settings, batcher)
    return app


__all__ = ["ServingError", "create_app"]
