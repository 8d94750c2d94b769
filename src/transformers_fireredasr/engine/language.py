"""Language identification of assembled results: the engine's optional language model (`LoadOptions.lid_model`),
run in one batched pass over the decoded segments of every input finished together.

Each segment with text is identified on its own features (the transcription model's, moved to the language model's
CMVN; `language_identification.py`), unless decoding already identified it: when the language model's encoder is the
transcription model's (same weights, fbank and CMVN, same dtype and device; checked once, `shares_encoder_pass`),
`decode.py` runs the encoder once per batch and gives its output to both decoders (`SegmentResult.language`). Its
result then carries:
- `language` and `language_confidence`: the label covering the most decoded seconds, with the seconds-weighted
  mean confidence of its segments (None for an input without speech);
- in each segment piece (`chunks` with segment timestamps, `segments` with word timestamps) and each punctuated
  sentence: `language` and `language_confidence`, a sentence taking its segment's (the one it overlaps most), as
  FireRedASR2S tags sentences with the language of their speech segment.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..language_identification import FBANK_SETTINGS, Language, LanguageIdentifier
from ..modeling_fireredlid import shares_encoder
from .decode import SegmentResult
from .options import TranscribeOptions
from .prepare import Prepared
from .variants import decodes_encoder_outputs


def shares_encoder_pass(model, feature_extractor, identifier: LanguageIdentifier) -> bool:
    """Whether one encoder pass of `model` (the transcription model, with `feature_extractor`) serves `identifier`'s
    language model as well: `model` decodes an encoder output given to it (the AED), both models sit on one device
    in one dtype, the feature extractors make the same fbank with the same CMVN (so the language model's own path
    would feed its encoder the same features), and the encoders are the same (`shares_encoder`) in plain weights (an
    encoder quantized to int8, `--quantize int8-dynamic` or `int8-mixed`, computes another output)."""
    lid, lid_features = identifier.model, identifier.feature_extractor
    if not decodes_encoder_outputs(model.config) or (model.device, model.dtype) != (lid.device, lid.dtype):
        return False
    encoders = (model.get_encoder().state_dict().values(), lid.get_encoder().state_dict().values())
    if any(type(weight) is not torch.Tensor for weights in encoders for weight in weights):
        return False
    if any(getattr(feature_extractor, name) != getattr(lid_features, name) for name in FBANK_SETTINGS):
        return False
    return shares_encoder(model, lid, feature_extractor, lid_features)


def _tag(item: dict, language: Language) -> None:
    item["language"] = language.label
    item["language_confidence"] = round(language.confidence, 4)


def dominant_language(spans: Sequence[tuple[float, Language]]) -> Language | None:
    """The label covering the most seconds among `(seconds, language)` spans, with the seconds-weighted mean
    confidence of its spans (the first such label on a tie); None for no spans."""
    seconds: dict[str, float] = {}
    for length, language in spans:
        seconds[language.label] = seconds.get(language.label, 0.0) + length
    if not seconds:
        return None
    label = max(seconds, key=lambda name: seconds[name])
    weighted = sum(length * language.confidence for length, language in spans if language.label == label)
    return Language(label, weighted / seconds[label] if seconds[label] > 0 else 0.0)


def _overlap(start: float, end: float, segment) -> float:
    return max(0.0, min(end, segment.end) - max(start, segment.start))


def identify_results(
    identifier: LanguageIdentifier,
    finished: Sequence[tuple[Prepared, Sequence[SegmentResult], dict]],
    options: TranscribeOptions,
    feature_extractor,
) -> list[list[Language | None]]:
    """Tags the assembled results of `finished` (input, its segment results, its result) with languages, in place,
    and returns each input's segment languages (None for a segment without text). A segment that decoding already
    identified (over the shared encoder pass) keeps its language; the others are identified on their features, which
    `feature_extractor` made."""
    languages: list[list[Language | None]] = [
        [result.language if result.text.strip() else None for result in results] for _, results, _ in finished
    ]
    unknown = [
        (number, index)
        for number, (_, results, _) in enumerate(finished)
        for index, result in enumerate(results)
        if result.text.strip() and result.language is None
    ]
    features = [finished[number][0].segments[index].features for number, index in unknown]
    identified = identifier.identify_features(features, feature_extractor) if features else []
    for (number, index), language in zip(unknown, identified, strict=True):
        languages[number][index] = language
    for (prepared, _, output), segment_languages in zip(finished, languages, strict=True):
        tag_output(prepared, segment_languages, output, options)
    return languages


def tag_pieces(pieces: Sequence[dict], languages: Sequence[Language | None]) -> None:
    """Tags an input's segment pieces (`assemble.pieces`: the segments with text, in order) with their languages."""
    for piece, language in zip(pieces, [language for language in languages if language], strict=True):
        _tag(piece, language)


def tag_output(
    prepared: Prepared, languages: Sequence[Language | None], output: dict, options: TranscribeOptions
) -> None:
    """Writes one input's languages into its result: overall, per segment piece, per sentence."""
    pairs = [(segment, language) for segment, language in zip(prepared.segments, languages, strict=True) if language]
    overall = dominant_language([(segment.seconds, language) for segment, language in pairs])
    output["language"] = overall.label if overall else None
    output["language_confidence"] = round(overall.confidence, 4) if overall else None
    # The segment pieces (`assemble.pieces`: the segments with text, in order), where the result has them.
    pieces = output.get("segments") if options.word_times else output.get("chunks") if options.timestamps else None
    if pieces is not None:
        tag_pieces(pieces, languages)
    for sentence in output.get("sentences") or []:
        if not pairs:
            break
        segment, language = max(pairs, key=lambda pair: _overlap(sentence["start"], sentence["end"], pair[0]))
        _tag(sentence, language)


__all__ = ["dominant_language", "identify_results", "shares_encoder_pass", "tag_output", "tag_pieces"]
