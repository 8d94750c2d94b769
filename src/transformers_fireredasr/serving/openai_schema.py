"""Request and response shapes of OpenAI's `/v1/audio/transcriptions` and `/v1/models`, and its error bodies.

The form is a pydantic model that forbids unknown fields: a typo (`respons_format`) or a field this server does not
support is a 400 naming it, never silently ignored. Responses follow OpenAI's: json `{"text"}`, verbose_json with
`duration`, `language` and `segments` (each with its start and end; `confidence` is this server's addition, present
when the decoding reports it), and `words` with `timestamp_granularities[]=word` (each with its `confidence`).
With a language model (`--lid-model`), verbose_json's `language` is the identified label of most of the speech
(FireRedLID's, such as `zh mandarin`), and `language_confidence`, each segment's and each sentence's `language` and
`language_confidence` are this server's additions.

`hotwords` (with `hotword_score`) is this server's addition, the phrases to bias decoding towards: repeated fields
(`hotwords[]`, as the openai client sends `extra_body={"hotwords": [...]}`, or `hotwords`), each a phrase or
several lines of them, each line `phrase` or `phrase:score` as in `fireredasr-transcribe --hotwords FILE`.
"""

from __future__ import annotations

from typing import Literal

from fastapi import UploadFile
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

ResponseFormat = Literal["json", "text", "srt", "vtt", "verbose_json"]
LANGUAGES = {"zh": "chinese", "en": "english"}

# OpenAI fields this server knows but does not support, with the reason given in the 400.
UNSUPPORTED_FIELDS = {
    "prompt": "FireRedASR models take no text prompt",
    "keywords": "pass the phrases as `hotwords` (one per field or line, `phrase:score` for its own score)",
    "chunking_strategy": "the server always cuts audio into speech segments with silero-vad, as the pipeline does",
    "include": "token log-probabilities are not returned; verbose_json carries a segment's confidence when known",
    "languages": "pass one `language` (zh or en)",
    "known_speaker_names": "speaker diarization is not supported",
    "known_speaker_references": "speaker diarization is not supported",
}


class TranscriptionForm(BaseModel):
    """The multipart form of `POST /v1/audio/transcriptions`."""

    model_config = ConfigDict(extra="forbid")

    file: UploadFile
    model: str
    response_format: ResponseFormat = "json"
    timestamp_granularities: list[Literal["segment", "word"]] = Field(
        default_factory=list, alias="timestamp_granularities[]"
    )
    language: str | None = None
    stream: bool = False
    # The engine's options (`engine/options.py`), under its names; it checks their values, with the messages every
    # entry point gives. OpenAI's `temperature` is one of them.
    temperature: float = Field(default=0.0, le=1.0)
    hotwords: list[str] = Field(default_factory=list, validation_alias=AliasChoices("hotwords[]", "hotwords"))
    hotword_score: float | None = None
    num_beams: int | None = None
    max_segment_seconds: float | None = None
    merge_segments_seconds: float | None = None
    segmentation: str | None = None

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str | None) -> str | None:
        if value is not None and value.lower() not in LANGUAGES:
            raise ValueError(
                f"language {value!r} is not supported: FireRedASR transcribes Mandarin Chinese and English; "
                "pass 'zh' or 'en', or leave it out"
            )
        return None if value is None else value.lower()


class TranscriptionSegment(BaseModel):
    """One speech segment of a verbose_json response (OpenAI's fields this model can fill, plus `confidence`)."""

    id: int
    seek: int
    start: float
    end: float
    text: str
    tokens: list[int]
    temperature: float
    compression_ratio: float
    confidence: float | None = None
    language: str | None = None
    language_confidence: float | None = None


class TranscriptionWord(BaseModel):
    word: str
    start: float
    end: float
    confidence: float | None = None


class Transcription(BaseModel):
    text: str


class TranscriptionEvent(BaseModel):
    event: Literal["speech", "singing", "music"]
    start: float
    end: float


class TranscriptionSentence(BaseModel):
    id: int
    start: float
    end: float
    text: str
    language: str | None = None
    language_confidence: float | None = None


class TranscriptionVerbose(BaseModel):
    task: Literal["transcribe"] = "transcribe"
    language: str
    language_confidence: float | None = None  # with a language model: the confidence of `language`
    duration: float
    text: str
    segments: list[TranscriptionSegment]
    words: list[TranscriptionWord] | None = None
    # Not in OpenAI's schema: with a punctuation model, the punctuated transcript's timed sentences, and where
    # their times come from ("words" or "segments"). The segments keep the text as the model decoded it.
    sentences: list[TranscriptionSentence] | None = None
    sentence_timing: Literal["words", "segments"] | None = None
    # Not in OpenAI's schema: with FireRedVAD's audio-event variant as the segmenter, the recording's timed events.
    events: list[TranscriptionEvent] | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "transformers-fireredasr"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


def error_body(message: str, type: str, param: str | None = None, code: str | None = None) -> dict:
    """OpenAI's error shape: `{"error": {"message", "type", "param", "code"}}`."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def validation_message(errors: list[dict]) -> tuple[str, str | None]:
    """A readable message and the offending field for pydantic's errors on the form."""
    messages, param = [], None
    for error in errors:
        location = [part for part in error.get("loc", ()) if isinstance(part, str) and part != "body"]
        field_name = location[0] if location else None
        param = param or field_name
        if error["type"] == "extra_forbidden":
            reason = UNSUPPORTED_FIELDS.get(field_name or "")
            accepted = ", ".join(field.alias or name for name, field in TranscriptionForm.model_fields.items())
            detail = reason or f"unknown field (accepted: {accepted})"
            messages.append(f"{field_name}: {detail}")
        elif error["type"] == "missing":
            messages.append(f"{field_name}: this field is required")
        else:
            messages.append(f"{field_name}: {error['msg'].removeprefix('Value error, ')}")
    return "; ".join(messages), param


__all__ = [
    "LANGUAGES",
    "ModelCard",
    "ModelList",
    "ResponseFormat",
    "Transcription",
    "TranscriptionForm",
    "TranscriptionSegment",
    "TranscriptionVerbose",
    "TranscriptionWord",
    "error_body",
    "validation_message",
]
