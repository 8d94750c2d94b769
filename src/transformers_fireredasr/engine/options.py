"""One set of options for every entry point: how a model is loaded and how audio is transcribed.

The CLI's flags, a server request's fields, an archive run's settings and the pipeline's arguments all become these
two dataclasses, whose constructors check every value once. So a bad value gets the same message wherever it was
given, and an unknown name (a typo) is refused with the closest known one.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from ..hotwords import DEFAULT_HOTWORD_SCORE, Hotword, parse_hotwords
from ..quantization import QUANTIZE_MODES as _QUANTIZERS

DTYPES = ("float32", "float16", "bfloat16")
QUANTIZE_MODES = tuple(_QUANTIZERS)
SEGMENTATIONS = ("auto", "vad", "fixed")
# `vad_model`'s name for the default segmenter
SILERO = "silero"
TIMESTAMPS = ("segment", "word", "char")
# What `return_timestamps` (the pipeline's name, after Whisper's) means in `timestamps`.
RETURN_TIMESTAMPS = {None: None, False: None, True: "segment", "segment": "segment", "word": "word", "char": "char"}


class OptionError(ValueError):
    """An option with an unknown name or a bad value; the message names the option and what it accepts, and
    `option` is its name (a server answers with it as the faulty parameter)."""

    def __init__(self, message: str, option: str | None = None):
        super().__init__(message)
        self.option = option


def _positive_seconds(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise OptionError(f"{name} must be a positive number of seconds, got {value!r}", name)
    return float(value)


def _choice(name: str, value: Any, choices: tuple, allow_none: bool = False) -> Any:
    if (value is None and allow_none) or (isinstance(value, str) and value in choices):
        return value
    listed = ", ".join(repr(choice) for choice in choices)
    raise OptionError(f"{name} must be one of {listed}{' or None' if allow_none else ''}, got {value!r}", name)


def _unknown(name: str, known: list[str], kind: str) -> OptionError:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"
    return OptionError(f"unknown {kind + ' ' if kind else ''}option {name!r}{hint}", name)


class _FromMapping:
    """`from_mapping`: the dataclass from a settings mapping, refusing names it does not know."""

    KIND = ""  # "load": "unknown load option ..."

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]):
        known = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        for name in values:
            if name not in known:
                raise _unknown(name, known, cls.KIND)
        return cls(**values)


@dataclass(frozen=True)
class LoadOptions(_FromMapping):
    """How a model is loaded.

    device: "auto" (the first GPU when there is one, else the CPU), "cpu", "cuda", "cuda:1", ...
    dtype: "float32", "float16" or "bfloat16".
    quantize: a CPU int8 mode through torchao (`quantization.py`): "int8-weight", "int8-dynamic", "int8-mixed".
    compile: compile the decoding steps (`compiled_decoding.py`); fp32 transcripts are unchanged.
    punctuation: a punctuation model (a folder or Hub id, converted or an original FireRedPunc release), loaded once;
    every result then gets punctuated text and timed `sentences` (`engine/punctuation.py`). None: no punctuation.
    lid_model: a FireRedLID language model (a folder or Hub id, converted or an original release), loaded once; every
    result, segment and sentence then gets a `language` and a `language_confidence` (`engine/language.py`).
    vad_model: the segmenter: None (or "silero") for silero-vad, else a FireRedVAD model (a folder or Hub id, converted
    or an original release), loaded once. With its audio-event variant every result carries `events`, and
    `skip_music` drops the segments in which it hears no speech (`segmentation.firered_segments`).
    """

    KIND = "load"

    device: str = "auto"
    dtype: str = "float32"
    quantize: str | None = None
    compile: bool = False
    punctuation: str | None = None
    lid_model: str | None = None
    vad_model: str | None = None
    skip_music: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.device, str) or not self.device:
            raise OptionError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}", "device")
        _choice("dtype", self.dtype, DTYPES)
        _choice("quantize", self.quantize, QUANTIZE_MODES, allow_none=True)
        if self.device != "auto":
            self.check_device(self.device)
        if not isinstance(self.compile, bool):
            raise OptionError(f"compile must be true or false, got {self.compile!r}", "compile")
        if self.punctuation is not None and (not isinstance(self.punctuation, str) or not self.punctuation.strip()):
            raise OptionError(
                f"punctuation must name a model (a folder or Hub id), got {self.punctuation!r}", "punctuation"
            )
        if self.lid_model is not None and (not isinstance(self.lid_model, str) or not self.lid_model.strip()):
            raise OptionError(f"lid_model must name a model (a folder or Hub id), got {self.lid_model!r}", "lid_model")

        if self.vad_model is not None and (not isinstance(self.vad_model, str) or not self.vad_model.strip()):
            raise OptionError(
                f"vad_model must name a FireRedVAD model (a folder or Hub id) or 'silero', got {self.vad_model!r}",
                "vad_model",
            )
        if self.vad_model == SILERO:
            object.__setattr__(self, "vad_model", None)
        if not isinstance(self.skip_music, bool):
            raise OptionError(f"skip_music must be true or false, got {self.skip_music!r}", "skip_music")
        if self.skip_music and self.vad_model is None:
            raise OptionError(
                "skip_music needs vad_model: FireRedVAD's audio-event variant (AED) tells speech from music",
                "skip_music",
            )

    def resolved_device(self) -> str:
        """`device` with "auto" made concrete."""
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def check_device(self, device: str) -> None:
        """Raises OptionError when the options cannot run on `device` (int8 quantization is a CPU mode)."""
        if self.quantize is not None and not device.startswith("cpu"):
            raise OptionError(
                f"quantize={self.quantize!r} is a CPU mode (torchao int8), and the device is {device!r}: "
                "on a GPU use dtype='bfloat16'",
                "quantize",
            )


@dataclass(frozen=True)
class TranscribeOptions(_FromMapping):
    """How audio is transcribed.

    Decoding: `num_beams` (None: the model's generation config), `temperature` (0: the model's own search; above 0
    samples one hypothesis at that temperature), `hotwords` (phrases, or `(phrase, score)` pairs, that decoding is
    biased towards) with `hotword_score` (the bonus of phrases given without one).
    Segmentation: audio longer than `max_segment_seconds` (None: the model's limit) is cut into speech segments
    with `segmentation` ("auto": silero-vad when installed, else fixed-size chunks; "vad"; "fixed"), and
    `merge_segments_seconds` joins neighbouring segments into pieces of up to that many seconds. `split_at_pauses`
    cuts audio within the limit too: None (the default) does so when segment timestamps are asked for.
    Timestamps: None, "segment" (one time span per decoded piece), "word" or "char" (each word or token, timed by
    the CTC head; these never change the text). `generate_kwargs` go to `generate` as they are.
    """

    num_beams: int | None = None
    temperature: float = 0.0
    hotwords: tuple[Hotword, ...] = ()
    hotword_score: float | None = None
    max_segment_seconds: float | None = None
    merge_segments_seconds: float | None = None
    segmentation: str = "auto"
    split_at_pauses: bool | None = None
    timestamps: str | None = None
    # Compared, but not hashed: options are the key that decides which requests may share a batch.
    generate_kwargs: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.num_beams is not None and (
            isinstance(self.num_beams, bool) or not isinstance(self.num_beams, int) or self.num_beams < 1
        ):
            raise OptionError(f"num_beams must be a positive integer, got {self.num_beams!r}", "num_beams")
        if (
            isinstance(self.temperature, bool)
            or not isinstance(self.temperature, numbers.Real)
            or not math.isfinite(self.temperature)
            or self.temperature < 0
        ):
            raise OptionError(f"temperature must be a number >= 0, got {self.temperature!r}", "temperature")
        if self.temperature > 0 and (self.num_beams or 1) > 1:
            raise OptionError(
                f"temperature > 0 samples one hypothesis: num_beams must be 1, got {self.num_beams}", "num_beams"
            )
        if self.hotword_score is not None:
            score = self.hotword_score
            if (
                isinstance(score, bool)
                or not isinstance(score, numbers.Real)
                or not math.isfinite(score)
                or score <= 0
            ):
                raise OptionError(f"hotword_score must be a positive number, got {score!r}", "hotword_score")
            if not self.hotwords:
                raise OptionError("hotword_score was given without hotwords", "hotword_score")
        default_score = DEFAULT_HOTWORD_SCORE if self.hotword_score is None else float(self.hotword_score)
        try:
            hotwords = tuple(parse_hotwords(self.hotwords or (), default_score))
        except ValueError as error:
            raise OptionError(f"hotwords: {error}", "hotwords") from None
        object.__setattr__(self, "hotwords", hotwords)
        object.__setattr__(
            self, "max_segment_seconds", _positive_seconds("max_segment_seconds", self.max_segment_seconds)
        )
        object.__setattr__(
            self, "merge_segments_seconds", _positive_seconds("merge_segments_seconds", self.merge_segments_seconds)
        )
        _choice("segmentation", self.segmentation, SEGMENTATIONS)
        if self.split_at_pauses not in (None, True, False):
            raise OptionError(
                f"split_at_pauses must be true, false or None, got {self.split_at_pauses!r}", "split_at_pauses"
            )
        _choice("timestamps", self.timestamps, TIMESTAMPS, allow_none=True)
        if self.timestamps in ("word", "char") and self.temperature > 0:
            raise OptionError("word timestamps need temperature 0 (the model's own search)", "timestamps")
        if not isinstance(self.generate_kwargs, Mapping):
            raise OptionError(f"generate_kwargs must be a mapping, got {self.generate_kwargs!r}", "generate_kwargs")

    @property
    def word_times(self) -> bool:
        """Whether words (or tokens) are timed."""
        return self.timestamps in ("word", "char")

    def splits(self, seconds: float, limit: float) -> bool:
        """Whether audio of `seconds` is cut into segments (at pauses) rather than decoded whole."""
        if seconds > limit:
            return True
        return self.timestamps == "segment" if self.split_at_pauses is None else self.split_at_pauses


def timestamps_option(return_timestamps: Any) -> str | None:
    """The pipeline's `return_timestamps` (True, "segment", "word", "char", False or None) as `timestamps`."""
    if not isinstance(return_timestamps, (bool, str, type(None))) or return_timestamps not in RETURN_TIMESTAMPS:
        raise OptionError(
            f"return_timestamps must be True (or 'segment') for segment times, 'word' or 'char', got "
            f"{return_timestamps!r}",
            "return_timestamps",
        )
    return RETURN_TIMESTAMPS[return_timestamps]


__all__ = [
    "DTYPES",
    "QUANTIZE_MODES",
    "SEGMENTATIONS",
    "TIMESTAMPS",
    "LoadOptions",
    "OptionError",
    "TranscribeOptions",
    "timestamps_option",
]
