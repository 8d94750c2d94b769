"""Spoken-language identification of speech segments with FireRedLID, for the engine's optional language model.

`LanguageIdentifier` holds a FireRedLID model and its feature extractor and names the language of many pieces of
audio at once: from waveforms (`identify`), or from features another FireRedASR model's feature extractor computed
(`identify_features`: the same Kaldi fbank, so only the CMVN differs, and the features are moved from that
extractor's normalization to this model's instead of computing the fbank again), or from an encoder output another
model computed with this model's encoder (`identify_encoded`: one encoder pass for both). Pieces are decoded in
batches of similar length; each result is upstream's best label sequence (`zh mandarin`) with its confidence.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .length_batches import plan_batches

# The fbank settings two feature extractors must share for one's features to be renormalized into the other's.
FBANK_SETTINGS = ("feature_size", "sampling_rate", "frame_length_ms", "frame_shift_ms", "preemphasis", "dither")


@dataclass(frozen=True)
class Language:
    """One piece's language: upstream's label text (`"zh mandarin"`, `"en"`; "" when the model gave none) and its
    confidence, the mean probability of its labels."""

    label: str
    confidence: float


def _cmvn(feature_extractor) -> tuple[torch.Tensor, torch.Tensor] | None:
    if feature_extractor.cmvn_mean is None:
        return None
    return torch.tensor(feature_extractor.cmvn_mean), torch.tensor(feature_extractor.cmvn_istd)


class LanguageIdentifier:
    """A FireRedLID model and its feature extractor, identifying the language of many pieces in batches of at most
    `batch_size`."""

    def __init__(self, model, feature_extractor, batch_size: int = 16):
        if getattr(model.config, "model_type", None) != "fireredlid":
            raise ValueError(f"not a FireRedLID model (model_type {model.config.model_type!r})")
        self.model = model.eval()
        self.feature_extractor = feature_extractor
        self.batch_size = batch_size

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike[str],
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        batch_size: int = 16,
    ) -> LanguageIdentifier:
        """Loads a FireRedLID model (a folder or Hub id) and its feature extractor. An original FireRedLID release is
        converted once into the cache and reused (`resolve_model`). Raises ValueError for another kind of model."""
        from transformers import AutoConfig

        from .conversion.resolve import resolve_model
        from .feature_extraction_fireredasr import FireRedAsrFeatureExtractor
        from .modeling_fireredlid import FireRedLidForConditionalGeneration

        path = resolve_model(os.fspath(name_or_path))
        model_type = AutoConfig.from_pretrained(path).model_type
        if model_type != "fireredlid":
            raise ValueError(f"{name_or_path} is not a FireRedLID model (model_type {model_type!r})")
        model = FireRedLidForConditionalGeneration.from_pretrained(path, **({"dtype": dtype} if dtype else {}))
        if device is not None:
            model = model.to(device)
        return cls(model, FireRedAsrFeatureExtractor.from_pretrained(path), batch_size=batch_size)

    def identify(self, waveforms: Sequence[np.ndarray]) -> list[Language]:
        """The language of each 16 kHz mono float waveform."""
        rate = self.feature_extractor.sampling_rate
        features = [
            self.feature_extractor(waveform, sampling_rate=rate, return_tensors="pt")["input_features"][0]
            for waveform in waveforms
        ]
        return self.identify_features(features)

    def identify_features(self, features: Sequence[torch.Tensor], feature_extractor=None) -> list[Language]:
        """The language of each piece given as `(frames, bins)` features, computed by `feature_extractor` (None: this
        model's own). Raises ValueError when that extractor's fbank differs from this model's."""
        if feature_extractor is not None and feature_extractor is not self.feature_extractor:
            features = self._renormalized(features, feature_extractor)
        results: list[Language | None] = [None] * len(features)
        for batch in plan_batches([len(piece) for piece in features], None, self.batch_size):
            for index, language in zip(batch, self._identify_batch([features[i] for i in batch]), strict=True):
                results[index] = language
        return results  # type: ignore[return-value]

    def _renormalized(self, features: Sequence[torch.Tensor], source) -> list[torch.Tensor]:
        """`features` normalized by `source`'s CMVN, moved to this model's: the fbank is `x / istd + mean`."""
        differing = [name for name in FBANK_SETTINGS if getattr(source, name) != getattr(self.feature_extractor, name)]
        if differing:
            raise ValueError(
                f"the language model's fbank differs from the transcription model's in {', '.join(differing)}"
            )
        source_cmvn, own_cmvn = _cmvn(source), _cmvn(self.feature_extractor)
        if source_cmvn is not None and own_cmvn is not None and all(map(torch.equal, source_cmvn, own_cmvn)):
            return list(features)
        moved = []
        for piece in features:
            fbank = piece.float()
            if source_cmvn is not None:
                fbank = fbank / source_cmvn[1] + source_cmvn[0]
            if own_cmvn is not None:
                fbank = (fbank - own_cmvn[0]) * own_cmvn[1]
            moved.append(fbank)
        return moved

    @torch.no_grad()
    def _identify_batch(self, features: list[torch.Tensor]) -> list[Language]:
        padded = self.feature_extractor.pad(
            [{"input_features": piece} for piece in features],
            padding="longest",
            return_attention_mask=True,
            return_tensors="pt",
        )
        output = self.model.identify(
            padded["input_features"].to(self.model.device, self.model.dtype),
            attention_mask=padded["attention_mask"].to(self.model.device),
        )
        return self._languages(output)

    @torch.no_grad()
    def identify_encoded(self, encoder_outputs) -> list[Language]:
        """The language of each row of an encoder output computed elsewhere: by another model whose encoder weights
        and features are this model's (`modeling_fireredlid.shares_encoder`), so that one encoder pass serves both.
        `encoder_outputs` carries `last_hidden_state` `(rows, frames, hidden)` and its frame `attention_mask`."""
        return self._languages(self.model.identify(encoder_outputs=encoder_outputs))

    def _languages(self, output) -> list[Language]:
        """Each input's best hypothesis of `identify()`'s output, as a `Language`."""
        names = self.model.config.id2label
        languages = []
        best = zip(output.label_ids[:, 0], output.label_mask[:, 0], output.confidence[:, 0], strict=True)
        for ids, mask, confidence in best:
            languages.append(Language(" ".join(names[index] for index in ids[mask].tolist()), float(confidence)))
        return languages


__all__ = ["FBANK_SETTINGS", "Language", "LanguageIdentifier"]
