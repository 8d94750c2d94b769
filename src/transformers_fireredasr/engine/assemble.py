"""The engine's third stage: one input's segment results -> its result, shaped as the ASR pipeline returns it.

`{"text", "confidence", "chunks", "segments"}`: the text joins the segment texts in time order; `confidence` is the
mean output-token probability over the whole input; with segment timestamps `chunks` holds one
`{"text", "timestamp": (start_s, end_s)}` per decoded piece, and with word timestamps `chunks` holds the words and
`segments` the pieces (subtitle cues are cut from both).
"""

from __future__ import annotations

from collections.abc import Sequence

from transformers.utils import logging

from .decode import SegmentResult
from .options import TranscribeOptions
from .prepare import Prepared

logger = logging.get_logger(__name__)


def join_segment_texts(texts: Sequence[str]) -> str:
    """Joins segment transcripts: nothing between Chinese characters, one space where a word of Latin script meets
    another (FireRedASR transcripts carry no leading spaces, unlike Whisper's)."""
    joined = ""
    for text in (t.strip() for t in texts):
        if not text:
            continue
        if joined and (joined[-1].isascii() and joined[-1].isalnum()) and (text[0].isascii() and text[0].isalnum()):
            joined += " "
        joined += text
    return joined


def pieces(prepared: Prepared, results: Sequence[SegmentResult]) -> list[dict]:
    """The decoded pieces with text, as Whisper-style chunks `{"text", "timestamp": (start_s, end_s)}`."""
    return [
        {"text": result.text.strip(), "timestamp": (round(segment.start, 3), round(segment.end, 3))}
        for segment, result in zip(prepared.segments, results, strict=True)
        if result.text.strip()
    ]


def assemble(prepared: Prepared, results: Sequence[SegmentResult], options: TranscribeOptions) -> dict:
    """The result of one input from its segments' results (in the segments' order)."""
    if len(results) != len(prepared.segments):
        raise ValueError(f"{len(results)} results for {len(prepared.segments)} segments")
    texts = [result.text for result in results]
    # One segment keeps its text exactly as decoded, as the stock pipeline returns it.
    output: dict = {"text": texts[0] if len(texts) == 1 else join_segment_texts(texts)}
    probabilities = [p for result in results for p in result.probabilities]
    if probabilities:
        output["confidence"] = round(sum(probabilities) / len(probabilities), 4)
    if options.timestamps == "segment":
        output["chunks"] = pieces(prepared, results)
    elif options.word_times:
        for segment, result in zip(prepared.segments, results, strict=True):
            if not result.aligned:
                logger.warning(
                    "segment %.2f-%.2f s: the hypothesis has more tokens than the CTC frames can hold, so it cannot "
                    "be aligned; its token times are spread evenly over the segment",
                    segment.start,
                    segment.end,
                )
        output["chunks"] = [word for result in results for word in result.words or []]
        output["segments"] = pieces(prepared, results)
    if prepared.events is not None:  # FireRedVAD's audio-event variant: speech, singing and music, timed
        output["events"] = prepared.events
    return output


__all__ = ["assemble", "join_segment_texts", "pieces"]
