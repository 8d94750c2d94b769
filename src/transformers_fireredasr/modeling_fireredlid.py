"""FireRedLID: FireRedASR2S's spoken-language identifier, the AED model over language labels.

Its checkpoint is the FireRedASR Conformer encoder plus a Transformer decoder whose vocabulary is language and dialect
labels, so the model is [`FireRedAedForConditionalGeneration`] with its own config: the same encoder and decoder
classes, the tied output projection, and `generate()` with the original beam search. The converter writes
upstream's decoding settings into the generation config (beam 3, at most 2 labels, softmax smoothing 1.25, GNMT
length penalty 0.6). `identify()` runs that search and scores each hypothesis as upstream does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.utils import ModelOutput

from .configuration_fireredlid import FireRedLidConfig
from .modeling_fireredasr_aed import FireRedAedForConditionalGeneration


@dataclass
class FireRedLidOutput(ModelOutput):
    """What [`FireRedLidForConditionalGeneration.identify`] returns, `top_k` hypotheses per input, best first.

    Args:
        label_ids (`torch.LongTensor` of shape `(batch, top_k, labels)`): each hypothesis' label ids (no start token,
            no `<eos>`), right-padded with `pad_token_id`; `label_mask` says which positions are labels.
        label_mask (`torch.BoolTensor` of shape `(batch, top_k, labels)`): True at real labels.
        confidence (`torch.FloatTensor` of shape `(batch, top_k)`): upstream's confidence, the mean probability of
            the hypothesis' labels (`<eos>` not counted); 0 for an empty hypothesis.
        sequences_scores (`torch.FloatTensor` of shape `(batch, top_k)`): the search's length-penalised log-probs,
            which rank the hypotheses.
    """

    label_ids: torch.LongTensor | None = None
    label_mask: torch.BoolTensor | None = None
    confidence: torch.FloatTensor | None = None
    sequences_scores: torch.FloatTensor | None = None


def label_confidence(
    sequences: torch.Tensor, token_scores: torch.Tensor, eos_token_id: int, pad_token_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """`(label_mask, confidence)` of generated `sequences` (start token first, right-padded) and their
    `token_scores` (the original search's step log-probs, aligned with `sequences[:, 1:]`): the labels are the tokens
    before the first `<eos>` (padding left out), and the confidence is the mean of their probabilities, as upstream's
    FireRedLID computes it."""
    generated = sequences[:, 1:]
    mask = generated.eq(eos_token_id).long().cumsum(-1).eq(0) & generated.ne(pad_token_id)
    count = mask.sum(-1)
    confidence = (token_scores.float().exp() * mask).sum(-1) / count.clamp_min(1)
    return mask, torch.where(count > 0, confidence, 0.0)


class FireRedLidForConditionalGeneration(FireRedAedForConditionalGeneration):
    """FireRedLID: [`FireRedAedForConditionalGeneration`] over language labels, with `identify()`."""

    config: FireRedLidConfig
    config_class = FireRedLidConfig

    @torch.no_grad()
    def identify(
        self,
        input_features: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        top_k: int = 1,
        **generate_kwargs,
    ) -> FireRedLidOutput:
        """The `top_k` best label sequences of each input (`top_k` <= the beam width) with their confidences.

        Decodes with the generation config's settings (the converter writes upstream's); `generate_kwargs` override
        them. `encoder_outputs=` (instead of `input_features`) decodes an encoder output computed elsewhere, such as
        an ASR model's whose encoder weights and CMVN equal this model's (`shares_encoder`). Decode
        `label_ids[i, k][label_mask[i, k]]` with the tokenizer to get text such as `zh mandarin`.
        """
        output = self.generate(
            input_features,
            attention_mask=attention_mask,
            num_return_sequences=top_k,
            return_dict_in_generate=True,
            **generate_kwargs,
        )
        eos_token_id = self.generation_config.eos_token_id
        if eos_token_id is None:
            eos_token_id = self.config.eos_token_id
        if isinstance(eos_token_id, (list, tuple)):
            eos_token_id = eos_token_id[0]
        mask, confidence = label_confidence(
            output.sequences, output.token_scores, eos_token_id, self.config.pad_token_id
        )
        labels = output.sequences[:, 1:].masked_fill(~mask, self.config.pad_token_id)
        batch = len(output.sequences) // top_k
        return FireRedLidOutput(
            label_ids=labels.view(batch, top_k, -1),
            label_mask=mask.view(batch, top_k, -1),
            confidence=confidence.view(batch, top_k),
            sequences_scores=output.sequences_scores.view(batch, top_k),
        )


def shares_encoder(model, other, feature_extractor=None, other_feature_extractor=None) -> bool:
    """Whether `model` and `other` (FireRedASR-AED and FireRedLID, say) have the same encoder: equal encoder configs
    and weights and, when given, feature extractors with equal CMVN. Then one encoder pass serves both: pass its
    output as `encoder_outputs=` to the other's `generate` or `identify`."""
    if feature_extractor is not None and other_feature_extractor is not None:
        statistics = ("feature_size", "cmvn_mean", "cmvn_istd", "frame_length_ms", "frame_shift_ms", "preemphasis")
        if any(getattr(feature_extractor, k) != getattr(other_feature_extractor, k) for k in statistics):
            return False
    encoder, other_encoder = model.get_encoder(), other.get_encoder()
    sizes = ("num_mel_bins", "hidden_size", "num_hidden_layers", "num_attention_heads", "conv_kernel_size")
    if any(getattr(encoder.config, k) != getattr(other_encoder.config, k) for k in (*sizes, "layer_norm_eps")):
        return False
    weights, other_weights = encoder.state_dict(), other_encoder.state_dict()
    return weights.keys() == other_weights.keys() and all(
        weights[key].shape == other_weights[key].shape
        and torch.equal(weights[key], other_weights[key].to(weights[key]))
        for key in weights
    )


__all__ = ["FireRedLidForConditionalGeneration", "FireRedLidOutput", "label_confidence", "shares_encoder"]
