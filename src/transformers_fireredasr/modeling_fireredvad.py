"""FireRedVAD's DFSMN: fbank frames -> one sigmoid per 10 ms frame (speech; or speech, singing and music).

A DFSMN is feed-forward layers with "memory" blocks between them: each memory block adds to its input a depthwise
convolution over the past `lookback_order` frames (the current one included) and, unless the model streams, over the
next `lookahead_order` frames. Nothing is recurrent, so a whole recording is scored in one pass; a streaming model
(no lookahead) scores a recording chunk by chunk when each call hands the next its `caches`: the last
`(lookback_order - 1) * lookback_stride` inputs of every memory block.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .configuration_fireredvad import FireRedVadConfig


@dataclass
class FireRedVadOutput(ModelOutput):
    """
    Args:
        logits (`torch.FloatTensor` of shape `(batch, frames, num_labels)`): scores before the sigmoid.
        probabilities (`torch.FloatTensor` of shape `(batch, frames, num_labels)`): the sigmoid of `logits`, in float32.
        caches (`tuple(torch.FloatTensor)`, *optional*): with `use_cache=True`, one `(batch, projection_size, frames)`
            tensor per memory block, to pass as `caches` to the call that scores the frames that follow.
    """

    logits: torch.FloatTensor | None = None
    probabilities: torch.FloatTensor | None = None
    caches: tuple[torch.FloatTensor, ...] | None = None


class FireRedVadMemory(nn.Module):
    """An FSMN memory block: `x + lookback(x) + lookahead(x)`, depthwise over time, padded frames kept at zero."""

    def __init__(self, config: FireRedVadConfig):
        super().__init__()
        size = config.projection_size
        self.lookback_order, self.lookback_stride = config.lookback_order, config.lookback_stride
        self.lookahead_order, self.lookahead_stride = config.lookahead_order, config.lookahead_stride
        self.context = config.cache_frames
        self.lookback = nn.Conv1d(
            size,
            size,
            self.lookback_order,
            padding=self.context,
            dilation=self.lookback_stride,
            groups=size,
            bias=False,
        )
        self.lookahead = None
        if self.lookahead_order > 0:
            self.lookahead = nn.Conv1d(
                size,
                size,
                self.lookahead_order,
                padding=(self.lookahead_order - 1) * self.lookahead_stride,
                dilation=self.lookahead_stride,
                groups=size,
                bias=False,
            )

    def forward(
        self, hidden: torch.Tensor, padding: torch.Tensor | None = None, cache: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`hidden` `(batch, frames, size)`, `padding` `(batch, frames, 1)` True at padded frames, `cache` the previous
        call's last inputs `(batch, size, <= context)`. Returns the memory output and this call's cache."""
        frames = hidden.shape[1]
        if padding is not None:
            hidden = hidden.masked_fill(padding, 0.0)
        current = hidden.transpose(1, 2)  # (batch, size, frames)
        inputs = current if cache is None else torch.cat((cache, current), dim=2)
        new_cache = inputs[:, :, inputs.shape[2] - min(self.context, inputs.shape[2]) :]
        lookback = self.lookback(inputs)[:, :, : inputs.shape[2]]
        if cache is not None:
            lookback = lookback[:, :, cache.shape[2] :]
        memory = current + lookback
        # upstream skips the lookahead for a single frame
        if self.lookahead is not None and frames > 1:
            shift = self.lookahead_order * self.lookahead_stride
            memory = memory + F.pad(self.lookahead(inputs)[:, :, shift:], (0, self.lookahead_stride))
        memory = memory.transpose(1, 2)
        if padding is not None:
            memory = memory.masked_fill(padding, 0.0)
        return memory, new_cache


class FireRedVadInputBlock(nn.Module):
    """The first block: fbank -> hidden (ReLU) -> projection (ReLU) -> memory, without a skip connection."""

    def __init__(self, config: FireRedVadConfig):
        super().__init__()
        self.expand = nn.Linear(config.num_mel_bins, config.hidden_size)
        self.project = nn.Linear(config.hidden_size, config.projection_size)
        self.dropout = nn.Dropout(config.dropout)
        self.memory = FireRedVadMemory(config)

    def forward(self, features, padding=None, cache=None):
        hidden = self.dropout(F.relu(self.expand(features)))
        projected = self.dropout(F.relu(self.project(hidden)))
        return self.memory(projected, padding, cache)


class FireRedVadBlock(nn.Module):
    """A DFSMN block: projection -> hidden (ReLU) -> projection (linear, no bias) -> memory, plus the block's input."""

    def __init__(self, config: FireRedVadConfig):
        super().__init__()
        self.expand = nn.Linear(config.projection_size, config.hidden_size)
        self.project = nn.Linear(config.hidden_size, config.projection_size, bias=False)
        self.dropout = nn.Dropout(config.dropout)
        self.memory = FireRedVadMemory(config)

    def forward(self, hidden, padding=None, cache=None):
        memory, new_cache = self.memory(self.project(self.dropout(F.relu(self.expand(hidden)))), padding, cache)
        return memory + hidden, new_cache


class FireRedVadPreTrainedModel(PreTrainedModel):
    config_class = FireRedVadConfig
    base_model_prefix = "dfsmn"
    main_input_name = "input_features"
    supports_gradient_checkpointing = False

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Conv1d)):
            module.weight.normal_(mean=0.0, std=self.config.initializer_range)
            if module.bias is not None:
                module.bias.zero_()


class FireRedVadForAudioFrameClassification(FireRedVadPreTrainedModel):
    """FireRedVAD: a DFSMN scoring each fbank frame with one sigmoid per label (`config.id2label`)."""

    def __init__(self, config: FireRedVadConfig):
        super().__init__(config)
        self.input_block = FireRedVadInputBlock(config)
        self.blocks = nn.ModuleList(FireRedVadBlock(config) for _ in range(config.num_blocks - 1))
        sizes = [config.projection_size] + [config.hidden_size] * config.num_dnn_layers
        self.dnn = nn.ModuleList(nn.Linear(sizes[i], sizes[i + 1]) for i in range(config.num_dnn_layers))
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_features: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        caches: tuple[torch.Tensor, ...] | list[torch.Tensor] | None = None,
        use_cache: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> FireRedVadOutput | tuple:
        """
        Args:
            input_features (`torch.FloatTensor` of shape `(batch, frames, num_mel_bins)`): CMVN'd fbank frames.
            attention_mask (`torch.Tensor` of shape `(batch, frames)`, *optional*): 1 for real frames, 0 for padding
                (right padding); padded frames are zeroed before and after every memory block, so each item scores as
                it would alone.
            caches (`tuple(torch.FloatTensor)`, *optional*): the previous call's `caches` (streaming).
            use_cache (`bool`, *optional*): return this call's `caches`; defaults to True when `caches` are given.
        """
        if kwargs:
            raise TypeError(f"unexpected arguments: {', '.join(sorted(kwargs))}")
        if input_features.ndim != 3 or input_features.shape[-1] != self.config.num_mel_bins:
            raise ValueError(
                f"input_features must be (batch, frames, {self.config.num_mel_bins}), got {tuple(input_features.shape)}"
            )
        use_cache = caches is not None if use_cache is None else use_cache
        if use_cache and not self.config.is_streaming:
            raise ValueError("only a model without lookahead (lookahead_order=0, the streaming variant) streams")
        return_dict = self.config.return_dict if return_dict is None else return_dict
        padding = None
        if attention_mask is not None and not bool(attention_mask.bool().all()):
            if use_cache:
                raise ValueError(
                    "streaming calls (caches) take unpadded batches: every item the same number of frames"
                )
            padding = ~attention_mask.bool()[..., None]
        if caches is not None and len(caches) != self.config.num_blocks:
            raise ValueError(
                f"caches must hold {self.config.num_blocks} tensors (one per memory block), got {len(caches)}"
            )
        caches = caches if caches is not None else [None] * self.config.num_blocks
        hidden, cache = self.input_block(input_features, padding, caches[0])
        new_caches = [cache]
        for block, block_cache in zip(self.blocks, caches[1:], strict=True):
            hidden, cache = block(hidden, padding, block_cache)
            new_caches.append(cache)
        for layer in self.dnn:
            hidden = self.dropout(F.relu(layer(hidden)))
        logits = self.classifier(hidden)
        probabilities = torch.sigmoid(logits.float())
        output = FireRedVadOutput(
            logits=logits, probabilities=probabilities, caches=tuple(new_caches) if use_cache else None
        )
        return output if return_dict else output.to_tuple()


__all__ = ["FireRedVadForAudioFrameClassification", "FireRedVadOutput", "FireRedVadPreTrainedModel"]
