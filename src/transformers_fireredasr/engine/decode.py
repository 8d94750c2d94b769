"""The engine's second stage: segments from any inputs -> their texts, in one batched `generate` call.

Per segment it returns the text as the original prints it, the shown tokens, each output token's probability (from
the original search's token scores, or from transformers' step scores when it decodes greedily or samples), and
with word timestamps the words, timed by CTC forced alignment on the model's CTC head. Given a language model whose
encoder is the transcription model's (`language.shares_encoder_pass`), the encoder runs once, and its output goes to
both decoders: each segment with text also gets its language.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from ..language_identification import Language, LanguageIdentifier
from ..modeling_conformer import FireRedConformerEncoderOutput, encode_in_length_batches
from ..word_timing import align_shown_tokens, shown_positions, timed_words
from .options import TranscribeOptions
from .prepare import Segment


@dataclass(frozen=True)
class SegmentResult:
    """What decoding one segment gave: its text, its shown token ids, the probability of each output token (for
    confidences; empty when the search reports none), its timed words when asked for, whether they were
    aligned (False: more tokens than CTC frames, so their times are spread evenly over the segment), and its
    language when a language model shared the encoder pass (None otherwise, and for a segment without text)."""

    text: str
    tokens: list[int] = field(default_factory=list)
    probabilities: list[float] = field(default_factory=list)
    words: list[dict] | None = None
    aligned: bool = True
    language: Language | None = None

    @property
    def confidence(self) -> float | None:
        """The mean output-token probability (FireRedASR2's utterance confidence), or None."""
        return sum(self.probabilities) / len(self.probabilities) if self.probabilities else None


def transcript_text(tokenizer, config, ids: Sequence[int]) -> str:
    """A segment's text from its generated ids, as the original prints it (FireRedASR2-LLM in lowercase)."""
    text = tokenizer.decode(ids, skip_special_tokens=True)
    return text.lower() if getattr(config, "lowercase_output", False) else text


def generate_kwargs(options: TranscribeOptions, tokenizer, defaults: Mapping[str, Any] | None = None) -> dict:
    """What `generate` gets for these options: the engine's defaults (compiled decoding, encoder sub-batches), the
    options' decoding settings, then the options' own `generate_kwargs`."""
    kwargs: dict[str, Any] = dict(defaults or {})
    if options.num_beams is not None:
        kwargs["num_beams"] = options.num_beams
    if options.temperature > 0:
        kwargs.update(do_sample=True, temperature=options.temperature, num_beams=1)
    if options.hotwords:
        kwargs["hotwords"] = list(options.hotwords)
    if options.word_times:
        kwargs["output_ctc_log_probs"] = True
    kwargs.update(options.generate_kwargs)
    if kwargs.get("hotwords"):  # phrases are spelled in the model's own tokens
        kwargs.setdefault("tokenizer", tokenizer)
    kwargs.update(return_dict_in_generate=True, output_scores=True)
    return kwargs


def decode_segments(
    model,
    feature_extractor,
    tokenizer,
    segments: Sequence[Segment],
    options: TranscribeOptions,
    defaults: Mapping[str, Any] | None = None,
    progress: Callable[[float], None] | None = None,
    identifier: LanguageIdentifier | None = None,
) -> list[SegmentResult]:
    """Decodes `segments` (from any inputs, all with `options`) in one `generate` call; results in the order given.
    With `identifier` (a language model that shares `model`'s encoder pass), the encoder runs once and the segments
    with text are also identified on its output."""
    if not segments:
        return []
    padded = feature_extractor.pad(
        [{"input_features": segment.features, "attention_mask": segment.mask} for segment in segments],
        padding="longest",
        return_attention_mask=True,
        return_tensors="pt",
    )
    features = padded["input_features"].to(model.device, model.dtype)
    mask = padded["attention_mask"].to(model.device)
    main_input_name = getattr(model, "main_input_name", "input_features")
    kwargs = generate_kwargs(options, tokenizer, defaults)
    encoded = None
    with torch.inference_mode():
        if identifier is None:
            output = model.generate(**{main_input_name: features, "attention_mask": mask}, **kwargs)
        else:
            encoded = _encode(model, features, mask, kwargs)
            output = model.generate(encoder_outputs=encoded, attention_mask=mask, **kwargs)
    sequences = output.sequences.to("cpu", torch.long)
    probabilities = _token_probabilities(model, output)
    pad = tokenizer.pad_token_id
    results = []
    for row, segment in enumerate(segments):
        ids = sequences[row].tolist()
        generated = ids[1:]  # after the decoder start token (the AED), as the original's token scores are
        row_probabilities: list[float] = []
        if probabilities is not None:
            steps = probabilities[row].tolist()
            outputs = ids[len(ids) - len(steps) :]  # the generated tokens the step scores belong to
            row_probabilities = [
                p for p, token in zip(steps, outputs, strict=True) if token != pad and not math.isnan(p)
            ]
        positions = shown_positions(tokenizer, generated)
        words, aligned = None, True
        if options.word_times:
            words, aligned = _timed_words(
                model, tokenizer, output, row, generated, positions, probabilities, segment, options
            )
        shown = [generated[p] for p in positions]
        results.append(
            SegmentResult(transcript_text(tokenizer, model.config, ids), shown, row_probabilities, words, aligned)
        )
    if encoded is not None:
        results = _with_languages(identifier, encoded, results)
    if progress is not None:
        progress(sum(segment.seconds for segment in segments))
    return results


def _encode(model, features: torch.Tensor, mask: torch.Tensor, kwargs: Mapping[str, Any]):
    """The encoder output `generate` would compute for these `kwargs` (in the same length-sorted sub-batches)."""
    config = kwargs.get("generation_config") or model.generation_config
    frames = kwargs.get("encoder_batch_frames", getattr(config, "encoder_batch_frames", None))
    return encode_in_length_batches(model.get_encoder(), features, mask, frames)


def _with_languages(identifier: LanguageIdentifier, encoded, results: list[SegmentResult]) -> list[SegmentResult]:
    """`results` with the languages of those with text, identified on their rows of the shared encoder output."""
    spoken = [row for row, result in enumerate(results) if result.text.strip()]
    if not spoken:
        return results
    rows = torch.tensor(spoken, device=encoded.last_hidden_state.device)
    frames = int(encoded.attention_mask[rows].sum(-1).max())  # the longest of these rows, as a batch of them pads
    with torch.inference_mode():
        languages = identifier.identify_encoded(
            FireRedConformerEncoderOutput(
                last_hidden_state=encoded.last_hidden_state[rows, :frames],
                attention_mask=encoded.attention_mask[rows, :frames],
            )
        )
    results = list(results)
    for row, language in zip(spoken, languages, strict=True):
        results[row] = replace(results[row], language=language)
    return results


def _token_probabilities(model, output) -> torch.Tensor | None:
    """`(rows, steps)` probabilities of the last `steps` tokens of each sequence: the original search's token
    scores, or transformers' normalized step scores when it decoded greedily or sampled (a beam search's are not per
    token; NaN marks a step without a finite score); None when the search reports neither."""
    token_scores = getattr(output, "token_scores", None)
    if token_scores is not None:
        return token_scores.to("cpu", torch.float32).exp()
    scores = getattr(output, "scores", None)
    if not scores or getattr(output, "beam_indices", None) is not None:
        return None
    steps = model.compute_transition_scores(output.sequences, scores, normalize_logits=True).to("cpu", torch.float32)
    return torch.where(torch.isfinite(steps), steps.exp(), float("nan"))


def _timed_words(
    model, tokenizer, output, row, generated, positions, probabilities, segment, options
) -> tuple[list[dict], bool]:
    """One segment's timed words (or tokens), in seconds from the start of its input; `positions` are those of the
    shown tokens in `generated`."""
    shown = [generated[p] for p in positions]
    frames = int(output.encoder_attention_mask[row].sum())
    spans, aligned = align_shown_tokens(output.ctc_log_probs[row], frames, shown, model.config.blank_token_id)
    token_probabilities = probabilities[row][positions].tolist()
    words = timed_words(
        tokenizer, model.config, shown, spans, token_probabilities, options.timestamps, segment.start, segment.end
    )
    return words, aligned


__all__ = ["SegmentResult", "decode_segments", "generate_kwargs", "transcript_text"]
