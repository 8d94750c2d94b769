"""Punctuation of assembled results: the engine's optional punctuation model (`LoadOptions.punctuation`), run in one
batched pass over the segments of every input finished together.

Each result's `text` becomes the punctuated text, and it gets `sentences` (`[{"text", "start", "end"}]`, seconds) and
`sentence_timing`: "words" when the sentence times come from word timestamps (`timestamps="word"` or `"char"`), else
"segments" (shared out over each decoded segment). The rules are `punctuation.Punctuator`'s.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..punctuation import Punctuator, TimedSegment, TimedWord
from .decode import SegmentResult
from .options import TranscribeOptions
from .prepare import Prepared


def timed_segments(
    prepared: Prepared, results: Sequence[SegmentResult], options: TranscribeOptions
) -> list[TimedSegment]:
    """An input's decoded segments with text, with their timed words when `options` time words."""
    segments = []
    for segment, result in zip(prepared.segments, results, strict=True):
        text = result.text.strip()
        if not text:
            continue
        words = None
        if options.word_times:
            words = tuple(
                TimedWord(str(word["text"]).strip(), float(word["timestamp"][0]), float(word["timestamp"][1]))
                for word in result.words or []
            )
        segments.append(TimedSegment(text, segment.start, segment.end, words))
    return segments


def punctuate_results(
    punctuator: Punctuator,
    finished: Sequence[tuple[Prepared, Sequence[SegmentResult], dict]],
    options: TranscribeOptions,
) -> None:
    """Punctuates the assembled results of `finished` (input, its segment results, its result) in place."""
    if not finished:
        return
    transcripts = [timed_segments(prepared, results, options) for prepared, results, _ in finished]
    for (_, _, output), punctuated in zip(finished, punctuator.punctuate_segments(transcripts), strict=True):
        output["text"] = punctuated["text"]
        output["sentences"] = punctuated["sentences"]
        output["sentence_timing"] = punctuated["timing"]


__all__ = ["punctuate_results", "timed_segments"]
