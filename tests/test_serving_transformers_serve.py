"""Pins why `transformers serve` cannot serve FireRedASR (docs/serving.md): it finds the model class with
`getattr(transformers, config.architectures[0])`, which no public registration reaches. If a transformers release
loads registered classes, this test fails: then document `transformers serve` as a way in."""

from __future__ import annotations

import pytest

import transformers_fireredasr  # noqa: F401 - the public registration (Auto classes, pipeline)
from transformers_fireredasr import demo_model_dir

model_manager = pytest.importorskip("transformers.cli.serving.model_manager")
DEMO = demo_model_dir()


def test_transformers_serve_cannot_load_a_registered_plugin_model():
    from transformers import AutoModelForSpeechSeq2Seq

    assert type(AutoModelForSpeechSeq2Seq.from_pretrained(DEMO)).__name__ == "FireRedAedForConditionalGeneration"
    with pytest.raises(AttributeError, match="no attribute FireRedAedForConditionalGeneration"):
        load_as_transformers_serve_does(str(DEMO))


def load_as_transformers_serve_does(model: str) -> None:
    """Loads `model` the way `transformers serve`'s handlers do. Up to 5.24 its `ModelManager` loads in the server's
    process (after `process_model_name`); 5.25 moved loading into each model's process, through a `ModelLoader` that
    takes the device and dtype and parses the name itself. Both end in the same `getattr(transformers, ...)`."""
    if hasattr(model_manager, "ModelLoader"):
        model_manager.ModelLoader(device="cpu", dtype="float32").load_model_and_processor(model)
    else:
        manager = model_manager.ModelManager(device="cpu", dtype="float32")
        manager.load_model_and_processor(manager.process_model_name(model))


def test_transformers_serve_ignores_the_response_format():
    transcription = pytest.importorskip("transformers.cli.serving.transcription")
    assert {"response_format", "timestamp_granularities", "language"} <= transcription.UNUSED_TRANSCRIPTION_FIELDS
