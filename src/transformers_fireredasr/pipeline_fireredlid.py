"""The audio-classification pipeline for FireRedLID: `pipeline("audio-classification", model=<FireRedLID>)`.

transformers' audio-classification pipeline returns the top labels of one input with their scores,
`[{"score", "label"}, ...]`. FireRedLID decodes a short label sequence (`zh mandarin`) with a beam search rather
than scoring a fixed label set, so this pipeline returns the search's best hypotheses instead: `top_k` of them (at
most the beam width, 3 with upstream's settings; default all), best first, each scored with upstream's confidence,
the mean probability of its labels. The first one is upstream's answer. `generate_kwargs` go to `generate` (e.g.
`{"num_beams": 5}` for more hypotheses, which may change the best one).

Registered by `registration.py` as the task's class: it serves FireRedLID models and hands every other model the
class the task had before (the stock `AudioClassificationPipeline`).
"""

from __future__ import annotations

import importlib
from typing import Any

from transformers import AudioClassificationPipeline

from .audio_io import load_waveform

FIREREDLID_MODEL_TYPE = "fireredlid"


def is_fireredlid_model(model) -> bool:
    """Whether `model` (an instance, not a name) is a FireRedLID model."""
    return getattr(getattr(model, "config", None), "model_type", None) == FIREREDLID_MODEL_TYPE


def _pipeline_class(impl):
    """A pipeline class from the task registry's entry (a class, or its dotted path in recent transformers)."""
    if isinstance(impl, str):
        module, name = impl.rsplit(".", 1)
        return getattr(importlib.import_module(module), name)
    return impl


class FireRedLidPipeline(AudioClassificationPipeline):
    """`AudioClassificationPipeline` for FireRedLID: the best label sequences of each input with their confidences."""

    # The task's class for every other model (set at registration to what the task had before).
    fallback: Any = AudioClassificationPipeline

    def __new__(cls, *args, **kwargs):
        # transformers has one class per task; this one replaces it, and hands any other model the previous class.
        model = kwargs.get("model", args[0] if args else None)
        if cls is FireRedLidPipeline and not is_fireredlid_model(model):
            return _pipeline_class(cls.fallback)(*args, **kwargs)
        return super().__new__(cls)

    def _sanitize_parameters(self, top_k=None, function_to_apply=None, generate_kwargs=None):
        if function_to_apply not in (None, "none"):
            raise ValueError(
                "FireRedLID scores each hypothesis with the mean probability of its labels; function_to_apply "
                f"({function_to_apply!r}) does not apply to it"
            )
        if generate_kwargs is not None and not isinstance(generate_kwargs, dict):
            raise ValueError(f"generate_kwargs must be a dict, got {generate_kwargs!r}")
        generate_kwargs = dict(generate_kwargs or {})
        beams = generate_kwargs.get("num_beams") or self.model.generation_config.num_beams or 1
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
            raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
        top_k = beams if top_k is None else min(top_k, beams)
        return {}, {"top_k": top_k, "generate_kwargs": generate_kwargs}, {}

    def preprocess(self, inputs):
        rate = self.feature_extractor.sampling_rate
        processed = self.feature_extractor(
            load_waveform(inputs, rate), sampling_rate=rate, return_tensors="pt", return_attention_mask=True
        )
        if self.dtype is not None:
            processed = processed.to(dtype=self.dtype)
        return processed

    def _forward(self, model_inputs, top_k: int = 1, generate_kwargs: dict | None = None):
        output = self.model.identify(
            model_inputs["input_features"].to(self.model.dtype),
            attention_mask=model_inputs["attention_mask"],
            top_k=top_k,
            **(generate_kwargs or {}),
        )
        return {"label_ids": output.label_ids, "label_mask": output.label_mask, "confidence": output.confidence}

    def postprocess(self, model_outputs) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        ids, masks = model_outputs["label_ids"][0], model_outputs["label_mask"][0]
        names = self.model.config.id2label  # the labels of `dict.txt`, written by the converter
        for row, mask, score in zip(ids, masks, model_outputs["confidence"][0], strict=True):
            label = " ".join(names[index] for index in row[mask].tolist())
            if all(result["label"] != label for result in results):  # a frozen beam may repeat a hypothesis
                results.append({"score": float(score), "label": label})
        return results


__all__ = ["FireRedLidPipeline", "is_fireredlid_model"]
