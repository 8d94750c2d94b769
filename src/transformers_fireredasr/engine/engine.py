"""`Engine`: a loaded FireRedASR model and its processor, turning audio into results for every entry point.

Three stages, so that entry points differ only in how they gather inputs and write outputs:
- `prepare(audio)`: one input -> its segments with features (`prepare.py`);
- `decode(segments)`: segments from any inputs -> their texts in one batched `generate` (`decode.py`);
- `assemble(prepared, results)`: one input's result (`assemble.py`);
then, with a punctuation model (`LoadOptions.punctuation`), the results finished together are punctuated in one
batched pass (`punctuation.py`), and with a language model (`LoadOptions.lid_model`) their segments and sentences are
tagged with languages in one batched pass (`language.py`); a language model whose encoder is the transcription
model's is instead run in `decode`, on the same encoder pass.

`transcribe` runs the three for one input; `transcribe_many` pools the segments of many inputs into length-sorted
decoding batches and yields each input's result as soon as its last segment is decoded. The pipeline, the CLI,
archive runs, the Ray recipe and the server all go through these, with one set of options (`options.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..length_batches import plan_batches
from ..word_timing import can_time_words
from .assemble import assemble, pieces
from .batches import each_or_error
from .decode import SegmentResult, decode_segments
from .language import identify_results, shares_encoder_pass, tag_pieces
from .options import LoadOptions, OptionError, TranscribeOptions
from .prepare import Prepared, Segment, prepare
from .punctuation import punctuate_results
from .variants import is_fireredasr, max_segment_seconds, spells_hotwords_in_tokens


@dataclass(frozen=True)
class Outcome:
    """One input of `transcribe_many`: its key, its result (None when it failed), its duration, its error, and its
    decoded pieces as chunks (whatever timestamps were asked for: archive records keep them)."""

    key: Any
    result: dict | None
    duration: float
    error: str | None = None
    pieces: list[dict] = field(default_factory=list)


def _message(error: BaseException) -> str:
    return str(error) or type(error).__name__


class Engine:
    """A FireRedASR model (AED or LLM) with its feature extractor and tokenizer."""

    def __init__(
        self,
        model,
        feature_extractor,
        tokenizer,
        generate_defaults: Mapping[str, Any] | None = None,
        punctuator=None,
        language_identifier=None,
        vad=None,
        skip_music: bool = False,
    ):
        if not is_fireredasr(model.config):
            raise ValueError(f"not a FireRedASR model (model_type {model.config.model_type!r})")
        from ..speed_paths import apply_speed_paths

        self.model = apply_speed_paths(model).eval()
        self.feature_extractor = feature_extractor
        self.tokenizer = tokenizer
        self.max_segment_seconds = max_segment_seconds(model.config)
        # Given to every `generate` call before the options' own settings: compiled decoding, encoder sub-batches.
        self.generate_defaults = dict(generate_defaults or {})
        # A `punctuation.Punctuator`, or None: results then keep the model's unpunctuated text.
        self.punctuator = punctuator
        # A `language_identification.LanguageIdentifier`, or None: results then carry no languages.
        self.language_identifier = language_identifier
        # Whether it shares the model's encoder pass (checked once): `decode` then identifies the segments too.
        self.shares_encoder = language_identifier is not None and shares_encoder_pass(
            self.model, feature_extractor, language_identifier
        )
        # A `vad.FireRedVadDetector` that segments instead of silero-vad, or None; `skip_music` drops the segments its
        # audio-event variant hears no speech in.
        if skip_music and (vad is None or not vad.is_event_model):
            raise OptionError(
                "skip_music needs vad_model to be FireRedVAD's audio-event variant (AED), which tells speech from music",
                "skip_music",
            )
        self.vad = vad
        self.skip_music = skip_music

    @classmethod
    def from_pretrained(cls, name_or_path: str, load: LoadOptions | Mapping[str, Any] | None = None) -> Engine:
        """Loads a model folder or Hub id, converted or an original release (converted once, `resolve_model`), as
        `load` says: device, dtype, int8 quantization, compiled decoding."""
        import torch
        from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor

        from ..conversion.resolve import resolve_model
        from ..quantization import check_quantized, quantization_config

        if not isinstance(load, LoadOptions):
            load = LoadOptions.from_mapping(load or {})
        device = load.resolved_device()
        load.check_device(device)
        path = resolve_model(str(name_or_path))
        model_kwargs: dict[str, Any] = {"dtype": getattr(torch, load.dtype)}
        if load.quantize is not None:
            model_kwargs["quantization_config"] = quantization_config(load.quantize)
        defaults: dict[str, Any] = {}
        if load.compile:
            from ..compiled_decoding import compiled_decoding_kwargs, compiled_decoding_load_kwargs

            model_kwargs.update(compiled_decoding_load_kwargs(device))
            defaults.update(compiled_decoding_kwargs(device))
        model = AutoModelForSpeechSeq2Seq.from_pretrained(path, **model_kwargs).to(device)
        check_quantized(model, load.quantize)
        processor = AutoProcessor.from_pretrained(path)
        punctuator = None
        if load.punctuation is not None:
            from ..punctuation import Punctuator

            punctuator = Punctuator.from_pretrained(load.punctuation, device=device)
        identifier = None
        if load.lid_model is not None:
            from ..language_identification import LanguageIdentifier

            identifier = LanguageIdentifier.from_pretrained(load.lid_model, device=device, dtype=model_kwargs["dtype"])
        vad = None
        if load.vad_model is not None:
            from ..vad import FireRedVadDetector

            vad = FireRedVadDetector.from_pretrained(load.vad_model, device=device)
        return cls(
            model,
            processor.feature_extractor,
            processor.tokenizer,
            defaults,
            punctuator,
            identifier,
            vad=vad,
            skip_music=load.skip_music,
        )

    @property
    def times_words(self) -> bool:
        """Whether this model gives word timestamps (an AED with a CTC head)."""
        return can_time_words(self.model)

    def check(self, options: TranscribeOptions) -> None:
        """Raises OptionError when this model cannot follow `options`: word timestamps without a CTC head, or a
        hotword the AED's vocabulary cannot spell. Entry points check before queueing work."""
        if options.word_times and not self.times_words:
            raise OptionError(
                f"timestamps={options.timestamps!r} times words by CTC forced alignment, and this model has no CTC "
                f"head ({type(self.model).__name__}; FireRedASR2-AED and the bundled demo have one): use "
                "timestamps='segment'",
                "timestamps",
            )
        if options.hotwords and spells_hotwords_in_tokens(self.model.config):
            from ..hotwords import token_tries

            try:
                token_tries([list(options.hotwords)], self.tokenizer)
            except ValueError as error:
                raise OptionError(f"hotwords: {error}", "hotwords") from None

    def prepare(self, audio, options: TranscribeOptions) -> Prepared:
        """One input (a path, bytes, an array, an audio dict) -> its segments with features."""
        return prepare(audio, self.feature_extractor, options, self.max_segment_seconds, self.vad, self.skip_music)

    def decode(
        self,
        segments: Sequence[Segment],
        options: TranscribeOptions,
        progress: Callable[[float], None] | None = None,
        language_identifier=None,
    ) -> list[SegmentResult]:
        """Segments from any inputs, decoded together with `options`; results in the order given, with their languages
        when a language model shares the encoder pass: `language_identifier`, one that does
        (`language.shares_encoder_pass`; the pipeline checks its `lid_model=` once), else the engine's own when it
        does."""
        identifier = language_identifier
        if identifier is None and self.shares_encoder:
            identifier = self.language_identifier
        return decode_segments(
            self.model,
            self.feature_extractor,
            self.tokenizer,
            segments,
            options,
            self.generate_defaults,
            progress,
            identifier=identifier,
        )

    def decode_each(
        self, segments: Sequence[Segment], options: TranscribeOptions, progress: Callable[[float], None] | None = None
    ) -> list[SegmentResult | Exception]:
        """`decode`, retried segment by segment when the batch fails: an exception takes a failed segment's place."""
        return each_or_error(lambda batch: self.decode(batch, options, progress), segments)

    def assemble(self, prepared: Prepared, results: Sequence[SegmentResult], options: TranscribeOptions) -> dict:
        """One input's result from its segments' results."""
        return assemble(prepared, results, options)

    def punctuate(
        self, finished: Sequence[tuple[Prepared, Sequence[SegmentResult], dict]], options: TranscribeOptions
    ) -> None:
        """Punctuates assembled results in place, all in one batched pass, when the engine has a punctuation model:
        `(input, its segment results, its result)` each (see `engine/punctuation.py`)."""
        if self.punctuator is not None:
            punctuate_results(self.punctuator, finished, options)

    def identify_languages(
        self, finished: Sequence[tuple[Prepared, Sequence[SegmentResult], dict]], options: TranscribeOptions
    ) -> list[list]:
        """Tags assembled results with languages in place, all in one batched pass, when the engine has a language
        model; returns each input's segment languages (`language_identification.Language`, None for a segment
        without text; no list without a language model). See `engine/language.py`."""
        if self.language_identifier is None:
            return []
        return identify_results(self.language_identifier, finished, options, self.feature_extractor)

    def transcribe(self, audio, options: TranscribeOptions | None = None, **option_values: Any) -> dict:
        """One input's result: `{"text", "confidence", "chunks", "segments"}` as the pipeline returns it. Options
        come as `options` or as keyword arguments (`timestamps="word"`, `hotwords=[...]`, ...)."""
        if options is None:
            options = TranscribeOptions.from_mapping(option_values)
        elif option_values:
            raise TypeError("pass either options or option keyword arguments, not both")
        self.check(options)
        prepared = self.prepare(audio, options)
        results = self.decode(prepared.segments, options)
        output = self.assemble(prepared, results, options)
        self.punctuate([(prepared, results, output)], options)
        self.identify_languages([(prepared, results, output)], options)
        return output

    def transcribe_many(
        self,
        inputs: Iterable[tuple[Any, Any]],
        options: TranscribeOptions,
        *,
        batch_size: int | None = None,
        batch_seconds: float | None = None,
        pool_inputs: int | None = None,
        pool_seconds: float | None = None,
        progress: Callable[[float], None] | None = None,
    ) -> Iterator[Outcome]:
        """Transcribes `(key, audio)` pairs, yielding each input's `Outcome` once its last segment is decoded.

        `audio` may also be a `Prepared` (prepared elsewhere, e.g. in DataLoader workers) or an exception (the input
        could not be read). Segments of several inputs are pooled until the pool holds `pool_inputs` inputs or
        `pool_seconds` of audio (None: no such limit; without both, one pool), then sorted by length and decoded in
        batches of at most `batch_size` segments and `batch_seconds` padded seconds. A bad input, or a segment
        that cannot be decoded, fails alone.
        """
        self.check(options)
        pool: list[tuple[int, Segment]] = []
        states: dict[int, dict] = {}
        pooled_seconds = 0.0
        for number, (key, audio) in enumerate(inputs):
            try:
                if isinstance(audio, BaseException):
                    raise audio
                prepared = audio if isinstance(audio, Prepared) else self.prepare(audio, options)
            except Exception as error:
                yield Outcome(key, None, 0.0, _message(error))
                continue
            if not prepared.segments:
                output = self.assemble(prepared, [], options)
                self.punctuate([(prepared, [], output)], options)
                self.identify_languages([(prepared, [], output)], options)
                yield Outcome(key, output, prepared.duration)
                continue
            states[number] = {"key": key, "prepared": prepared, "results": {}, "error": None}
            pool += [(number, segment) for segment in prepared.segments]
            pooled_seconds += sum(segment.seconds for segment in prepared.segments)
            inputs_full = pool_inputs is not None and len(states) >= pool_inputs
            seconds_full = pool_seconds is not None and pooled_seconds >= pool_seconds
            if inputs_full or seconds_full:
                yield from self._decode_pool(pool, states, options, batch_size, batch_seconds, progress)
                pool, pooled_seconds = [], 0.0
        yield from self._decode_pool(pool, states, options, batch_size, batch_seconds, progress)

    def _decode_pool(self, pool, states, options, batch_size, batch_seconds, progress) -> Iterator[Outcome]:
        for batch in plan_batches([segment.seconds for _, segment in pool], batch_seconds, batch_size):
            members = [pool[i] for i in batch]
            outcomes = self.decode_each([segment for _, segment in members], options, progress)
            for (number, segment), outcome in zip(members, outcomes, strict=True):
                state = states[number]
                if isinstance(outcome, Exception):
                    state["error"] = state["error"] or f"transcription failed ({_message(outcome)})"
                state["results"][segment.index] = outcome
            finished = []
            for number in dict.fromkeys(number for number, _ in members):
                state = states[number]
                if len(state["results"]) < len(state["prepared"].segments):
                    continue
                del states[number]
                finished.append((state, self._finish(state, options)))
            yield from self._identified(finished, self._punctuated(finished, options), options)

    def _punctuated(self, finished: list[tuple[dict, Outcome]], options: TranscribeOptions) -> list[Outcome]:
        """The outcomes of the inputs finished by one decoding batch, their results punctuated together; when that
        pass fails, each input is punctuated alone, so only an input that cannot be punctuated fails."""
        done = [(state, outcome) for state, outcome in finished if outcome.result is not None]
        items = [
            (state["prepared"], [state["results"][s.index] for s in state["prepared"].segments], outcome.result)
            for state, outcome in done
        ]
        errors = {
            id(outcome): error
            for (_, outcome), error in zip(done, each_or_error(self._punctuate_batch(options), items), strict=True)
            if isinstance(error, Exception)
        }
        return [
            Outcome(o.key, None, o.duration, f"punctuation failed ({_message(errors[id(o)])})")
            if id(o) in errors
            else o
            for _, o in finished
        ]

    def _identified(
        self, finished: list[tuple[dict, Outcome]], outcomes: list[Outcome], options: TranscribeOptions
    ) -> list[Outcome]:
        """`outcomes` (of `finished`) with languages, the inputs of one decoding batch identified together; when that
        pass fails, each input alone, so only an input the language model fails on fails."""
        if self.language_identifier is None:
            return outcomes
        done = [(state, o) for (state, _), o in zip(finished, outcomes, strict=True) if o.result is not None]
        items = [
            (state["prepared"], [state["results"][s.index] for s in state["prepared"].segments], outcome.result)
            for state, outcome in done
        ]
        errors = {}
        for (_, outcome), languages in zip(
            done, each_or_error(lambda batch: self.identify_languages(batch, options), items), strict=True
        ):
            if isinstance(languages, Exception):
                errors[id(outcome)] = languages
            else:
                tag_pieces(outcome.pieces, languages)  # the pieces archive records keep
        return [
            Outcome(o.key, None, o.duration, f"language identification failed ({_message(errors[id(o)])})")
            if id(o) in errors
            else o
            for o in outcomes
        ]

    def _punctuate_batch(self, options: TranscribeOptions) -> Callable[[Sequence], list[None]]:
        """`punctuate` as a batch function for `each_or_error`: one None per punctuated item."""

        def run(items: Sequence) -> list[None]:
            self.punctuate(items, options)
            return [None] * len(items)

        return run

    def _finish(self, state: dict, options: TranscribeOptions) -> Outcome:
        prepared = state["prepared"]
        if state["error"] is not None:
            return Outcome(state["key"], None, prepared.duration, state["error"])
        results = [state["results"][segment.index] for segment in prepared.segments]
        try:
            result = self.assemble(prepared, results, options)
            return Outcome(state["key"], result, prepared.duration, pieces=pieces(prepared, results))
        except Exception as error:
            return Outcome(state["key"], None, prepared.duration, f"assembling failed ({_message(error)})")


__all__ = ["Engine", "Outcome"]
