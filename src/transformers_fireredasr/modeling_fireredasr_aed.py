"""FireRedASR-AED: the Conformer encoder and a pre-LN Transformer decoder with self- and cross-attention KV caching."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from transformers.cache_utils import Cache, DynamicCache, EncoderDecoderCache
from transformers.masking_utils import create_bidirectional_mask, create_causal_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutputWithPastAndCrossAttentions,
    Seq2SeqLMOutput,
    Seq2SeqModelOutput,
)
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils.generic import can_return_tuple, merge_with_config_defaults
from transformers.utils.output_capturing import OutputRecorder, capture_outputs

from .configuration_fireredasr import FireRedAedConfig
from .generation_fireredasr import FireRedAedGenerationMixin
from .modeling_conformer import (
    FireRedConformerEncoder,
    FireRedConformerEncoderOutput,
    FireRedConformerPreTrainedModel,
    eager_attention_forward,
    encoder_frame_mask,
    sinusoid_encoding,
)
from .transformers_compat import accepts_legacy_cache_name, cache_kwarg, output_cache


def shift_tokens_right(labels: torch.Tensor, pad_token_id: int, decoder_start_token_id: int) -> torch.Tensor:
    """Decoder inputs for teacher forcing: `<sos>` + labels[:-1], with -100 replaced by the pad id."""
    shifted = labels.new_zeros(labels.shape)
    shifted[:, 1:] = labels[:, :-1].clone()
    shifted[:, 0] = decoder_start_token_id
    return shifted.masked_fill(shifted == -100, pad_token_id)


class FireRedAedAttention(nn.Module):
    """Decoder multi-head attention (self or cross); the key projection has no bias, as in the original."""

    def __init__(self, config: FireRedAedConfig, layer_idx: int, is_causal: bool):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.is_causal = is_causal
        self.num_heads = config.decoder_attention_heads
        self.head_dim = config.d_model // self.num_heads
        self.scaling = self.head_dim**-0.5
        self.q_proj = nn.Linear(config.d_model, config.d_model)
        self.k_proj = nn.Linear(config.d_model, config.d_model, bias=False)
        self.v_proj = nn.Linear(config.d_model, config.d_model)
        self.o_proj = nn.Linear(config.d_model, config.d_model)

    def forward(
        self,
        hidden_states: torch.Tensor,
        key_value_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, length, _ = hidden_states.shape
        query = self.q_proj(hidden_states).view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

        is_cross_attention = key_value_states is not None
        is_updated = False
        if isinstance(cache, EncoderDecoderCache):
            if is_cross_attention:
                is_updated = cache.is_updated.get(self.layer_idx)
                cache.is_updated[self.layer_idx] = True
                cache = cache.cross_attention_cache
            else:
                cache = cache.self_attention_cache

        if is_cross_attention and cache is not None and is_updated:
            key, value = cache.layers[self.layer_idx].keys, cache.layers[self.layer_idx].values
        else:
            source = key_value_states if is_cross_attention else hidden_states
            key = self.k_proj(source).view(source.shape[0], -1, self.num_heads, self.head_dim).transpose(1, 2)
            value = self.v_proj(source).view(source.shape[0], -1, self.num_heads, self.head_dim).transpose(1, 2)
            if cache is not None:
                key, value = cache.update(key, value, self.layer_idx)

        # Rows that share one encoder row (the beams of one utterance, consecutive) attend to it as one row with
        # `group * length` queries: its keys and values are projected, cached and read once, not once per beam.
        group = batch // key.shape[0]
        if group > 1:
            query = query.reshape(key.shape[0], group, self.num_heads, length, self.head_dim).transpose(1, 2)
            query = query.reshape(key.shape[0], self.num_heads, group * length, self.head_dim)
            if attention_mask is not None:  # the encoder mask is the same for every query
                attention_mask = attention_mask[:, :, :1]

        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        attn_output, attn_weights = attention_interface(
            self,
            query,
            key,
            value,
            attention_mask,
            dropout=self.config.attention_dropout if self.training else 0.0,
            scaling=self.scaling,
            is_causal=self.is_causal and attention_mask is None and length > 1,
            **kwargs,
        )
        if group > 1 and attn_weights is not None:  # back to one row per query row, like the output
            attn_weights = attn_weights.reshape(key.shape[0], self.num_heads, group, length, -1).transpose(1, 2)
            attn_weights = attn_weights.reshape(batch, self.num_heads, length, -1)
        return self.o_proj(attn_output.reshape(batch, length, -1)), attn_weights


class FireRedAedDecoderLayer(GradientCheckpointingLayer):
    """Pre-LN block: self-attention, cross-attention over the encoder output, GELU feed-forward."""

    def __init__(self, config: FireRedAedConfig, layer_idx: int):
        super().__init__()
        self.self_attn_layer_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.self_attn = FireRedAedAttention(config, layer_idx, is_causal=True)
        self.encoder_attn_layer_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.encoder_attn = FireRedAedAttention(config, layer_idx, is_causal=False)
        self.final_layer_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.fc1 = nn.Linear(config.d_model, config.decoder_ffn_dim)
        self.fc2 = nn.Linear(config.decoder_ffn_dim, config.d_model)
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        **kwargs,
    ) -> torch.Tensor:
        attn_output, _ = self.self_attn(
            self.self_attn_layer_norm(hidden_states),
            attention_mask=attention_mask,
            cache=cache,
            **kwargs,
        )
        hidden_states = hidden_states + self.dropout(attn_output)
        attn_output, _ = self.encoder_attn(
            self.encoder_attn_layer_norm(hidden_states),
            key_value_states=encoder_hidden_states,
            attention_mask=encoder_attention_mask,
            cache=cache,
            **kwargs,
        )
        hidden_states = hidden_states + self.dropout(attn_output)
        feed_forward = self.fc2(nn.functional.gelu(self.fc1(self.final_layer_norm(hidden_states))))
        return hidden_states + self.dropout(feed_forward)


class FireRedAedPreTrainedModel(FireRedConformerPreTrainedModel):
    """Shared flags of the AED models: config class, splittable blocks, attention backends."""

    config: FireRedAedConfig
    config_class = FireRedAedConfig
    base_model_prefix = "model"
    _no_split_modules = ["FireRedConformerBlock", "FireRedAedDecoderLayer"]
    _can_compile_fullgraph = False


class FireRedAedDecoder(FireRedAedPreTrainedModel):
    """Token embedding x sqrt(d_model) + sinusoidal positions, pre-LN blocks, final LayerNorm."""

    main_input_name = "input_ids"
    _can_record_outputs = {
        "hidden_states": FireRedAedDecoderLayer,
        "attentions": OutputRecorder(FireRedAedAttention, index=1, layer_name="self_attn"),
        "cross_attentions": OutputRecorder(FireRedAedAttention, index=1, layer_name="encoder_attn"),
    }

    def __init__(self, config: FireRedAedConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.d_model, config.pad_token_id)
        self.embed_scale = config.d_model**0.5
        self.dropout = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList(FireRedAedDecoderLayer(config, i) for i in range(config.decoder_layers))
        self.norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed_tokens = value

    @accepts_legacy_cache_name
    @merge_with_config_defaults
    @capture_outputs
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPastAndCrossAttentions:
        """
        Args:
            input_ids: `(batch, tokens)` decoder tokens (starting with `<sos>`).
            attention_mask: `(batch, past + tokens)`, 0 for decoder positions that may not be attended.
            encoder_hidden_states: `(batch, frames, d_model)` encoder output.
            encoder_attention_mask: `(batch, frames)`, 1 for real encoder frames.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Specify exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        if use_cache and cache is None:
            cache = EncoderDecoderCache(DynamicCache(config=self.config), DynamicCache(config=self.config))
        if position_ids is None:
            past_seen = cache.get_seq_length() if cache is not None else 0
            position_ids = torch.arange(inputs_embeds.shape[1], device=inputs_embeds.device).unsqueeze(0) + past_seen

        causal_mask = create_causal_mask(
            config=self.config,
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            **cache_kwarg(cache),
        )
        encoder_mask = create_bidirectional_mask(
            config=self.config,
            inputs_embeds=inputs_embeds,
            attention_mask=encoder_attention_mask,
            encoder_hidden_states=encoder_hidden_states,
        )
        positions = sinusoid_encoding(position_ids, self.config.d_model).to(inputs_embeds.dtype)
        hidden_states = self.dropout(inputs_embeds * self.embed_scale + positions)
        for layer in self.layers:
            hidden_states = layer(
                hidden_states,
                causal_mask,
                encoder_hidden_states,
                encoder_attention_mask=encoder_mask,
                cache=cache,
                **kwargs,
            )
        return BaseModelOutputWithPastAndCrossAttentions(
            last_hidden_state=self.norm(hidden_states),
            **cache_kwarg(cache if use_cache else None),
        )


class FireRedAedModel(FireRedAedPreTrainedModel):
    """Encoder + decoder, returning the decoder's last hidden state."""

    main_input_name = "input_features"

    def __init__(self, config: FireRedAedConfig):
        super().__init__(config)
        self.encoder = FireRedConformerEncoder(config.encoder_config)
        self.decoder = FireRedAedDecoder(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.decoder.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.decoder.embed_tokens = value

    def get_encoder(self, modality: str | None = None) -> FireRedConformerEncoder:
        return self.encoder

    def freeze_encoder(self) -> None:
        """Stops gradients into the encoder (e.g. to fine-tune the decoder only)."""
        for parameter in self.encoder.parameters():
            parameter.requires_grad = False

    @accepts_legacy_cache_name
    @can_return_tuple
    def forward(
        self,
        input_features: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: FireRedConformerEncoderOutput | tuple | None = None,
        cache: Cache | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        decoder_position_ids: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        **kwargs,
    ) -> Seq2SeqModelOutput:
        if encoder_outputs is None:
            if input_features is None:
                raise ValueError("Pass input_features (or precomputed encoder_outputs)")
            encoder_outputs = self.encoder(input_features, attention_mask=attention_mask, **kwargs)
        decoder_outputs = self.decoder(
            input_ids=decoder_input_ids,
            attention_mask=decoder_attention_mask,
            encoder_hidden_states=encoder_outputs[0],
            encoder_attention_mask=encoder_frame_mask(encoder_outputs, attention_mask),
            cache=cache,
            inputs_embeds=decoder_inputs_embeds,
            position_ids=decoder_position_ids,
            use_cache=use_cache,
            **kwargs,
        )
        return Seq2SeqModelOutput(
            last_hidden_state=decoder_outputs.last_hidden_state,
            **cache_kwarg(output_cache(decoder_outputs)),
            decoder_hidden_states=decoder_outputs.hidden_states,
            decoder_attentions=decoder_outputs.attentions,
            cross_attentions=decoder_outputs.cross_attentions,
            encoder_last_hidden_state=encoder_outputs[0],
            encoder_hidden_states=getattr(encoder_outputs, "hidden_states", None),
            encoder_attentions=getattr(encoder_outputs, "attentions", None),
        )


@dataclass
class FireRedAedSeq2SeqLMOutput(Seq2SeqLMOutput):
    """`Seq2SeqLMOutput` plus, for a model with a CTC head, the CTC log-probs of the encoder frames.

    Args:
        ctc_log_probs (`torch.FloatTensor` of shape `(batch, encoder_frames, vocab_size)`): float32
            `log_softmax(ctc_head(encoder output))`, blank = `config.blank_token_id`; set when the model has a CTC
            head and the encoder ran in this call (decoding steps that reuse `encoder_outputs` skip it).
        encoder_attention_mask (`torch.BoolTensor` of shape `(batch, encoder_frames)`): the real encoder frames.
    """

    ctc_log_probs: torch.FloatTensor | None = None
    encoder_attention_mask: torch.BoolTensor | None = None


class FireRedAedForConditionalGeneration(FireRedAedGenerationMixin, FireRedAedPreTrainedModel):
    """FireRedASR-AED with its output projection (tied to the token embedding), loss and `generate()`.

    With `config.ctc_head` (FireRedASR2-AED, the bundled demo) it also has a CTC head on the encoder output, whose
    log-probs time the decoded tokens (`alignment.py`); the decoder never uses it.
    """

    _tied_weights_keys = {"proj_out.weight": "model.decoder.embed_tokens.weight"}

    def __init__(self, config: FireRedAedConfig):
        super().__init__(config)
        self.model = FireRedAedModel(config)
        self.proj_out = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.ctc_head = nn.Linear(config.d_model, config.vocab_size, bias=True) if config.ctc_head else None
        self.post_init()

    def ctc_log_probs(self, encoder_hidden_states: torch.Tensor) -> torch.Tensor:
        """float32 CTC log-probs `(batch, frames, vocab)` of an encoder output; ValueError without a CTC head."""
        if self.ctc_head is None:
            raise ValueError(
                "this model has no CTC head (config.ctc_head is False): CTC log-probs and word/char timestamps need "
                "one, as FireRedASR2-AED and the bundled demo have; use return_timestamps=True for segment times"
            )
        return self.ctc_head(encoder_hidden_states).float().log_softmax(-1)

    def get_output_embeddings(self) -> nn.Linear:
        return self.proj_out

    def set_output_embeddings(self, new_embeddings: nn.Linear) -> None:
        self.proj_out = new_embeddings

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.get_input_embeddings()

    def get_encoder(self, modality: str | None = None) -> FireRedConformerEncoder:
        return self.model.encoder

    def freeze_encoder(self) -> None:
        """Stops gradients into the encoder (e.g. to fine-tune the decoder only)."""
        self.model.freeze_encoder()

    @accepts_legacy_cache_name
    @can_return_tuple
    def forward(
        self,
        input_features: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: FireRedConformerEncoderOutput | tuple | None = None,
        cache: Cache | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        decoder_position_ids: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        labels: torch.LongTensor | None = None,
        **kwargs,
    ) -> Seq2SeqLMOutput:
        """
        Args:
            input_features: `(batch, frames, 80)` from [`FireRedAsrFeatureExtractor`].
            attention_mask: `(batch, frames)` fbank frame mask.
            labels: `(batch, tokens)` target ids ending with `<eos>`, -100 where ignored; the decoder inputs are
                `<sos>` + labels shifted right, and the loss is the mean token cross-entropy.
        """
        encoder_ran = encoder_outputs is None
        if labels is not None and decoder_input_ids is None and decoder_inputs_embeds is None:
            decoder_input_ids = shift_tokens_right(
                labels, self.config.pad_token_id, self.config.decoder_start_token_id
            )
        outputs = self.model(
            input_features,
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask,
            encoder_outputs=encoder_outputs,
            cache=cache,
            decoder_inputs_embeds=decoder_inputs_embeds,
            decoder_position_ids=decoder_position_ids,
            use_cache=use_cache,
            **kwargs,
        )
        logits = self.proj_out(outputs.last_hidden_state)
        loss = None
        if labels is not None:
            # Labels are already aligned with the logits (the decoder inputs were shifted), hence `shift_labels`.
            loss = self.loss_function(
                logits=logits, labels=None, vocab_size=self.config.vocab_size, shift_labels=labels, **kwargs
            )
        ctc_log_probs, encoder_mask = None, None
        if self.ctc_head is not None and encoder_ran:
            ctc_log_probs = self.ctc_log_probs(outputs.encoder_last_hidden_state)
            encoder_mask = encoder_frame_mask((outputs.encoder_last_hidden_state,), attention_mask)
        return FireRedAedSeq2SeqLMOutput(
            loss=loss,
            logits=logits,
            **cache_kwarg(output_cache(outputs)),
            decoder_hidden_states=outputs.decoder_hidden_states,
            decoder_attentions=outputs.decoder_attentions,
            cross_attentions=outputs.cross_attentions,
            encoder_last_hidden_state=outputs.encoder_last_hidden_state,
            encoder_hidden_states=outputs.encoder_hidden_states,
            encoder_attentions=outputs.encoder_attentions,
            ctc_log_probs=ctc_log_probs,
            encoder_attention_mask=encoder_mask,
        )


__all__ = [
    "FireRedAedSeq2SeqLMOutput",
    "FireRedAedDecoder",
    "FireRedAedForConditionalGeneration",
    "FireRedAedModel",
    "FireRedAedPreTrainedModel",
    "shift_tokens_right",
]
