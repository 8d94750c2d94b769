"""FireRedASR-AED decoding rules expressed for `generate()`.

The original decodes with its own beam search: logits divided by a softmax smoothing factor before
`log_softmax`, the `<eos>` log-prob multiplied by an eos penalty, B rows per utterance whose finished rows are
frozen on `<eos>`, and one GNMT length penalty `((5 + len) / 6) ** lp` applied to the final beams. That is not
transformers' beam search (2B candidates, a heap of finished hypotheses, `score / len ** lp`), so exact parity
needs the original procedure as this model's decoding path; it runs on the model's KV cache.

Generation-config keys added by this model (all optional):
    original_beam_search (bool, default True): decode with the original procedure when not sampling
        (`num_beams=1` is then greedy decoding with the eos penalty). False runs transformers' own search.
    softmax_smoothing (float, default 1.0): logits are divided by it before `log_softmax` (every mode).
    eos_penalty (float in (0, 1], default 1.0): multiplies the `<eos>` log-prob (every mode).
    gnmt_length_penalty (float, default 0.0): GNMT length penalty of the original procedure (0 = none).
Every transcript is also limited to as many tokens as its utterance has encoder frames (the original's default
limit); `max_new_tokens` / `max_length` can only lower it.
"""

from __future__ import annotations

import copy

import torch
from transformers import GenerationMixin, LogitsProcessor, LogitsProcessorList
from transformers.cache_utils import DynamicCache, EncoderDecoderCache
from transformers.generation.utils import GenerateBeamEncoderDecoderOutput

from .modeling_conformer import FireRedConformerEncoderOutput, check_input_features, encoder_frame_mask

FIREREDASR_GENERATION_DEFAULTS = {
    "original_beam_search": True,
    "softmax_smoothing": 1.0,
    "eos_penalty": 1.0,
    "gnmt_length_penalty": 0.0,
}

# The original's "minus infinity" for beam scores; kept identical so that score arithmetic matches bit for bit.
_NEG_INF = -1e10


class SmoothedLogSoftmaxProcessor(LogitsProcessor):
    """`log_softmax(logits / smoothing)` with the `<eos>` column multiplied by `eos_penalty`.

    Applied to raw logits (greedy, sampling) or to log-probs (transformers' beam search) it gives the same result,
    since `log_softmax` ignores a constant shift.
    """

    def __init__(self, softmax_smoothing: float, eos_token_id: int, eos_penalty: float):
        self.softmax_smoothing = softmax_smoothing
        self.eos_token_id = eos_token_id
        self.eos_penalty = eos_penalty

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores = torch.log_softmax(scores.float() / self.softmax_smoothing, dim=-1)
        if self.eos_penalty != 1.0:
            scores[:, self.eos_token_id] *= self.eos_penalty
        return scores


def _validate_decoding_options(options: dict) -> None:
    if not options["softmax_smoothing"] > 0:
        raise ValueError(f"softmax_smoothing must be > 0, got {options['softmax_smoothing']}")
    if not 0.0 < options["eos_penalty"] <= 1.0:
        raise ValueError(f"eos_penalty must be in (0, 1], got {options['eos_penalty']}")
    if options["gnmt_length_penalty"] < 0:
        raise ValueError(f"gnmt_length_penalty must be >= 0, got {options['gnmt_length_penalty']}")


@torch.no_grad()
def original_beam_search(
    model,
    encoder_hidden_states: torch.Tensor,
    encoder_attention_mask: torch.Tensor,
    max_new_tokens: torch.Tensor,
    num_beams: int,
    num_return_sequences: int,
    softmax_smoothing: float,
    eos_penalty: float,
    gnmt_length_penalty: float,
    decoder_start_token_id: int,
    eos_token_id: int,
    pad_token_id: int,
) -> tuple[torch.LongTensor, torch.FloatTensor]:
    """The original FireRedASR beam search on the KV cache, with a per-utterance length limit.

    Returns `(sequences, scores)`: `sequences` `(N * num_return_sequences, L)` start with the start token, end
    with `<eos>` when the hypothesis finished, and are right-padded with `pad_token_id`; `scores` are the final
    (length-penalised) log-probs, best first per utterance.
    """
    batch, frames, _ = encoder_hidden_states.shape
    beams = num_beams
    rows = batch * beams
    device = encoder_hidden_states.device
    encoder_hidden_states = encoder_hidden_states.repeat_interleave(beams, dim=0)
    encoder_attention_mask = encoder_attention_mask.repeat_interleave(beams, dim=0)
    row_limit = max_new_tokens.to(device).repeat_interleave(beams).view(rows, 1)

    ys = torch.full((rows, 1), decoder_start_token_id, dtype=torch.long, device=device)
    first_beam_only = torch.tensor([0.0] + [_NEG_INF] * (beams - 1), device=device)
    scores = first_beam_only.repeat(batch).view(rows, 1)
    finished = torch.zeros(rows, 1, dtype=torch.bool, device=device)
    row_offset = (beams * torch.arange(batch, device=device)).repeat_interleave(beams)
    cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
    decoder = model.get_decoder()

    for step in range(int(max_new_tokens.max())):
        # Rows past their own limit are frozen like finished ones: they keep their score and append <eos>.
        frozen = finished | (row_limit <= step)
        if bool(frozen.all()):
            break
        hidden = decoder(
            input_ids=ys[:, -1:],
            attention_mask=ys.ne(pad_token_id).long(),
            encoder_hidden_states=encoder_hidden_states,
            encoder_attention_mask=encoder_attention_mask,
            past_key_values=cache,
            position_ids=torch.full((rows, 1), step, dtype=torch.long, device=device),
            use_cache=True,
        ).last_hidden_state
        logits = model.get_output_embeddings()(hidden[:, -1]).float()
        step_scores = torch.log_softmax(logits / softmax_smoothing, dim=-1)
        if eos_penalty != 1.0:
            step_scores[:, eos_token_id] *= eos_penalty
        top_scores, top_tokens = torch.topk(step_scores, k=beams, dim=1)
        top_scores = torch.where(frozen, first_beam_only.view(1, beams), top_scores)
        top_tokens = torch.where(frozen, torch.full_like(top_tokens, eos_token_id), top_tokens)

        scores = (scores + top_scores).view(batch, beams * beams)
        scores, best = torch.topk(scores, k=beams, dim=1)
        scores = scores.view(rows, 1)
        source_rows = torch.div(best, beams, rounding_mode="floor").view(rows) + row_offset
        new_tokens = torch.gather(top_tokens.view(batch, beams * beams), 1, best).view(rows, 1)
        ys = torch.cat((ys[source_rows], new_tokens), dim=1)
        # Beams only move within their utterance, whose rows share one encoder output: the cross-attention cache
        # needs no reordering (copying it every step cost 6-17% of decoding time on CPU, benchmarks/RESULTS.md).
        cache.self_attention_cache.reorder_cache(source_rows)
        row_limit = row_limit[source_rows]
        finished = new_tokens.eq(eos_token_id)

    lengths = ys.ne(eos_token_id).sum(dim=-1)  # start token + real tokens, as the original counts them
    scores = scores.view(batch, beams)
    if gnmt_length_penalty > 0.0:
        scores = scores / torch.pow((5 + lengths.view(batch, beams).float()) / 6.0, gnmt_length_penalty)
    best_scores, best_beams = torch.topk(scores, k=num_return_sequences, dim=1)
    chosen = (best_beams + beams * torch.arange(batch, device=device).view(batch, 1)).view(-1)

    ys, lengths = ys[chosen], lengths[chosen]
    ended = ys.eq(eos_token_id).any(dim=-1)
    out_length = int((lengths + ended.long()).max())
    positions = torch.arange(out_length, device=device).view(1, -1)
    sequences = torch.where(positions < lengths.view(-1, 1), ys[:, :out_length], pad_token_id)
    sequences = torch.where((positions == lengths.view(-1, 1)) & ended.view(-1, 1), eos_token_id, sequences)
    return sequences, best_scores.view(-1)


class FireRedAedGenerationMixin(GenerationMixin):
    """`generate()` for FireRedASR-AED: the original decoding rules by default, any transformers mode on request."""

    def generate(
        self,
        input_features: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        generation_config=None,
        logits_processor: LogitsProcessorList | None = None,
        **kwargs,
    ):
        """Transcribes `input_features` `(batch, frames, 80)` with the frame `attention_mask`.

        Accepts every `generate()` argument. See the module docstring for the FireRedASR-specific keys
        (`original_beam_search`, `softmax_smoothing`, `eos_penalty`, `gnmt_length_penalty`).
        """
        generation_config = copy.deepcopy(
            generation_config if generation_config is not None else self.generation_config
        )
        options = {
            key: kwargs.pop(key, getattr(generation_config, key, default))
            for key, default in FIREREDASR_GENERATION_DEFAULTS.items()
        }
        _validate_decoding_options(options)
        user_max_length = kwargs.get("max_length") is not None and kwargs.get("max_new_tokens") is None
        model_kwargs = generation_config.update(**kwargs)

        encoder_outputs = model_kwargs.pop("encoder_outputs", None)
        if encoder_outputs is None:
            if input_features is None:
                raise ValueError("generate() needs input_features (or encoder_outputs)")
            check_input_features(input_features, self.config.encoder_config.num_mel_bins)
            encoder_outputs = self.get_encoder()(input_features, attention_mask=attention_mask)
        frame_mask = encoder_frame_mask(encoder_outputs, attention_mask)
        if frame_mask is None:
            hidden = encoder_outputs[0]
            frame_mask = torch.ones(hidden.shape[:2], dtype=torch.bool, device=hidden.device)
        limits = frame_mask.sum(dim=-1)
        if generation_config.max_new_tokens is not None:
            limits = limits.clamp(max=generation_config.max_new_tokens)
        if generation_config.max_length is not None and (user_max_length or generation_config.max_new_tokens is None):
            limits = limits.clamp(max=generation_config.max_length - 1)  # the start token counts in max_length
        generation_config.max_length = None

        def setting(name: str):
            value = getattr(generation_config, name, None)
            return value if value is not None else getattr(self.config, name)

        eos_token_id = setting("eos_token_id")
        if isinstance(eos_token_id, (list, tuple)):
            eos_token_id = eos_token_id[0]
        num_beams = generation_config.num_beams or 1
        num_return_sequences = generation_config.num_return_sequences or 1
        if num_return_sequences > num_beams:
            raise ValueError(f"num_return_sequences ({num_return_sequences}) must be <= num_beams ({num_beams})")

        if options["original_beam_search"] and not generation_config.do_sample:
            sequences, scores = original_beam_search(
                self,
                encoder_outputs[0],
                frame_mask,
                limits,
                num_beams=num_beams,
                num_return_sequences=num_return_sequences,
                softmax_smoothing=options["softmax_smoothing"],
                eos_penalty=options["eos_penalty"],
                gnmt_length_penalty=options["gnmt_length_penalty"],
                decoder_start_token_id=setting("decoder_start_token_id"),
                eos_token_id=eos_token_id,
                pad_token_id=setting("pad_token_id"),
            )
            if generation_config.return_dict_in_generate:
                return GenerateBeamEncoderDecoderOutput(sequences=sequences, sequences_scores=scores)
            return sequences

        processors = LogitsProcessorList(logits_processor or [])
        if options["softmax_smoothing"] != 1.0 or options["eos_penalty"] != 1.0:
            processors.append(
                SmoothedLogSoftmaxProcessor(options["softmax_smoothing"], eos_token_id, options["eos_penalty"])
            )
        generation_config.max_new_tokens = int(limits.max())
        # transformers' search expands every tensor of the encoder output per beam, the frame mask included.
        encoder_outputs = FireRedConformerEncoderOutput(
            last_hidden_state=encoder_outputs[0], attention_mask=frame_mask
        )
        return super().generate(
            generation_config=generation_config,
            logits_processor=processors,
            encoder_outputs=encoder_outputs,
            attention_mask=attention_mask,
            **model_kwargs,
        )


__all__ = ["FireRedAedGenerationMixin", "SmoothedLogSoftmaxProcessor", "original_beam_search"]
