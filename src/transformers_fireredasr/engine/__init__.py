"""The engine: one path from audio to results for the pipeline, the CLI, archive runs, the Ray recipe and the
server (see `engine.py` for its three stages, `options.py` for its one set of options)."""

from .assemble import join_segment_texts
from .decode import SegmentResult, transcript_text
from .engine import Engine, Outcome
from .options import LoadOptions, OptionError, TranscribeOptions, timestamps_option
from .prepare import Prepared, Segment
from .variants import MAX_SEGMENT_SECONDS, MIN_SEGMENT_SECONDS, is_fireredasr, max_segment_seconds

__all__ = [
    "MAX_SEGMENT_SECONDS",
    "MIN_SEGMENT_SECONDS",
    "Engine",
    "LoadOptions",
    "OptionError",
    "Outcome",
    "Prepared",
    "Segment",
    "SegmentResult",
    "TranscribeOptions",
    "is_fireredasr",
    "join_segment_texts",
    "max_segment_seconds",
    "timestamps_option",
    "transcript_text",
]
