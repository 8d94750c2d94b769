"""The engine's options as command-line flags, shared by `fireredasr-transcribe` and `fireredasr-serve`: `--num-beams`
is `num_beams`, and so on. Values are checked by the options themselves (`engine/options.py`), so a bad one gets
the message every entry point gives.
"""

from __future__ import annotations

import argparse

from .demo_model import demo_punctuation_dir
from .engine import LoadOptions, OptionError

# `--punctuation` given without a model: the bundled one (a sentinel, so that no folder name is reserved).
_BUNDLED_PUNCTUATION = object()


def add_load_arguments(parser: argparse.ArgumentParser) -> None:
    """`LoadOptions` as flags."""
    group = parser.add_argument_group("loading")
    group.add_argument("--device", default="auto", help="auto (a GPU when there is one), cpu, cuda, cuda:1, ...")
    group.add_argument("--dtype", default="float32", help="float32 (default), float16 or bfloat16")
    group.add_argument(
        "--quantize",
        default=None,
        help="CPU int8 through torchao (the quantization extra): int8-weight = the decoder's weights in int8, "
        "int8-dynamic = int8 weights and activations everywhere, int8-mixed (AED only) = int8-dynamic's encoder "
        "with int8-weight's decoder",
    )
    group.add_argument(
        "--compile",
        action="store_true",
        help="compile the decoding steps (static cache; on the CPU eager attention, frozen weights and max-autotune): "
        "fp32 transcripts unchanged; each new batch shape compiles, so it pays for audio of few lengths",
    )
    group.add_argument(
        "--punctuation",
        nargs="?",
        const=_BUNDLED_PUNCTUATION,
        default=None,
        metavar="MODEL",
        help="a punctuation model (a FireRedPunc folder or Hub id, original or converted), loaded once: punctuated "
        "text and timed sentences in every result; the flag alone: the small punctuation model bundled in the package",
    )
    group.add_argument(
        "--lid-model",
        default=None,
        metavar="MODEL",
        help="a language model (a FireRedLID folder or Hub id, original or converted), loaded once: each result, "
        "segment and sentence gets its language and confidence",
    )
    group.add_argument(
        "--vad-model",
        default=None,
        metavar="MODEL",
        help="the segmenter: silero (default) or a FireRedVAD folder or Hub id (original or converted; "
        "FireRedTeam/FireRedVAD/AED is the audio-event variant, whose results also list speech, singing and music)",
    )
    group.add_argument(
        "--skip-music",
        action="store_true",
        help="with FireRedVAD's audio-event variant: skip the segments in which it hears no speech (singing or music)",
    )


def _punctuation_model(value: object) -> str | None:
    """`--punctuation`'s model: as given, or the bundled one for the flag alone."""
    if value is not _BUNDLED_PUNCTUATION:
        return value  # type: ignore[return-value]
    try:
        return str(demo_punctuation_dir())
    except FileNotFoundError as error:
        raise OptionError(f"punctuation: {error}; name a model: --punctuation MODEL", "punctuation") from None


def load_options(options: argparse.Namespace) -> LoadOptions:
    """The load flags' `LoadOptions`; raises OptionError for a bad value."""
    return LoadOptions(
        device=options.device,
        dtype=options.dtype,
        quantize=options.quantize,
        compile=options.compile,
        punctuation=_punctuation_model(options.punctuation),
        lid_model=options.lid_model,
        vad_model=options.vad_model,
        skip_music=options.skip_music,
    )


def add_transcribe_arguments(parser: argparse.ArgumentParser) -> None:
    """`TranscribeOptions` as flags (how each entry point turns them into options is its own: see its `main`)."""
    group = parser.add_argument_group("decoding")
    group.add_argument("--num-beams", type=int, default=None, help="default: the model's generation config")
    group.add_argument(
        "--temperature", type=float, default=0.0, help="0 (default): the model's own search; above 0: sampling"
    )
    group.add_argument(
        "--hotwords",
        metavar="FILE",
        help="bias decoding towards these phrases (names, terms): one a line, with an optional ':score' suffix",
    )
    group.add_argument(
        "--hotword-score",
        type=float,
        default=None,
        help="bonus per matched token for phrases without their own score (default: 2.0)",
    )
    group.add_argument(
        "--timestamps",
        default="segment",
        help="jsonl: 'word' / 'char' add each word's (token's) start, end and confidence, timed by the model's CTC "
        "head (FireRedASR2-AED, the bundled demo); 'segment' (default): speech segments only",
    )
    group = parser.add_argument_group("segmentation")
    group.add_argument(
        "--max-segment-seconds",
        type=float,
        default=None,
        help="longest piece decoded at once (default: the model's limit)",
    )
    group.add_argument(
        "--merge-segments-seconds",
        type=float,
        default=None,
        metavar="S",
        help="join neighbouring speech segments (pauses included) into pieces of up to S seconds, capped at "
        "--max-segment-seconds: fewer, longer pieces and one srt/jsonl chunk per piece (default: one per pause)",
    )
    group.add_argument("--segmentation", default="auto", help="auto (silero-vad when installed), vad or fixed")


__all__ = ["add_load_arguments", "add_transcribe_arguments", "load_options"]
