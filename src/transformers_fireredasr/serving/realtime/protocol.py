"""OpenAI's Realtime transcription protocol: the session settings a client sends, and the events this server sends.

Two shapes of session settings are read (the fields of openai-python's `types/realtime` and `types/beta/realtime`):
- current: `session.update` with `session: {type: "transcription", audio: {input: {format: {type: "audio/pcm",
  rate: 24000}, transcription: {model, language, prompt, keywords}, turn_detection}}}`;
- beta: `transcription_session.update` with `session: {input_audio_format: "pcm16", input_audio_transcription:
  {model, language, prompt}, turn_detection}`.
Only the fields present change. `turn_detection` is `{type: "server_vad", threshold, prefix_padding_ms,
silence_duration_ms}` or null (the client commits). This server's additions: `rate: 16000` (no resampling),
`keywords` become the engine's hotwords, and `include: ["item.input_audio_transcription.words"]` adds the
utterance's timed words to `...completed`. What it cannot do (other audio formats, semantic_vad, noise reduction, a
prompt) is refused with an `error` event naming the field, and the session keeps its settings.
"""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass, field, replace
from typing import Any

from ..openai_schema import LANGUAGES

RATES = (24000, 16000)
# `include` values: OpenAI's, and this server's addition that puts timed words into `...completed`.
LOGPROBS = "item.input_audio_transcription.logprobs"
WORDS = "item.input_audio_transcription.words"
INCLUDABLE = (LOGPROBS, WORDS)
SHAPES = {"session.update": "current", "transcription_session.update": "beta"}
_EVENT_NUMBERS = itertools.count()


class ProtocolError(ValueError):
    """A client event this server refuses; answered with an `error` event (`code`, `param`)."""

    def __init__(self, message: str, param: str | None = None, code: str = "invalid_value") -> None:
        super().__init__(message)
        self.param, self.code = param, code


@dataclass(frozen=True)
class TurnDetection:
    """server_vad's settings (OpenAI's defaults)."""

    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500

    def as_dict(self) -> dict:
        return {"type": "server_vad", **self.__dict__}


@dataclass(frozen=True)
class SessionConfig:
    """A session's settings; `turn_detection` None means that the client commits."""

    model: str
    rate: int = 24000
    turn_detection: TurnDetection | None = field(default_factory=TurnDetection)
    language: str | None = None
    keywords: tuple[str, ...] = ()
    include: tuple[str, ...] = ()

    def current_shape(self, session_id: str) -> dict:
        """The session as `session.created` / `session.updated` carry it."""
        return {
            "type": "transcription",
            "object": "realtime.transcription_session",
            "id": session_id,
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": self.rate},
                    "transcription": self._transcription(),
                    "turn_detection": None if self.turn_detection is None else self.turn_detection.as_dict(),
                    "noise_reduction": None,
                }
            },
            "include": list(self.include),
        }

    def beta_shape(self, session_id: str) -> dict:
        """The session as `transcription_session.updated` carries it."""
        return {
            "id": session_id,
            "object": "realtime.transcription_session",
            "modalities": ["text"],
            "input_audio_format": "pcm16",
            "input_audio_transcription": self._transcription(),
            "turn_detection": None if self.turn_detection is None else self.turn_detection.as_dict(),
            "input_audio_noise_reduction": None,
            "include": list(self.include),
        }

    def _transcription(self) -> dict:
        return {"model": self.model, "language": self.language, "prompt": "", "keywords": list(self.keywords)}


def _mapping(value: Any, param: str) -> dict:
    if not isinstance(value, dict):
        raise ProtocolError(f"{param} must be an object, got {type(value).__name__}", param)
    return value


def _number(value: Any, param: str, low: float, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low or (high and value > high):
        bounds = f"between {low:g} and {high:g}" if high is not None else f">= {low:g}"
        raise ProtocolError(f"{param} must be a number {bounds}, got {value!r}", param)
    return value


def _turn_detection(value: Any, current: TurnDetection | None, param: str) -> TurnDetection | None:
    if value is None:
        return None
    value = _mapping(value, param)
    kind = value.get("type", "server_vad")
    if kind != "server_vad":
        raise ProtocolError(
            f"{param}.type {kind!r} is not supported: use 'server_vad' (the engine's voice activity detector) or "
            "null (the client commits)",
            f"{param}.type",
        )
    base = current or TurnDetection()
    updates: dict[str, Any] = {}
    if value.get("threshold") is not None:
        updates["threshold"] = float(_number(value["threshold"], f"{param}.threshold", 0.0, 1.0))
    for name in ("prefix_padding_ms", "silence_duration_ms"):
        if value.get(name) is not None:
            updates[name] = int(_number(value[name], f"{param}.{name}", 0 if name.startswith("prefix") else 1, 10000))
    return replace(base, **updates)


def _transcription(value: Any, param: str, served: str) -> dict:
    if value is None:
        return {}
    value = _mapping(value, param)
    updates: dict[str, Any] = {}
    if value.get("model") is not None and value["model"] != served:
        raise ProtocolError(
            f"The model {value['model']!r} does not exist: this server serves {served!r}",
            f"{param}.model",
            "model_not_found",
        )
    if value.get("language") is not None:
        language = str(value["language"]).lower()
        if language not in LANGUAGES:
            raise ProtocolError(
                f"language {value['language']!r} is not supported: FireRedASR transcribes Mandarin Chinese and "
                "English; pass 'zh' or 'en', or leave it out",
                f"{param}.language",
            )
        updates["language"] = language
    if value.get("prompt"):
        raise ProtocolError("FireRedASR models take no text prompt: pass keywords instead", f"{param}.prompt")
    if value.get("keywords") is not None:
        keywords = value["keywords"]
        if not isinstance(keywords, list) or not all(isinstance(k, str) and k.strip() for k in keywords):
            raise ProtocolError(f"{param}.keywords must be a list of phrases, got {keywords!r}", f"{param}.keywords")
        updates["keywords"] = tuple(keywords)
    return updates


def _format(value: Any, param: str) -> int:
    value = _mapping(value, param)
    if value.get("type", "audio/pcm") != "audio/pcm":
        raise ProtocolError(
            f"{param}.type {value.get('type')!r} is not supported: send 'audio/pcm' (16-bit little-endian mono)",
            f"{param}.type",
        )
    rate = value.get("rate", 24000)
    if rate not in RATES:
        raise ProtocolError(f"{param}.rate must be 24000 (or this server's 16000), got {rate!r}", f"{param}.rate")
    return rate


def _include(value: Any, param: str) -> tuple[str, ...]:
    """The extra fields asked for: `WORDS` is kept; OpenAI's `LOGPROBS` is accepted and not sent (the model's
    confidence is a mean per word, not a log-probability per token); anything else is an error naming it."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ProtocolError(f"{param} must be a list, got {value!r}", param)
    unknown = [item for item in value if item not in INCLUDABLE]
    if unknown:
        raise ProtocolError(
            f"{param}: unknown value(s) {unknown!r}; this server takes {WORDS!r} (timed words in `completed`) and "
            f"{LOGPROBS!r} (accepted, not sent)",
            param,
        )
    return (WORDS,) if WORDS in value else ()


def updated_config(config: SessionConfig, event: dict, served: str) -> SessionConfig:
    """The settings after a `session.update` or `transcription_session.update` event; ProtocolError otherwise."""
    session = _mapping(event.get("session"), "session")
    updates: dict[str, Any] = {}
    if event["type"] == "session.update":
        if session.get("type", "transcription") != "transcription":
            raise ProtocolError(
                f"session.type {session.get('type')!r} is not supported: this server only transcribes "
                "(session.type 'transcription', connect with ?intent=transcription)",
                "session.type",
            )
        if "include" in session:
            updates["include"] = _include(session["include"], "session.include")
        audio = _mapping(session.get("audio") or {}, "session.audio")
        sound = _mapping(audio.get("input") or {}, "session.audio.input")
        if sound.get("format") is not None:
            updates["rate"] = _format(sound["format"], "session.audio.input.format")
        if sound.get("noise_reduction") is not None:
            raise ProtocolError(
                "noise reduction is not supported: leave it out or null", "session.audio.input.noise_reduction"
            )
        updates.update(_transcription(sound.get("transcription"), "session.audio.input.transcription", served))
        if "turn_detection" in sound:
            updates["turn_detection"] = _turn_detection(
                sound["turn_detection"], config.turn_detection, "session.audio.input.turn_detection"
            )
    else:
        if session.get("input_audio_format") not in (None, "pcm16"):
            raise ProtocolError(
                f"session.input_audio_format {session['input_audio_format']!r} is not supported: send 'pcm16'",
                "session.input_audio_format",
            )
        if session.get("input_audio_noise_reduction") is not None:
            raise ProtocolError("noise reduction is not supported", "session.input_audio_noise_reduction")
        if "include" in session:
            updates["include"] = _include(session["include"], "session.include")
        updates.update(
            _transcription(session.get("input_audio_transcription"), "session.input_audio_transcription", served)
        )
        if "turn_detection" in session:
            updates["turn_detection"] = _turn_detection(
                session["turn_detection"], config.turn_detection, "session.turn_detection"
            )
    return replace(config, **updates)


def new_id(prefix: str) -> str:
    """An id like OpenAI's (`item_...`, `sess_...`)."""
    return f"{prefix}_{secrets.token_hex(10)}"


def server_event(kind: str, **fields: Any) -> dict:
    """A server event with its own `event_id`."""
    return {"type": kind, "event_id": f"event_{next(_EVENT_NUMBERS)}_{secrets.token_hex(4)}", **fields}


def error_event(
    message: str,
    type: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
    event_id: str | None = None,
) -> dict:
    """OpenAI's `error` event; `event_id` inside names the client event that caused it."""
    return server_event(
        "error", error={"type": type, "code": code, "message": message, "param": param, "event_id": event_id}
    )


__all__ = [
    "INCLUDABLE",
    "LOGPROBS",
    "RATES",
    "WORDS",
    "SHAPES",
    "ProtocolError",
    "SessionConfig",
    "TurnDetection",
    "error_event",
    "new_id",
    "server_event",
    "updated_config",
]
