"""The FireRedASR Conformer encoder, a `PreTrainedModel` that both the AED and the LLM variant reuse.

Conv2d subsampling (x4) -> N x [0.5 FFN, relative-position MHSA, convolution module, 0.5 FFN, LayerNorm].
Relative positions are computed for any length (the original's fixed 5000-entry table crashes over 200 s).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutput
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils.generic import merge_with_config_defaults
from transformers.utils.output_capturing import capture_outputs

from .configuration_fireredasr import FireRedConformerConfig
from .length_batches import plan_batches

# The original computes the frequency term from a float32 log turned into a Python float; keep the same bits.
_LOG_10000 = torch.log(torch.tensor(10000.0)).item()


def sinusoid_frequencies(dim: int, device: torch.device | None = None) -> torch.Tensor:
    """The `1 / 10000^(2i/dim)` frequencies of the sinusoidal encodings, computed as the original does."""
    return torch.exp(torch.arange(0, dim, 2, device=device).float() * -(_LOG_10000 / dim))


def sinusoid_encoding(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """Interleaved sin/cos encodings of (float) `positions`, shape `positions.shape + (dim,)`."""
    angles = positions.float().unsqueeze(-1) * sinusoid_frequencies(dim, positions.device)
    encoding = torch.zeros(*positions.shape, dim, device=positions.device)
    encoding[..., 0::2] = torch.sin(angles)
    encoding[..., 1::2] = torch.cos(angles)
    return encoding


@dataclass
class FireRedConformerEncoderOutput(BaseModelOutput):
    """Encoder output plus the frame mask after subsampling (what cross-attention and the adapter need)."""

    attention_mask: torch.Tensor | None = None


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain softmax attention; `attention_mask` is an additive float mask or a boolean keep-mask."""
    attn_weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            attention_mask = torch.zeros_like(attention_mask, dtype=attn_weights.dtype).masked_fill(
                ~attention_mask, torch.finfo(attn_weights.dtype).min
            )
        attn_weights = attn_weights + attention_mask
    attn_weights = nn.functional.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    attn_weights = nn.functional.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value).transpose(1, 2).contiguous()
    return attn_output, attn_weights


def check_feature_shape(input_features: torch.Tensor, num_mel_bins: int) -> None:
    """Raises ValueError unless `input_features` is `(batch, frames >= 1, num_mel_bins)`."""
    if input_features.dim() != 3 or input_features.shape[-1] != num_mel_bins:
        raise ValueError(
            f"input_features must have shape (batch, frames, {num_mel_bins}), got {tuple(input_features.shape)}"
        )
    if input_features.shape[1] == 0:
        raise ValueError("input_features have no frames: audio must be at least one 25 ms frame long")


def check_input_features(input_features: torch.Tensor, num_mel_bins: int) -> None:
    """What `generate()` checks once before decoding: the shape, a floating dtype, and no NaN/inf values."""
    check_feature_shape(input_features, num_mel_bins)
    if not torch.is_floating_point(input_features):
        raise ValueError(f"input_features must be floating point, got {input_features.dtype}")
    if not bool(torch.isfinite(input_features).all()):
        raise ValueError("input_features contain NaN or infinite values")


class FireRedConformerSubsampling(nn.Module):
    """Two 3x3 stride-2 convolutions with ReLU, then a projection to the model width (a quarter of the frames)."""

    # Frames of right padding the original appends before subsampling (3 left + 1 + 3 right context, minus one).
    right_context = 6

    def __init__(self, config: FireRedConformerConfig):
        super().__init__()
        channels = config.subsampling_conv_channels
        self.conv1 = nn.Conv2d(1, channels, kernel_size=3, stride=2)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, stride=2)
        freq_bins = ((config.num_mel_bins - 1) // 2 - 1) // 2
        self.out = nn.Linear(channels * freq_bins, config.hidden_size)

    def forward(self, input_features: torch.Tensor, frame_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the subsampled features `(B, T', D)` and the boolean mask `(B, T')` of real frames."""
        features = nn.functional.pad(input_features, (0, 0, 0, self.right_context))
        frame_mask = nn.functional.pad(frame_mask, (0, self.right_context))
        hidden = nn.functional.relu(self.conv1(features.unsqueeze(1)))
        hidden = nn.functional.relu(self.conv2(hidden))
        batch, channels, frames, freq = hidden.shape
        hidden = self.out(hidden.transpose(1, 2).reshape(batch, frames, channels * freq))
        return hidden, frame_mask[:, :-2:2][:, :-2:2]


class FireRedConformerRelPositionalEncoding(nn.Module):
    """Sinusoidal encodings of relative positions T-1 .. -(T-1) (Transformer-XL style), for any T."""

    def __init__(self, config: FireRedConformerConfig):
        super().__init__()
        self.dim = config.hidden_size

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        length = hidden_states.shape[1]
        positions = torch.arange(length - 1, -length, -1, device=hidden_states.device)
        return sinusoid_encoding(positions, self.dim).unsqueeze(0).to(hidden_states.dtype)


class FireRedConformerFeedForward(nn.Module):
    """Pre-LN feed-forward with swish; the block scales its output by 0.5 (macaron style)."""

    def __init__(self, config: FireRedConformerConfig):
        super().__init__()
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.linear1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.linear2 = nn.Linear(config.intermediate_size, config.hidden_size)
        self.activation_dropout = nn.Dropout(config.activation_dropout)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = nn.functional.silu(self.linear1(self.layer_norm(hidden_states)))
        return self.activation_dropout(self.linear2(self.activation_dropout(hidden_states)))


class FireRedConformerAttention(nn.Module):
    """Relative-position multi-head self-attention with separate LayerNorms on query, key and value inputs."""

    def __init__(self, config: FireRedConformerConfig, layer_idx: int):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.is_causal = False
        width = self.num_heads * self.head_dim
        self.q_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.k_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.v_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.q_proj = nn.Linear(config.hidden_size, width, bias=False)
        self.k_proj = nn.Linear(config.hidden_size, width, bias=False)
        self.v_proj = nn.Linear(config.hidden_size, width, bias=False)
        self.o_proj = nn.Linear(width, config.hidden_size, bias=False)
        self.relative_k_proj = nn.Linear(config.hidden_size, width, bias=False)
        self.bias_u = nn.Parameter(torch.zeros(self.num_heads, self.head_dim))
        self.bias_v = nn.Parameter(torch.zeros(self.num_heads, self.head_dim))

    def forward(
        self, hidden_states: torch.Tensor, position_embeddings: torch.Tensor, attention_mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, length, _ = hidden_states.shape
        shape = (batch, length, self.num_heads, self.head_dim)
        query = self.q_proj(self.q_norm(hidden_states)).view(shape).transpose(1, 2)
        key = self.k_proj(self.k_norm(hidden_states)).view(shape).transpose(1, 2)
        value = self.v_proj(self.v_norm(hidden_states)).view(shape).transpose(1, 2)

        relative_key = self.relative_k_proj(position_embeddings).view(1, -1, self.num_heads, self.head_dim)
        position_scores = (query + self.bias_v.unsqueeze(1)) @ relative_key.permute(0, 2, 3, 1)
        position_scores = self._rel_shift(position_scores)[..., :length] * self.scaling
        if attention_mask is not None:
            position_scores = position_scores.masked_fill(
                ~attention_mask[:, None, None, :], torch.finfo(position_scores.dtype).min
            )

        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        # The content term (a)+(c) is computed by the interface, the position term (b)+(d) enters as its mask.
        attn_output, attn_weights = attention_interface(
            self,
            query + self.bias_u.unsqueeze(1),
            key,
            value,
            position_scores,
            dropout=self.config.attention_dropout if self.training else 0.0,
            scaling=self.scaling,
        )
        return self.o_proj(attn_output.reshape(batch, length, -1)), attn_weights

    @staticmethod
    def _rel_shift(scores: torch.Tensor) -> torch.Tensor:
        """Turns scores over relative positions into scores over key positions (Transformer-XL appendix B)."""
        batch, heads, query_len, position_len = scores.shape
        scores = nn.functional.pad(scores, (1, 0)).view(batch, heads, position_len + 1, query_len)
        return scores[:, :, 1:].view(batch, heads, query_len, position_len)


class FireRedConformerConvolution(nn.Module):
    """Pre-LN pointwise conv (x2 for GLU), depthwise conv, LayerNorm, swish, pointwise conv; padding zeroed."""

    def __init__(self, config: FireRedConformerConfig):
        super().__init__()
        width = config.hidden_size
        self.layer_norm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.pointwise_conv1 = nn.Conv1d(width, width * 4, kernel_size=1, bias=False)
        self.depthwise_conv = nn.Conv1d(
            width * 2,
            width * 2,
            config.conv_kernel_size,
            padding=(config.conv_kernel_size - 1) // 2,
            groups=width * 2,
            bias=False,
        )
        self.norm = nn.LayerNorm(width * 2, eps=config.layer_norm_eps)
        self.pointwise_conv2 = nn.Conv1d(width * 2, width, kernel_size=1, bias=False)
        self.dropout = nn.Dropout(config.activation_dropout)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        pad = None if attention_mask is None else ~attention_mask.unsqueeze(1)
        hidden = self.layer_norm(hidden_states).transpose(1, 2)
        if pad is not None:
            hidden = hidden.masked_fill(pad, 0.0)
        hidden = nn.functional.glu(self.pointwise_conv1(hidden), dim=1)
        hidden = self.depthwise_conv(hidden)
        hidden = nn.functional.silu(self.norm(hidden.transpose(1, 2))).transpose(1, 2)
        hidden = self.dropout(self.pointwise_conv2(hidden))
        if pad is not None:
            hidden = hidden.masked_fill(pad, 0.0)
        return hidden.transpose(1, 2)


class FireRedConformerBlock(GradientCheckpointingLayer):
    """One Conformer block: x + 0.5 FFN, x + MHSA, x + Conv, x + 0.5 FFN, LayerNorm."""

    def __init__(self, config: FireRedConformerConfig, layer_idx: int):
        super().__init__()
        self.feed_forward1 = FireRedConformerFeedForward(config)
        self.self_attn = FireRedConformerAttention(config, layer_idx)
        self.conv_module = FireRedConformerConvolution(config)
        self.feed_forward2 = FireRedConformerFeedForward(config)
        self.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout)

    def forward(
        self, hidden_states: torch.Tensor, position_embeddings: torch.Tensor, attention_mask: torch.Tensor | None
    ) -> torch.Tensor:
        hidden_states = hidden_states + 0.5 * self.feed_forward1(hidden_states)
        attn_output, _ = self.self_attn(hidden_states, position_embeddings, attention_mask)
        hidden_states = hidden_states + self.dropout(attn_output)
        hidden_states = hidden_states + self.conv_module(hidden_states, attention_mask)
        hidden_states = hidden_states + 0.5 * self.feed_forward2(hidden_states)
        return self.final_layer_norm(hidden_states)


def init_relative_position_biases(module: nn.Module, std: float) -> None:
    """Initialises the `bias_u`/`bias_v` parameters the generic `_init_weights` does not know."""
    if isinstance(module, FireRedConformerAttention):
        init.normal_(module.bias_u, mean=0.0, std=std)
        init.normal_(module.bias_v, mean=0.0, std=std)


def init_conv_like_torch(module: nn.Conv1d | nn.Conv2d) -> None:
    """PyTorch's default convolution init (Kaiming-uniform, a=sqrt(5); bias U(+-1/sqrt(fan_in))).

    Diverges from transformers' usual N(0, initializer_range) on purpose: the original was trained from PyTorch's
    defaults, and the 1-input-channel subsampling convolution (fan-in 9) at std 0.02 shrinks the audio by orders of magnitude, so a
    model trained from scratch learns to ignore it.
    """
    fan_in = module.weight[0].numel()
    init.kaiming_uniform_(module.weight, a=math.sqrt(5))
    if module.bias is not None:
        bound = 1 / math.sqrt(fan_in)
        init.uniform_(module.bias, -bound, bound)


class FireRedConformerPreTrainedModel(PreTrainedModel):
    """Weight initialisation and attention-backend flags shared by the FireRedASR encoder."""

    config: FireRedConformerConfig
    config_class = FireRedConformerConfig
    base_model_prefix = "encoder"
    main_input_name = "input_features"
    input_modalities = ("audio",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["FireRedConformerBlock"]
    _supports_sdpa = True
    _supports_flex_attn = False

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        init_relative_position_biases(module, getattr(self.config, "initializer_range", 0.02))
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            init_conv_like_torch(module)

    @staticmethod
    def _get_feat_extract_output_lengths(input_lengths: torch.Tensor) -> torch.Tensor:
        """Encoder frames for `input_lengths` fbank frames: ceil(ceil(L / 2) / 2), as the subsampled mask gives."""
        return (input_lengths + 3) // 4


class FireRedConformerEncoder(FireRedConformerPreTrainedModel):
    """The Conformer encoder: fbank frames `(B, T, 80)` -> hidden states `(B, ceil(T/4), D)`."""

    _can_record_outputs = {"hidden_states": FireRedConformerBlock, "attentions": FireRedConformerAttention}

    def __init__(self, config: FireRedConformerConfig):
        super().__init__(config)
        self.subsampling = FireRedConformerSubsampling(config)
        self.positional_encoding = FireRedConformerRelPositionalEncoding(config)
        self.dropout = nn.Dropout(config.hidden_dropout)
        self.layers = nn.ModuleList(FireRedConformerBlock(config, i) for i in range(config.num_hidden_layers))
        self.gradient_checkpointing = False
        self.post_init()

    @merge_with_config_defaults
    @capture_outputs
    def forward(
        self, input_features: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs
    ) -> FireRedConformerEncoderOutput:
        """
        Args:
            input_features: `(batch, frames, num_mel_bins)` normalised fbank features.
            attention_mask: `(batch, frames)`, 1 for real frames, 0 for padding; all frames are real when omitted.
        """
        check_feature_shape(input_features, self.config.num_mel_bins)
        if attention_mask is None:
            attention_mask = torch.ones(input_features.shape[:2], dtype=torch.bool, device=input_features.device)
        elif attention_mask.shape != input_features.shape[:2]:
            raise ValueError(
                f"attention_mask has shape {tuple(attention_mask.shape)} but input_features have "
                f"{tuple(input_features.shape[:2])} (batch, frames)"
            )
        # float32 features from the processor work with a half-precision model as is. The first convolution's dtype
        # is the input's: quantizers replace Linear layers, never this Conv2d.
        input_features = input_features.to(self.subsampling.conv1.weight.dtype)
        hidden_states, mask = self.subsampling(input_features, attention_mask.bool())
        position_embeddings = self.dropout(self.positional_encoding(hidden_states))
        hidden_states = self.dropout(hidden_states)
        for layer in self.layers:
            hidden_states = layer(hidden_states, position_embeddings, mask)
        return FireRedConformerEncoderOutput(last_hidden_state=hidden_states, attention_mask=mask)


def encoder_frame_mask(
    encoder_outputs: FireRedConformerEncoderOutput | tuple, attention_mask: torch.Tensor | None
) -> torch.Tensor | None:
    """The encoder-frame mask: from the encoder output when it carries one, else subsampled from the fbank mask."""
    mask = getattr(encoder_outputs, "attention_mask", None)
    if mask is not None or attention_mask is None:
        return mask
    frames = encoder_outputs[0].shape[1]
    lengths = FireRedConformerPreTrainedModel._get_feat_extract_output_lengths(attention_mask.sum(-1))
    return torch.arange(frames, device=lengths.device)[None, :] < lengths[:, None]


def encode_in_length_batches(
    encoder: FireRedConformerEncoder,
    input_features: torch.Tensor,
    attention_mask: torch.Tensor | None,
    max_frames: int | None,
) -> FireRedConformerEncoderOutput:
    """The encoder output of a batch, computed over length-sorted sub-batches of at most `max_frames` padded fbank
    frames each (count x longest; `None`: the whole batch at once), so that a large batch of mixed lengths (a
    decoding batch, say) pads each utterance only to its neighbours in length.

    Each row's real frames are what the whole batch would give (up to float rounding): padding features are 0, as
    the subsampling's own right context is, and attention and convolutions mask the rest. Frames past a row's
    sub-batch are 0 and masked.
    """
    if max_frames is None or attention_mask is None or len(input_features) < 2:
        return encoder(input_features, attention_mask=attention_mask)
    lengths = attention_mask.sum(dim=-1).tolist()
    batches = plan_batches(lengths, max_frames)
    if len(batches) == 1:
        return encoder(input_features, attention_mask=attention_mask)
    hidden = mask = None
    for batch in batches:
        rows = torch.tensor(batch, device=input_features.device)
        longest = int(lengths[batch[0]])
        output = encoder(input_features[rows, :longest], attention_mask=attention_mask[rows, :longest])
        if hidden is None:  # as many frames as the longest row gives: it is in the first sub-batch
            hidden = output.last_hidden_state.new_zeros(len(input_features), *output.last_hidden_state.shape[1:])
            mask = output.attention_mask.new_zeros(len(input_features), output.attention_mask.shape[1])
        frames = output.last_hidden_state.shape[1]
        hidden[rows, :frames] = output.last_hidden_state
        mask[rows, :frames] = output.attention_mask
    return FireRedConformerEncoderOutput(last_hidden_state=hidden, attention_mask=mask)


__all__ = [
    "FireRedConformerEncoder",
    "FireRedConformerEncoderOutput",
    "FireRedConformerPreTrainedModel",
    "check_feature_shape",
    "check_input_features",
    "encode_in_length_batches",
    "encoder_frame_mask",
    "sinusoid_encoding",
]
