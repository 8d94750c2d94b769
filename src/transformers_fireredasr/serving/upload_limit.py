"""The upload size limit as a small ASGI middleware, so that an oversized upload is refused with OpenAI's JSON
error (413) before its body is read when it announces its length, and as soon as it passes the limit when it does
not (chunked). Starlette's own body limit answers in plain text, which OpenAI clients cannot parse."""

from __future__ import annotations

import json
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class UploadTooLarge(Exception):
    """Raised from `receive` when a body without Content-Length grows past the limit."""


class UploadLimitMiddleware:
    """Refuses request bodies over `max_bytes` on the paths `applies_to` accepts, with `error_body(limit)` as JSON."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, applies_to: Callable[[str], bool], error_body: Callable[[], dict]
    ):
        self.app, self.max_bytes, self.applies_to, self.error_body = app, max_bytes, applies_to, error_body

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(self.error_body()).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.applies_to(scope["path"]):
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._refuse(send)
            return
        received, exceeded, responded = 0, False, False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise UploadTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            # Once the body was too large, whatever the app answers (FastAPI turns a failed body read into a 400)
            # is replaced by the 413.
            nonlocal responded
            if exceeded:
                if not responded:
                    responded = True
                    await self._refuse(send)
                return
            responded = responded or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except UploadTooLarge:
            pass
        if exceeded and not responded:
            await self._refuse(send)


__all__ = ["UploadLimitMiddleware", "UploadTooLarge"]
