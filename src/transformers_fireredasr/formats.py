"""Transcript writers shared by the command line and the server: plain text, SubRip (srt) and WebVTT (vtt).

Every writer takes the pipeline's chunk format, `[{"text": ..., "timestamp": (start_s, end_s)}, ...]`, in order.
Chunks without text are skipped: a subtitle cue with nothing to show is an error to most players.
"""

from __future__ import annotations

from collections.abc import Sequence


def _clock(seconds: float, separator: str) -> str:
    """`HH:MM:SS<separator>mmm`, rounded to the millisecond."""
    millis = max(round(seconds * 1000), 0)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def srt_timestamp(seconds: float) -> str:
    """`HH:MM:SS,mmm` as SubRip writes times."""
    return _clock(seconds, ",")


def vtt_timestamp(seconds: float) -> str:
    """`HH:MM:SS.mmm` as WebVTT writes times."""
    return _clock(seconds, ".")


def _cues(chunks: Sequence[dict]) -> list[tuple[float, float, str]]:
    """`(start, end, text)` of the chunks that have text, with newlines inside a text flattened to spaces."""
    cues = []
    for chunk in chunks:
        text = " ".join(chunk["text"].split())
        if text:
            start, end = chunk["timestamp"]
            cues.append((start, end, text))
    return cues


def to_srt(chunks: Sequence[dict]) -> str:
    """SubRip subtitles, one numbered cue per timestamped chunk."""
    return "\n".join(
        f"{number}\n{srt_timestamp(start)} --> {srt_timestamp(end)}\n{text}\n"
        for number, (start, end, text) in enumerate(_cues(chunks), start=1)
    )


def to_vtt(chunks: Sequence[dict]) -> str:
    """WebVTT subtitles: the `WEBVTT` header, then one cue per timestamped chunk."""
    cues = "".join(
        f"\n{vtt_timestamp(start)} --> {vtt_timestamp(end)}\n{text}\n" for start, end, text in _cues(chunks)
    )
    return "WEBVTT\n" + cues


def to_text(text: str) -> str:
    """The transcript as a text file: the text and one final newline."""
    return text.rstrip("\n") + "\n"


__all__ = ["srt_timestamp", "to_srt", "to_text", "to_vtt", "vtt_timestamp"]
