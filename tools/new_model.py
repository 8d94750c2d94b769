"""What a FireRedASR-AED trained from nothing (the demo model) needs before its first step: a character vocabulary
built from the transcripts and global CMVN measured on the audio. `examples/finetune_aed.py` uses them when it has no
`--model_name_or_path`; fine-tuning a converted model reuses that model's `dict.txt` and CMVN instead."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from transformers_fireredasr import FireRedAsrFeatureExtractor

SPECIAL_TOKENS = ("<blank>", "<unk>", "<pad>", "<sos>", "<eos>", "<space>")


def write_char_vocab(texts: Sequence[str], path: str | Path) -> Path:
    """Writes a FireRedASR `dict.txt` for training from scratch: the original's special tokens (ids 0-4 as in the
    release: `<blank> <unk> <pad> <sos> <eos>`), `<space>`, then every distinct non-space character of `texts`."""
    chars = sorted({char for text in texts for char in text if not char.isspace()})
    tokens = list(SPECIAL_TOKENS) + [char for char in chars if char not in SPECIAL_TOKENS]
    path = Path(path)
    path.write_text("".join(f"{token} {index}\n" for index, token in enumerate(tokens)), encoding="utf-8")
    return path


def fit_cmvn(feature_extractor: FireRedAsrFeatureExtractor, audio: Sequence[np.ndarray]) -> FireRedAsrFeatureExtractor:
    """A copy of `feature_extractor` whose global CMVN (per-bin mean and 1/std) is measured on `audio` (16 kHz)."""
    if not audio:
        raise ValueError("fit_cmvn needs at least one waveform")
    settings = {key: value for key, value in feature_extractor.to_dict().items() if key != "feature_extractor_type"}
    plain = FireRedAsrFeatureExtractor(**{**settings, "cmvn_mean": None, "cmvn_istd": None})
    total, total_sq, count = 0.0, 0.0, 0
    for waveform in audio:
        features = plain(waveform, sampling_rate=plain.sampling_rate, return_tensors="pt")["input_features"][0]
        features = features.double()
        total, total_sq, count = total + features.sum(0), total_sq + (features**2).sum(0), count + len(features)
    mean = total / count
    std = (total_sq / count - mean**2).clamp_min(1e-20).sqrt()
    return FireRedAsrFeatureExtractor(**{**settings, "cmvn_mean": mean.tolist(), "cmvn_istd": (1.0 / std).tolist()})


__all__ = ["SPECIAL_TOKENS", "fit_cmvn", "write_char_vocab"]
