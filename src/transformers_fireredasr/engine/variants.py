"""What each FireRedASR variant does differently, read from its config in one place: its segment limit, whether
it decodes with the original's own search (token scores, encoder sub-batches), and whether it decodes an encoder
output computed beforehand."""

from __future__ import annotations

from typing import Any

# The longest audio each variant decodes at once comes from its config's `max_segment_seconds`; these are the
# original's limits for a config that does not state one (converted before it existed): FireRedASR-AED and
# FireRedASR2-AED 60 s, FireRedASR-LLM 30 s. FireRedASR2-LLM's 40 s is written into its config by the converter
# (`conversion/llm.py`), so it never falls back on the LLM's 30 s here.
MAX_SEGMENT_SECONDS = {"fireredasr_aed": 60.0, "fireredasr_llm": 30.0}
# Segments shorter than this (a sliver left by fixed-size chunking) carry no speech worth decoding.
MIN_SEGMENT_SECONDS = 0.1


def is_fireredasr(config: Any) -> bool:
    """Whether `config` (a model's) is a FireRedASR model's."""
    return getattr(config, "model_type", None) in MAX_SEGMENT_SECONDS


def max_segment_seconds(config: Any) -> float:
    """The longest audio the model decodes at once: its config's `max_segment_seconds`, else the original's limit."""
    return float(getattr(config, "max_segment_seconds", None) or MAX_SEGMENT_SECONDS.get(config.model_type, 30.0))


def uses_original_search(config: Any) -> bool:
    """Whether `generate` runs the original AED search, which returns token scores and CTC log-probs and encodes a
    large batch in length-sorted sub-batches (the LLM variant decodes with transformers' search)."""
    return config.model_type == "fireredasr_aed"


def decodes_encoder_outputs(config: Any) -> bool:
    """Whether `generate` takes an encoder output computed beforehand (`encoder_outputs=`), so that one encoder pass
    can also serve a language model with the same encoder (the AED; the LLM variant's generate encodes and adapts
    its features itself)."""
    return config.model_type == "fireredasr_aed"


def spells_hotwords_in_tokens(config: Any) -> bool:
    """Whether hotwords are matched as token ids (the AED) rather than as decoded text (the LLM)."""
    return config.model_type == "fireredasr_aed"


__all__ = [
    "MAX_SEGMENT_SECONDS",
    "MIN_SEGMENT_SECONDS",
    "decodes_encoder_outputs",
    "is_fireredasr",
    "max_segment_seconds",
    "spells_hotwords_in_tokens",
    "uses_original_search",
]
