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
    eos_penalty (float > 0, default 1.0): multiplies the `<eos>` log-prob (every mode); FireRedASR2 allows > 1.
    gnmt_length_penalty (float, default 0.0): GNMT length penalty of the original procedure (0 = none).
    output_ctc_log_probs (bool, default False): with `return_dict_in_generate=True`, also return the CTC head's
        log-probs of the encoder output (`ctc_log_probs`, `encoder_attention_mask`), for word timestamps without a
        second encoder pass. Needs a model with a CTC head.
    encoder_batch_frames (int, default None): run the encoder over length-sorted sub-batches of at most this many
        padded fbank frames (count x longest; 100 a second), so that a large decoding batch of mixed lengths pads
        little (`modeling_conformer.encode_in_length_batches`); None encodes the batch at once. A speed setting: the
        transcripts are those of the whole batch (up to float rounding).
With `return_dict_in_generate=True` the original procedure also returns, per returned sequence, `token_scores`
(each chosen token's step log-prob after softmax smoothing and the eos penalty, before any logits processor such
as hotword biasing; `<eos>` included, 0 past it) and `confidence`: FireRedASR2's utterance confidence, the mean of
exp(token score) over the output tokens, `<eos>` included.
Every transcript is also limited to as many tokens as its utterance has encoder frames (the original's default
limit); `max_new_tokens` / `max_length` can only lower it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from transformers import GenerationMixin, LogitsProcessor, LogitsProcessorList
from transformers.cache_utils import DynamicCache, EncoderDecoderCache, StaticCache
from transformers.generation.utils import GenerateBeamEncoderDecoderOutput

from .compiled_decoding import freezes_weights, frozen_call_usable, kept_static_cache, with_inductor_options
from .hotwords import (
    DEFAULT_HOTWORD_SCORE,
    HotwordLogitsProcessor,
    hotword_lists,
    hotwords_given,
    model_tokenizer,
    token_tries,
)
from .modeling_conformer import (
    FireRedConformerEncoderOutput,
    check_input_features,
    encode_in_length_batches,
    encoder_frame_mask,
)
from .transformers_compat import auto_compile_allowed

FIREREDASR_GENERATION_DEFAULTS = {
    "original_beam_search": True,
    "softmax_smoothing": 1.0,
    "eos_penalty": 1.0,
    "gnmt_length_penalty": 0.0,
    "output_ctc_log_probs": False,
    "encoder_batch_frames": None,
}

# How many decoding steps an accelerator runs between asking whether every row has finished (a host-device sync).
_CHECK_EVERY_ON_ACCELERATORS = 8

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
    if not options["eos_penalty"] > 0.0:
        raise ValueError(f"eos_penalty must be > 0, got {options['eos_penalty']}")
    if options["gnmt_length_penalty"] < 0:
        raise ValueError(f"gnmt_length_penalty must be >= 0, got {options['gnmt_length_penalty']}")
    frames = options["encoder_batch_frames"]
    if frames is not None and (isinstance(frames, bool) or not isinstance(frames, int) or frames < 1):
        raise ValueError(f"encoder_batch_frames must be a positive number of frames (or None), got {frames!r}")


# `generate()` arguments that only transformers' own searches implement.
_TRANSFORMERS_SEARCH_ONLY = (
    "stopping_criteria",
    "prefix_allowed_tokens_fn",
    "synced_gpus",
    "assistant_model",
    "streamer",
    "negative_prompt_ids",
    "negative_prompt_attention_mask",
    "custom_generate",
    "decoder_input_ids",
)


def refuse_unused_kwargs(model_kwargs: dict) -> None:
    """Raises what transformers' `generate` raises for keywords nothing uses, so that a typo (`num_beam=5`) is never
    silently ignored by the original beam search either; arguments only transformers' searches implement are named
    unless they are switched off (`Seq2SeqTrainer` passes `synced_gpus=False`, for one)."""
    search_only = sorted(
        key
        for key, value in model_kwargs.items()
        if key in _TRANSFORMERS_SEARCH_ONLY and value not in (None, False, [])
    )
    for key in _TRANSFORMERS_SEARCH_ONLY:
        if key not in search_only:
            model_kwargs.pop(key, None)
    # `Seq2SeqTrainer(predict_with_generate=True)` passes the batch's labels along; decoding never reads them (nor
    # does transformers' search, which drops them before the forward).
    model_kwargs.pop("labels", None)
    if search_only:
        raise ValueError(
            f"{search_only} are not supported by FireRedASR's original beam search; pass original_beam_search=False"
            " to decode with transformers' own search"
        )
    if model_kwargs:
        raise ValueError(
            f"The following `model_kwargs` are not used by the model: {sorted(model_kwargs)} (note: typos in the"
            " generate arguments will also show up in this list)"
        )


def reorder_self_attention_cache(cache: EncoderDecoderCache, rows: torch.LongTensor, filled: int) -> None:
    """Moves the self-attention cache rows to `rows`. A static cache is rewritten in place (only its first `filled`
    positions hold anything), so that the buffers a compiled step (or a CUDA graph) captured stay the ones it reads."""
    self_attention = cache.self_attention_cache
    if not isinstance(self_attention, StaticCache):
        self_attention.reorder_cache(rows)
        return
    for layer in self_attention.layers:
        if layer.is_initialized:
            for buffer in (layer.keys, layer.values):
                buffer[:, :, :filled].copy_(buffer[:, :, :filled].index_select(0, rows))


def _utterance_rows(utterances: torch.Tensor, beams: int) -> torch.Tensor:
    """The decoder rows of `utterances` (each has `beams` consecutive rows), in order."""
    return (beams * utterances.view(-1, 1) + torch.arange(beams, device=utterances.device)).view(-1)


def _frozen_after_next_step(
    gone: torch.Tensor,
    ys: torch.Tensor,
    scores: torch.Tensor,
    token_scores: torch.Tensor,
    first_beam_only: torch.Tensor,
    beams: int,
    eos_token_id: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`(ys, scores, token_scores)` of the utterances `gone` (all rows frozen) as the original's next step leaves
    them, which runs because other utterances are still decoding: every frozen row proposes itself (score + 0, the
    other beams -1e10), so the top-k sorts the rows by score, and each appends `<eos>` (token score 0). Later steps
    change nothing but more `<eos>`, which `_rejoin_retired` pads with."""
    rows = _utterance_rows(gone, beams)
    candidates = (scores[rows].view(-1, beams, 1) + first_beam_only.view(1, 1, beams)).view(-1, beams * beams)
    best_scores, best = torch.topk(candidates, k=beams, dim=1)
    order = (
        torch.div(best, beams, rounding_mode="floor") + beams * torch.arange(len(gone), device=gone.device)[:, None]
    ).view(-1)
    ys = torch.cat(
        (ys[rows][order], torch.full((len(rows), 1), eos_token_id, dtype=ys.dtype, device=ys.device)), dim=1
    )
    token_scores = nn.functional.pad(token_scores[rows][order], (0, 1))
    return ys, best_scores.view(-1, 1), token_scores


def _rejoin_retired(
    retired: list, active: torch.Tensor, ys: torch.Tensor, scores: torch.Tensor, token_scores: torch.Tensor, beams: int,
    eos_token_id: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """Every utterance's `(ys, scores, token_scores)` in input order: the retired ones (`(ys, scores, token_scores,
    utterances)` each) padded with `<eos>` (token score 0) to the width the whole batch reached, as the original's
    further steps would have extended them, and those still decoding at the end (`active`)."""
    parts = [*retired, (ys, scores, token_scores, active)]
    width = ys.shape[1]
    utterances = torch.cat([part[3] for part in parts])
    order = _utterance_rows(torch.argsort(utterances), beams)
    ys = torch.cat([nn.functional.pad(part[0], (0, width - part[0].shape[1]), value=eos_token_id) for part in parts])
    token_scores = torch.cat([nn.functional.pad(part[2], (0, width - 1 - part[2].shape[1])) for part in parts])
    scores = torch.cat([part[1] for part in parts])
    return ys[order], scores[order], token_scores[order]


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
    cache: EncoderDecoderCache | None = None,
    step_forward: Callable | None = None,
    check_every: int = 1,
    logits_processor: LogitsProcessorList | None = None,
    return_token_scores: bool = False,
    retire_finished: bool = True,
) -> tuple[torch.LongTensor, torch.FloatTensor] | tuple[torch.LongTensor, torch.FloatTensor, torch.FloatTensor]:
    """The original FireRedASR beam search on the KV cache, with a per-utterance length limit.

    `cache` is an empty `EncoderDecoderCache` for the `num_beams * N` rows (default: dynamic); with a static
    self-attention cache every step after the first has the same shapes and may run through `step_forward` (e.g.
    `model.get_compiled_call(...)`; default: the model itself). `check_every` is how often (in steps) the loop
    asks the device whether every row has finished, a host-device sync; steps taken after that change nothing.
    `logits_processor` (transformers' `LogitsProcessor`s) adjusts each step's log-probs after the softmax smoothing
    and the eos penalty, before the per-beam top-k; it sees every row's hypothesis so far (start token included).
    With `retire_finished`, a dynamic cache, a check every step and no `logits_processor`, an utterance whose rows
    are all frozen leaves the batch: later steps cost only the utterances still decoding, and each utterance's
    result is the one the whole batch gives (up to float rounding, as with any other batch size).

    Returns `(sequences, scores)`: `sequences` `(N * num_return_sequences, L)` start with the start token, end
    with `<eos>` when the hypothesis finished, and are right-padded with `pad_token_id`; `scores` are the final
    (length-penalised) log-probs, best first per utterance. With `return_token_scores`, a third tensor, shaped like
    `sequences[:, 1:]`, holds each chosen token's step log-prob (after smoothing and the eos penalty, before
    `logits_processor`), 0 after `<eos>`.
    """
    batch, frames, _ = encoder_hidden_states.shape
    beams = num_beams
    rows = batch * beams
    device = encoder_hidden_states.device
    # The encoder output stays one row per utterance: the decoder's cross-attention lets the `beams` consecutive rows
    # of an utterance share it, so its keys and values are computed and cached once, not `beams` times.
    row_limit = max_new_tokens.to(device).repeat_interleave(beams).view(rows, 1)

    ys = torch.full((rows, 1), decoder_start_token_id, dtype=torch.long, device=device)
    token_scores = torch.zeros(rows, 0, device=device)
    first_beam_only = torch.tensor([0.0] + [_NEG_INF] * (beams - 1), device=device)
    scores = first_beam_only.repeat(batch).view(rows, 1)
    finished = torch.zeros(rows, 1, dtype=torch.bool, device=device)
    row_offset = (beams * torch.arange(batch, device=device)).repeat_interleave(beams)
    same_rows = torch.arange(rows, device=device)
    max_steps = int(max_new_tokens.max())
    # The first step at which every row was frozen: the original stops there, so later steps must not count.
    stopped_at = torch.full((), max_steps, dtype=torch.long, device=device)
    cache = cache if cache is not None else EncoderDecoderCache(DynamicCache(), DynamicCache())
    static_cache = isinstance(cache.self_attention_cache, StaticCache)
    encoder_outputs = FireRedConformerEncoderOutput(
        last_hidden_state=encoder_hidden_states, attention_mask=encoder_attention_mask
    )
    # Processors keep per-utterance state by row position, and a static cache keeps its shape: neither can shrink.
    retire = retire_finished and not static_cache and check_every == 1 and not logits_processor and batch > 1
    active = torch.arange(batch, device=device)  # the utterance (input row) of each utterance still decoding
    retired: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []

    for step in range(max_steps):
        # Rows past their own limit are frozen like finished ones: they keep their score and append <eos>.
        frozen = finished | (row_limit <= step)
        all_frozen = frozen.all()
        if step % check_every == 0 and bool(all_frozen):
            break
        stopped_at = torch.where(all_frozen, torch.clamp(stopped_at, max=step), stopped_at)
        decoder_mask = ys.ne(pad_token_id)
        if static_cache:  # one shape for every step: the mask spans the whole preallocated cache
            decoder_mask = nn.functional.pad(decoder_mask, (0, max_steps - ys.shape[1]))
        forward = model if step == 0 or step_forward is None else step_forward
        logits = forward(
            encoder_outputs=encoder_outputs,
            decoder_input_ids=ys[:, -1:].contiguous(),  # a view's stride grows every step: one compile only
            decoder_attention_mask=decoder_mask.long(),
            cache=cache,
            decoder_position_ids=torch.full((rows, 1), step, dtype=torch.long, device=device),
            use_cache=True,
        ).logits
        step_scores = torch.log_softmax(logits[:, -1].float() / softmax_smoothing, dim=-1)
        if eos_penalty != 1.0:
            step_scores[:, eos_token_id] *= eos_penalty
        model_scores = step_scores
        if logits_processor:
            step_scores = logits_processor(ys, step_scores.clone() if return_token_scores else step_scores)
        top_scores, top_tokens = torch.topk(step_scores, k=beams, dim=1)
        if return_token_scores:
            top_model_scores = torch.where(frozen, 0.0, torch.gather(model_scores, 1, top_tokens))
        top_scores = torch.where(frozen, first_beam_only.view(1, beams), top_scores)
        top_tokens = torch.where(frozen, torch.full_like(top_tokens, eos_token_id), top_tokens)

        candidates = (scores + top_scores).view(batch, beams * beams)
        best_scores, best = torch.topk(candidates, k=beams, dim=1)
        # Once every row is frozen (not yet noticed by the host), a step keeps every row where it is.
        scores = torch.where(all_frozen, scores, best_scores.view(rows, 1))
        source_rows = torch.div(best, beams, rounding_mode="floor").view(rows) + row_offset
        source_rows = torch.where(all_frozen, same_rows, source_rows)
        new_tokens = torch.gather(top_tokens.view(batch, beams * beams), 1, best).view(rows, 1)
        new_tokens = torch.where(all_frozen, eos_token_id, new_tokens)
        ys = torch.cat((ys[source_rows], new_tokens), dim=1)
        if return_token_scores:
            new_scores = torch.gather(top_model_scores.view(batch, beams * beams), 1, best).view(rows, 1)
            new_scores = torch.where(all_frozen, 0.0, new_scores)
            token_scores = torch.cat((token_scores[source_rows], new_scores), dim=1)
        # Beams only move within their utterance, whose rows share one encoder output: the cross-attention cache
        # needs no reordering (copying it every step was a visible share of CPU decoding time, benchmarks/RESULTS.md).
        if beams > 1:  # greedy rows never move
            reorder_self_attention_cache(cache, source_rows, filled=step + 1)
        row_limit = row_limit[source_rows]
        finished = new_tokens.eq(eos_token_id)
        if not retire or step + 1 >= max_steps:
            continue
        done = (finished | (row_limit <= step + 1)).view(batch, beams).all(dim=1)
        if int(done.sum()) in (0, batch):  # one host-device sync; none or all done: nothing to retire
            continue
        kept, gone = (~done).nonzero().flatten(), done.nonzero().flatten()
        retired.append(
            _frozen_after_next_step(gone, ys, scores, token_scores, first_beam_only, beams, eos_token_id)
            + (active[gone],)
        )
        kept_rows = _utterance_rows(kept, beams)
        ys, scores, token_scores, row_limit, finished = (
            tensor[kept_rows] for tensor in (ys, scores, token_scores, row_limit, finished)
        )
        active, batch = active[kept], len(kept)
        rows = batch * beams
        encoder_outputs = FireRedConformerEncoderOutput(
            last_hidden_state=encoder_outputs.last_hidden_state[kept],
            attention_mask=encoder_outputs.attention_mask[kept],
        )
        cache.self_attention_cache.reorder_cache(kept_rows)
        cache.cross_attention_cache.reorder_cache(kept)  # one row per utterance (see above)
        row_offset = (beams * torch.arange(batch, device=device)).repeat_interleave(beams)
        same_rows = torch.arange(rows, device=device)

    if retired:
        batch = len(encoder_hidden_states)
        ys, scores, token_scores = _rejoin_retired(retired, active, ys, scores, token_scores, beams, eos_token_id)

    if check_every > 1:
        ys = ys[:, : int(stopped_at) + 1]
        token_scores = token_scores[:, : int(stopped_at)]
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
    if not return_token_scores:
        return sequences, best_scores.view(-1)
    chosen_scores = token_scores[chosen][:, : out_length - 1]
    real = positions[:, 1:] < (lengths + ended.long()).view(-1, 1)
    return sequences, best_scores.view(-1), torch.where(real, chosen_scores, 0.0)


@dataclass
class FireRedAedGenerateOutput(GenerateBeamEncoderDecoderOutput):
    """What the original procedure returns with `return_dict_in_generate=True`.

    Args:
        token_scores (`(sequences, length - 1)`): each chosen token's step log-prob (after softmax smoothing and the
            eos penalty, before logits processors), aligned with `sequences[:, 1:]`, 0 past `<eos>`.
        confidence (`(sequences,)`): mean of exp(token score) over the output tokens, `<eos>` included
            (FireRedASR2's utterance confidence).
        ctc_log_probs (`(batch, frames, vocab)`), encoder_attention_mask (`(batch, frames)`): with
            `output_ctc_log_probs=True`, the CTC head's log-probs of the encoder output and its real frames.
    """

    token_scores: torch.FloatTensor | None = None
    confidence: torch.FloatTensor | None = None
    ctc_log_probs: torch.FloatTensor | None = None
    encoder_attention_mask: torch.BoolTensor | None = None


class FireRedAedGenerationMixin(GenerationMixin):
    """`generate()` for FireRedASR-AED: the original decoding rules by default, any transformers mode on request."""

    def _decoding_cache(
        self, generation_config, rows: int, max_steps: int, frames: int
    ) -> tuple[EncoderDecoderCache, Callable | None]:
        """The cache for `original_beam_search` and, when transformers' auto-compile rules allow it, the compiled
        forward for its steps.

        `cache_implementation="static"` preallocates the self-attention cache for `max_steps` tokens (and the
        cross-attention cache for `frames`), so every step after the first has the same shapes; the steps then run
        through `get_compiled_call(compile_config)` (CUDA graphs with the default `reduce-overhead` mode) on an
        accelerator, or anywhere with `transformers_compat.compile_on_every_device(config)`, unless `disable_compile`.
        """
        if generation_config.cache_implementation not in (None, "dynamic", "static"):
            raise ValueError(
                f"cache_implementation={generation_config.cache_implementation!r} is not supported by FireRedASR-AED's"
                " decoding; use 'dynamic' (default) or 'static'"
            )
        if generation_config.cache_implementation != "static":
            return EncoderDecoderCache(DynamicCache(), DynamicCache()), None
        compile_config = generation_config.compile_config
        if freezes_weights(compile_config):
            # The cross-attention cache stays an input of the compiled steps (compiled_decoding.py says why).
            self_attention = kept_static_cache(
                self,
                key=(rows, max_steps, self.device, self.dtype),
                build=lambda: StaticCache(config=self.config, max_cache_len=max_steps),
                every_shape=True,
            )
            cache = EncoderDecoderCache(self_attention, DynamicCache())
        else:
            cache = kept_static_cache(
                self,
                key=(rows, max_steps, frames, self.device, self.dtype),
                build=lambda: EncoderDecoderCache(
                    StaticCache(config=self.config, max_cache_len=max_steps),
                    StaticCache(config=self.config, max_cache_len=frames),
                ),
                every_shape=False,
            )
        if not auto_compile_allowed(self, cache, generation_config):
            return cache, None
        compiled = self.get_compiled_call(compile_config)
        if not freezes_weights(compile_config):
            return cache, compiled
        if not frozen_call_usable(self, compiled):
            return cache, None  # compiled from weights that have changed since (warned)
        return cache, with_inductor_options(compiled, compile_config, self.__call__)

    def _hotword_processors(
        self, hotwords, hotword_score, tokenizer, batch_size: int, num_beams: int, eos_token_id: int
    ) -> list[HotwordLogitsProcessor]:
        """The hotword biasing processor for `generate(hotwords=...)`, or nothing at all without hotwords."""
        if not hotwords_given(hotwords, hotword_score):
            return []
        lists = hotword_lists(hotwords, batch_size, DEFAULT_HOTWORD_SCORE if hotword_score is None else hotword_score)
        tries = token_tries(lists, tokenizer if tokenizer is not None else model_tokenizer(self))
        # One hypothesis per utterance (greedy, sampling) has no rival for a take-back to lose against.
        return [HotwordLogitsProcessor(tries, [eos_token_id], take_back=num_beams > 1)]

    def _ctc_outputs(self, options: dict, encoder_outputs, frame_mask: torch.Tensor) -> dict:
        """`ctc_log_probs` and `encoder_attention_mask` for `output_ctc_log_probs=True` (else nothing)."""
        if not options["output_ctc_log_probs"]:
            return {}
        return {"ctc_log_probs": self.ctc_log_probs(encoder_outputs[0]), "encoder_attention_mask": frame_mask}

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

        `hotwords=["佟健", ("Kubernetes", 3.0), ...]` (or one such list per utterance) biases every decoding mode
        towards those phrases by `hotword_score` (default 2.0) per matched token (see `hotwords.py`); phrases are
        tokenized with `tokenizer=` (default: the tokenizer saved with the model).
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
        hotwords, hotword_score = kwargs.pop("hotwords", None), kwargs.pop("hotword_score", None)
        tokenizer = kwargs.pop("tokenizer", None)  # also transformers' own argument (stop_strings): passed back
        model_kwargs = generation_config.update(**kwargs)

        encoder_outputs = model_kwargs.pop("encoder_outputs", None)
        if encoder_outputs is None:
            if input_features is None:
                raise ValueError("generate() needs input_features (or encoder_outputs)")
            check_input_features(input_features, self.config.encoder_config.num_mel_bins)
            encoder_outputs = encode_in_length_batches(
                self.get_encoder(), input_features, attention_mask, options["encoder_batch_frames"]
            )
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
        biasing = self._hotword_processors(hotwords, hotword_score, tokenizer, len(limits), num_beams, eos_token_id)

        if options["original_beam_search"] and not generation_config.do_sample:
            refuse_unused_kwargs(model_kwargs)
            cache, step_forward = self._decoding_cache(
                generation_config,
                rows=num_beams * len(limits),
                max_steps=int(limits.max()),
                frames=frame_mask.shape[1],
            )
            return_dict = bool(generation_config.return_dict_in_generate)
            if options["output_ctc_log_probs"]:
                if not return_dict:
                    raise ValueError("output_ctc_log_probs=True needs return_dict_in_generate=True")
                if getattr(self, "ctc_head", None) is None:
                    self.ctc_log_probs(encoder_outputs[0])  # raises the no-CTC-head error before decoding
            sequences, scores, *token_scores = original_beam_search(
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
                cache=cache,
                step_forward=step_forward,
                # Uncompiled steps sync anyway (transformers' mask creation looks at the masks on the host).
                check_every=1 if step_forward is None or self.device.type == "cpu" else _CHECK_EVERY_ON_ACCELERATORS,
                logits_processor=LogitsProcessorList([*(logits_processor or []), *biasing]),
                return_token_scores=return_dict,
            )
            if return_dict:
                token_scores = token_scores[0]
                real = sequences[:, 1:].ne(setting("pad_token_id"))
                confidence = (token_scores.exp() * real).sum(-1) / real.sum(-1).clamp_min(1)
                return FireRedAedGenerateOutput(
                    sequences=sequences,
                    sequences_scores=scores,
                    token_scores=token_scores,
                    confidence=confidence,
                    **self._ctc_outputs(options, encoder_outputs, frame_mask),
                )
            return sequences

        if options["output_ctc_log_probs"]:
            raise ValueError(
                "output_ctc_log_probs is returned by FireRedASR's original decoding; transformers' own search "
                "(original_beam_search=False or sampling) does not return it"
            )
        processors = LogitsProcessorList(logits_processor or [])
        if options["softmax_smoothing"] != 1.0 or options["eos_penalty"] != 1.0:
            processors.append(
                SmoothedLogSoftmaxProcessor(options["softmax_smoothing"], eos_token_id, options["eos_penalty"])
            )
        processors.extend(biasing)  # after the smoothing and the eos penalty, as in the original beam search
        if tokenizer is not None:
            model_kwargs["tokenizer"] = tokenizer
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


__all__ = [
    "FireRedAedGenerateOutput",
    "FireRedAedGenerationMixin",
    "SmoothedLogSoftmaxProcessor",
    "original_beam_search",
]
