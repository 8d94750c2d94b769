"""A request's upload -> the engine's prepared input, and a request's form -> the engine's options.

Uploads are decoded (any format ffmpeg reads) and checked against the server's length limit, then prepared by the
engine. Every request is cut at pauses (`split_at_pauses`), so every response format and the stream carry the same
text: the segment texts joined as the engine joins them. Segments of any requests with equal options are then
decoded together by the batcher (`Engine.decode_each`). With a punctuation model, a request's decoded segments are
assembled and punctuated by the engine (`punctuated`), and the response carries that text and its sentences. With a
language model, its segments (and sentences) are tagged with their languages (`identified`).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..audio_io import decode_bytes
from ..engine import Engine, Prepared, SegmentResult, TranscribeOptions


class AudioTooLong(ValueError):
    """The decoded audio is longer than the server accepts (answered with 413)."""


def request_options(**values) -> TranscribeOptions:
    """A request's options: the engine's, always cut at pauses and with the segments' times."""
    values.setdefault("timestamps", "segment")
    return TranscribeOptions(split_at_pauses=True, **values)


def prepare_upload(
    engine: Engine, data: bytes, name: str, max_audio_seconds: float, options: TranscribeOptions
) -> Prepared:
    """Decodes an upload, checks it and prepares it with the engine.

    Raises ValueError naming `name` for empty, undecodable, NaN/inf or too short audio, and AudioTooLong.
    """
    rate = engine.feature_extractor.sampling_rate
    audio = decode_bytes(data, rate, name=name)
    duration = len(audio) / rate
    if duration > max_audio_seconds:
        raise AudioTooLong(
            f"{name}: {duration:.1f} s of audio, more than this server's limit of {max_audio_seconds:g} s"
        )
    try:
        return engine.prepare(audio, options)
    except ValueError as error:
        raise ValueError(f"{name}: {error}") from None


def punctuated(
    engine: Engine, prepared: Prepared, results: Sequence[SegmentResult], options: TranscribeOptions
) -> dict | None:
    """The request's result punctuated by the engine's punctuation model (`text`, `sentences`, ...), or None when
    the server has none."""
    if engine.punctuator is None:
        return None
    output = engine.assemble(prepared, results, options)
    engine.punctuate([(prepared, results, output)], options)
    return output


def identified(
    engine: Engine,
    prepared: Prepared,
    results: Sequence[SegmentResult],
    options: TranscribeOptions,
    output: dict | None,
) -> list | None:
    """Each decoded segment's language by the engine's language model (`Language`, None for a segment without text),
    the punctuated result `output`'s sentences tagged in place; None when the server has no language model."""
    if engine.language_identifier is None:
        return None
    output = output if output is not None else engine.assemble(prepared, results, options)
    return engine.identify_languages([(prepared, results, output)], options)[0]


__all__ = ["AudioTooLong", "identified", "prepare_upload", "punctuated", "request_options"]
