"""`WS /v1/realtime`: OpenAI's Realtime API in transcription mode (`?intent=transcription`).

The API key is checked as on the HTTP routes, from `Authorization: Bearer KEY` or, for browsers (which cannot set
headers on a websocket), from the subprotocol `openai-insecure-api-key.KEY`, as OpenAI's own endpoint takes it; a
wrong key is refused with 401 before the socket opens. A model named in the URL (`?model=`, which the beta client
sends) or in the session's transcription settings must be the served one. At most `max_realtime_sessions` sessions
run at once: one more gets an `error` event and is closed (code 1013, try again later). A session that sends nothing
for `realtime_idle_timeout_s` while no transcript is pending gets an `error` event and is closed (code 1000), which
frees its place. Each text frame is one client event; a binary frame gets an `error` event.
"""

from __future__ import annotations

import secrets

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse

from ...engine import Engine
from ..admission import AdmissionGate, QueueFull
from ..batcher import DynamicBatcher
from ..openai_schema import error_body
from ..settings import ServerSettings
from .protocol import error_event
from .session import LiveSession
from .vad import live_detector

KEY_PROTOCOL = "openai-insecure-api-key."
TRY_AGAIN_LATER = 1013
NORMAL_CLOSURE = 1000
POLICY_VIOLATION = 1008


def given_key(websocket: WebSocket) -> str:
    """The API key the client sent: the bearer header, else the browser's subprotocol."""
    header = websocket.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    for protocol in websocket.scope.get("subprotocols", []):
        if protocol.startswith(KEY_PROTOCOL):
            return protocol[len(KEY_PROTOCOL) :]
    return ""


async def _refuse(websocket: WebSocket, event: dict, code: int) -> None:
    await websocket.send_json(event)
    await websocket.close(code)


def add_realtime_route(app: FastAPI, engine: Engine, settings: ServerSettings, batcher: DynamicBatcher) -> None:
    """Mounts `WS /v1/realtime` on the app, sharing the HTTP routes' engine, batcher and settings."""
    gate = AdmissionGate(settings.max_realtime_sessions)
    app.state.realtime_gate = gate
    live_detector(engine)  # loads FireRedVAD's streaming variant, when the server has FireRedVAD, before any session

    @app.websocket("/v1/realtime")
    async def realtime(websocket: WebSocket) -> None:
        if settings.api_key is not None:
            given = given_key(websocket)
            if not secrets.compare_digest(given.encode(), settings.api_key.encode()):
                message = (
                    "Incorrect API key provided" if given else "Missing API key: send `Authorization: Bearer KEY`"
                )
                body = error_body(message, "invalid_request_error", None, "invalid_api_key")
                if "websocket.http.response" in websocket.scope.get("extensions", {}):
                    await websocket.send_denial_response(JSONResponse(body, status_code=401))
                else:
                    await websocket.close(POLICY_VIOLATION)
                return
        offered = websocket.scope.get("subprotocols", [])
        await websocket.accept(subprotocol="realtime" if "realtime" in offered else None)
        intent, model = websocket.query_params.get("intent"), websocket.query_params.get("model")
        if intent not in (None, "transcription"):
            message = (
                f"intent {intent!r} is not supported: this server transcribes (connect with ?intent=transcription)"
            )
            return await _refuse(websocket, error_event(message, param="intent"), POLICY_VIOLATION)
        if model not in (None, settings.served_model_name):
            message = f"The model {model!r} does not exist: this server serves {settings.served_model_name!r}"
            event = error_event(message, code="model_not_found", param="model")
            return await _refuse(websocket, event, POLICY_VIOLATION)
        try:
            ticket = gate.enter()
        except QueueFull:
            message = (
                f"the server is busy: {gate.limit} live sessions are already open (--max-realtime-sessions); "
                "retry later"
            )
            event = error_event(message, "rate_limit_error", "session_limit_reached")
            return await _refuse(websocket, event, TRY_AGAIN_LATER)
        session = LiveSession(engine, batcher, settings, websocket.send_text)
        try:
            await session.start()
            while True:
                message = await session.receive(websocket.receive)
                if message is None:  # idle for too long: told so, and closed cleanly
                    await websocket.close(NORMAL_CLOSURE, "idle timeout")
                    break
                if message["type"] == "websocket.disconnect":
                    break
                if message.get("text") is None:
                    await session.send(error_event("send each event as a JSON text frame", code="invalid_event"))
                    continue
                await session.handle(message["text"])
        except WebSocketDisconnect:
            pass
        finally:
            await session.close()
            ticket.release()


__all__ = ["add_realtime_route", "given_key"]
