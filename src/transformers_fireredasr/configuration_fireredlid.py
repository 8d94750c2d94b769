"""Configuration of FireRedLID, FireRedASR2S's spoken-language identifier: the AED's architecture over language
labels."""

from __future__ import annotations

from huggingface_hub.dataclasses import strict

from .configuration_fireredasr import FireRedAedConfig


@strict
class FireRedLidConfig(FireRedAedConfig):
    r"""
    Configuration of FireRedLID: the FireRedASR Conformer encoder and a pre-LN Transformer decoder, exactly the
    [`FireRedAedConfig`] architecture, whose vocabulary is language and dialect labels (`zh`, `en`, `mandarin`,
    `yue`, ...). The decoder writes a short label sequence such as `zh mandarin` (a language, then for Chinese its
    dialect).

    Defaults are the published FireRedLID sizes: 120 labels (`<pad>`=2, `<sos>`=3, `<eos>`=4) and 6 decoder layers;
    the encoder sizes are FireRedASR-L's. The decoding settings (beam 3, at most 2 labels, smoothing 1.25, length
    penalty 0.6) live in the generation config the converter writes.
    """

    model_type = "fireredlid"

    vocab_size: int = 120
    decoder_layers: int = 6


__all__ = ["FireRedLidConfig"]
