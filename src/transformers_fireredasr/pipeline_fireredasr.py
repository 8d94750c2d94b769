"""The ASR pipeline for FireRedASR models: transformers' `pipeline()` in front of the engine.

`pipeline("automatic-speech-recognition", model=<FireRedASR>)` builds this class (see `registration.py`); any other
model still gets the stock `AutomaticSpeechRecognitionPipeline`. Its steps are the engine's (`engine/`):
`preprocess` prepares one input into segments, `_forward` decodes a batch of segments (`batch_size` of them, from
any inputs of the call), and `postprocess` assembles one input's result. So the pipeline gives what every other entry
point gives for the same audio and options:

- audio longer than the model's limit (`config.max_segment_seconds`; `chunk_length_s` changes it) is cut into
  speech segments with silero-vad (fixed-size chunks without it), decoded in length-sorted batches and joined;
- `merge_segments_s=S` joins neighbouring speech segments (pauses included) into pieces of up to S seconds;
- `return_timestamps=True` returns Whisper-style `chunks`, one per speech segment (segments then follow pauses
  even in short audio); `"word"` (or `"char"`) times each word (token) on the CTC head, with its `confidence`, and
  `segments` holds the speech segments;
- every result of a search that scores its tokens has a `confidence`; silence gives an empty transcript;
- `hotwords=[...]` (with `hotword_score`) biases decoding towards phrases, on every segment of the call.

Audio within the limit and without segment timestamps is transcribed whole, exactly as the stock pipeline would.
"""

from __future__ import annotations

import dataclasses
import re

from transformers import AutomaticSpeechRecognitionPipeline

from .engine import Engine, OptionError, Prepared, TranscribeOptions, is_fireredasr, timestamps_option
from .engine.language import identify_results, shares_encoder_pass
from .engine.prepare import prepare
from .engine.punctuation import punctuate_results

OPTION_NAMES = [field.name for field in dataclasses.fields(TranscribeOptions)]
# The pipeline's names (transformers' and Whisper's) for the engine's options, named in its errors.
PIPELINE_NAMES = {"max_segment_seconds": "chunk_length_s", "merge_segments_seconds": "merge_segments_s"}


def is_fireredasr_model(model) -> bool:
    """Whether `model` (an instance, not a name) is a FireRedASR model this pipeline serves."""
    return is_fireredasr(getattr(model, "config", None))


def _pipeline_error(error: OptionError) -> OptionError:
    """The engine's message in the pipeline's names."""
    message = re.sub(r"(?<!_)timestamps='segment'", "return_timestamps=True", str(error))
    message = re.sub(r"(?<!_)timestamps=", "return_timestamps=", message)
    for engine_name, pipeline_name in PIPELINE_NAMES.items():
        message = message.replace(engine_name, pipeline_name)
    return OptionError(message, PIPELINE_NAMES.get(error.option, error.option))


class FireRedAsrPipeline(AutomaticSpeechRecognitionPipeline):
    """`AutomaticSpeechRecognitionPipeline` over the FireRedASR engine: long audio, timestamps, hotwords.

    `punctuation_model=` (a folder or Hub id, loaded once per pipeline, or a `punctuation.Punctuator`) punctuates each
    result and adds its timed `sentences` (see `engine/punctuation.py`).

    `lid_model=` (a FireRedLID folder or Hub id, loaded once per pipeline, or a
    `language_identification.LanguageIdentifier`) tags each result, segment chunk and sentence with its `language`
    and `language_confidence` (see `engine/language.py`); one whose encoder is this model's identifies on the same
    encoder pass.

    `vad_model=` (a FireRedVAD folder or Hub id, loaded once per pipeline, or a `vad.FireRedVadDetector`) segments with
    FireRedVAD instead of silero-vad; with its audio-event variant results carry `events`, and `skip_music=True` drops
    the segments without speech (see `segmentation.firered_segments`).
    """

    def __new__(cls, *args, **kwargs):
        # transformers has one pipeline class per task. This subclass replaces the task's class so that the usual
        # `pipeline("automatic-speech-recognition", ...)` call reaches it; for any other model it hands back the
        # stock pipeline, untouched.
        model = kwargs.get("model", args[0] if args else None)
        if cls is FireRedAsrPipeline and not is_fireredasr_model(model):
            return AutomaticSpeechRecognitionPipeline(*args, **kwargs)
        return super().__new__(cls)

    @property
    def engine(self) -> Engine:
        """The engine over this pipeline's model, feature extractor and tokenizer (made on first use: transformers'
        `__init__` already checks the call's parameters)."""
        if getattr(self, "_engine", None) is None or self._engine.model is not self.model:
            self._engine = Engine(self.model, self.feature_extractor, self.tokenizer)
        return self._engine

    def _sanitize_parameters(
        self,
        chunk_length_s: float | None = None,
        stride_length_s=None,
        return_timestamps: bool | str | None = None,
        segmentation: str | None = None,
        merge_segments_s: float | None = None,
        hotwords=None,
        hotword_score: float | None = None,
        punctuation_model=None,
        lid_model=None,
        vad_model=None,
        skip_music: bool | None = None,
        **kwargs,
    ):
        if stride_length_s is not None:
            raise ValueError("FireRedASR segments audio at pauses; `stride_length_s` is not used. Drop it.")
        preprocess_params, forward_params, postprocess_params = super()._sanitize_parameters(**kwargs)
        values = {
            "max_segment_seconds": chunk_length_s,
            "merge_segments_seconds": merge_segments_s,
            "segmentation": segmentation,
            "timestamps": timestamps_option(return_timestamps),
            "hotwords": hotwords,
            "hotword_score": hotword_score,
        }
        values = {name: value for name, value in values.items() if value is not None}
        self._options(values, check=True)  # checked now; each step builds them again from the values transformers
        # merged (the constructor's, then the call's), so that a constructor default works like the call argument
        for params in (preprocess_params, forward_params, postprocess_params):
            params.update(values)
        if punctuation_model is not None:
            postprocess_params["punctuation_model"] = punctuation_model
        if lid_model is not None:
            self._language_identifier(lid_model)  # loaded and checked now, once
            forward_params["lid_model"] = postprocess_params["lid_model"] = lid_model
        if skip_music and vad_model is None and "vad_model" not in getattr(self, "_preprocess_params", {}):
            raise ValueError("skip_music=True needs vad_model=: FireRedVAD's audio-event variant (AED)")
        if vad_model is not None:
            self._detector(vad_model, skip_music=bool(skip_music))  # loaded and checked now, once
            preprocess_params["vad_model"] = vad_model
        if skip_music is not None:
            preprocess_params["skip_music"] = bool(skip_music)
        return preprocess_params, forward_params, postprocess_params

    def _detector(self, vad_model, skip_music: bool = False):
        """`vad_model` (a `vad.FireRedVadDetector`, or a FireRedVAD folder or Hub id, loaded once per pipeline)."""
        from .vad import FireRedVadDetector

        detector = vad_model
        if not isinstance(vad_model, FireRedVadDetector):
            loaded = getattr(self, "_detectors", None)
            if loaded is None:
                loaded = self._detectors = {}
            if vad_model not in loaded:
                loaded[vad_model] = FireRedVadDetector.from_pretrained(vad_model, device=self.model.device)
            detector = loaded[vad_model]
        if skip_music and not detector.is_event_model:
            raise ValueError(
                "skip_music=True needs FireRedVAD's audio-event variant (AED), which tells speech from music"
            )
        return detector

    def _language_identifier(self, lid_model):
        """`lid_model` (a `LanguageIdentifier`, or a FireRedLID folder or Hub id, loaded once per pipeline)."""
        from .language_identification import LanguageIdentifier

        if isinstance(lid_model, LanguageIdentifier):
            return lid_model
        loaded = getattr(self, "_language_identifiers", None)
        if loaded is None:
            loaded = self._language_identifiers = {}
        if lid_model not in loaded:
            loaded[lid_model] = LanguageIdentifier.from_pretrained(
                lid_model, device=self.model.device, dtype=self.model.dtype
            )
        return loaded[lid_model]

    def _shared_identifier(self, lid_model):
        """`lid_model`'s language model when its encoder pass is this model's (`shares_encoder_pass`, checked once per
        language model and model), so that `_forward` identifies the segments on that pass; else None, and
        `postprocess` identifies them apart."""
        identifier = self._language_identifier(lid_model)
        checked = getattr(self, "_encoder_sharing", None)
        if checked is None:
            checked = self._encoder_sharing = {}
        key = (identifier, id(self.model))
        if key not in checked:
            checked[key] = shares_encoder_pass(self.engine.model, self.feature_extractor, identifier)
        return identifier if checked[key] else None

    def _punctuator(self, punctuation_model):
        """`punctuation_model` (a `Punctuator`, or a model folder or Hub id, loaded once per pipeline)."""
        from .punctuation import Punctuator

        if isinstance(punctuation_model, Punctuator):
            return punctuation_model
        loaded = getattr(self, "_punctuators", None)
        if loaded is None:
            loaded = self._punctuators = {}
        if punctuation_model not in loaded:
            loaded[punctuation_model] = Punctuator.from_pretrained(punctuation_model, device=self.model.device)
        return loaded[punctuation_model]

    def _options(self, values: dict, check: bool = False) -> TranscribeOptions:
        """The options of `values`; with `check`, also checked against the model (once per call, not per step)."""
        try:
            options = TranscribeOptions(**values)
            if check:
                self.engine.check(options)
        except OptionError as error:
            raise _pipeline_error(error) from None
        return options

    def preprocess(self, inputs, vad_model=None, skip_music: bool = False, **values):
        options = self._options(values)
        if vad_model is None:
            prepared = self.engine.prepare(inputs, options)
        else:
            vad = self._detector(vad_model, skip_music)
            prepared = prepare(
                inputs, self.feature_extractor, options, self.engine.max_segment_seconds, vad, skip_music
            )
        # the input's events travel with each of its items, whole (a batch would otherwise split the list)
        events = _Events(prepared.events)
        if not prepared.segments:  # one placeholder item per input keeps the batch shape; `_forward` skips it
            yield {"is_last": True, "segment": None, "duration": prepared.duration, "events": events}
            return
        # Longest first, so that a batch holds segments of similar length (less padding); postprocess restores order.
        order = sorted(prepared.segments, key=lambda segment: -segment.seconds)
        for position, segment in enumerate(order):
            last = position == len(order) - 1
            yield {"is_last": last, "segment": segment, "duration": prepared.duration, "events": events}

    def _forward(self, model_inputs, **kwargs):
        options = self._options({name: kwargs.pop(name) for name in OPTION_NAMES if name in kwargs})
        lid_model = kwargs.pop("lid_model", None)
        identifier = None if lid_model is None else self._shared_identifier(lid_model)
        generate_kwargs = kwargs
        segments = model_inputs["segment"]
        batched = isinstance(segments, list)
        segments = segments if batched else [segments]
        generate_kwargs = self._prepare_generate_kwargs(generate_kwargs)
        generate_kwargs.pop("return_timestamps", None)
        if generate_kwargs:
            options = dataclasses.replace(options, generate_kwargs={**options.generate_kwargs, **generate_kwargs})
        real = [segment for segment in segments if segment is not None]
        decoded = iter(self.engine.decode(real, options, language_identifier=identifier))
        results = [None if segment is None else next(decoded) for segment in segments]
        return {
            "is_last": model_inputs["is_last"],
            "segment": model_inputs["segment"],
            "duration": model_inputs["duration"],
            "events": model_inputs["events"],
            "result": results if batched else results[0],
        }

    def postprocess(self, model_outputs, punctuation_model=None, lid_model=None, **values):
        options = self._options(values)
        pieces = sorted(
            ((output["segment"], output["result"]) for output in model_outputs if output["segment"] is not None),
            key=lambda piece: piece[0].index,
        )
        prepared = Prepared(
            float(model_outputs[0]["duration"]), [segment for segment, _ in pieces], model_outputs[0]["events"].events
        )
        results = [result for _, result in pieces]
        output = self.engine.assemble(prepared, results, options)
        if punctuation_model is not None:
            punctuate_results(self._punctuator(punctuation_model), [(prepared, results, output)], options)
        if lid_model is not None:
            identifier = self._language_identifier(lid_model)
            identify_results(identifier, [(prepared, results, output)], options, self.feature_extractor)
        return output


class _Events:
    """An input's events (or None), kept whole through transformers' batching of the pipeline's items."""

    def __init__(self, events: list[dict] | None):
        self.events = events


__all__ = ["FireRedAsrPipeline", "is_fireredasr_model"]
