"""Each CPU speed path asks the installed torch at run time whether it offers what the path calls
(`transformers_compat.torch_offers`). Where it does not, the path gives way to the plain one after one warning: the
same transcripts, never a crash. Shown here by taking each capability away as an older or newer torch would."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

from transformers_fireredasr import (
    apply_speed_paths,
    compiled_decoding_kwargs,
    cpu_linear,
    demo_model_dir,
    forget_compiled_decoding,
    transformers_compat,
)

DEMO = demo_model_dir()


@pytest.fixture
def fresh_warnings(monkeypatch):
    """Each test sees the once-per-process warnings afresh."""
    monkeypatch.setattr(transformers_compat, "_warned_unavailable", set())


def without(monkeypatch, feature: str) -> None:
    """Makes `feature` look absent from the installed torch, as the speed paths see it."""
    offers = transformers_compat.torch_offers
    monkeypatch.setattr(cpu_linear, "torch_offers", lambda name: name != feature and offers(name))


def generate(model, features, **kwargs) -> torch.Tensor:
    with torch.inference_mode():
        return model.generate(**features, **kwargs)


def unavailable(record: list[warnings.WarningMessage], feature: str) -> list[str]:
    return [str(w.message) for w in record if f"speed path {feature!r} is unavailable" in str(w.message)]


def test_the_probes_answer_for_the_installed_torch():
    """This torch has both operators (the floor and the newest releases do); a name that is no speed path is a
    KeyError, not a silent False."""
    assert transformers_compat.torch_offers("onednn_linear") == torch.backends.mkldnn.is_available()
    assert transformers_compat.torch_offers("int8_weight_kernel") == hasattr(torch, "_weight_int8pack_mm")
    with pytest.raises(KeyError):
        transformers_compat.torch_offers("onednn_linaer")


def accelerated_modules(model) -> list[str]:
    return [type(m).__name__ for m in model.modules() if type(m).__module__ == cpu_linear.__name__]


def test_without_onednn_the_prepacked_linears_take_sgemm_after_one_warning(demo, monkeypatch, fresh_warnings):
    """A model accelerated before is decoded on the plain path; `apply_speed_paths` leaves a model's modules plain
    (so `print(model)` still shows what runs); one warning in all."""
    model, _, features = demo
    expected = generate(model, features)
    accelerated = apply_speed_paths(copy.deepcopy(model))
    assert accelerated_modules(accelerated)
    linear = cpu_linear.PrepackedLinear(1024, 1024)
    rows = torch.randn(600, 1024)
    without(monkeypatch, "onednn_linear")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        plain = apply_speed_paths(copy.deepcopy(model))
        with torch.inference_mode():
            output = linear(rows)
            again = generate(accelerated, features)
            plain_ids = generate(plain, features)
    assert not accelerated_modules(plain)
    assert torch.equal(output, torch.nn.functional.linear(rows, linear.weight, linear.bias))
    assert linear._packed is None  # nothing was packed
    assert torch.equal(again, expected) and torch.equal(plain_ids, expected)
    assert len(unavailable(record, "onednn_linear")) == 1, [str(w.message) for w in record]


def test_without_the_int8_kernel_int8_weights_take_torchaos_path_after_one_warning(demo, monkeypatch, fresh_warnings):
    pytest.importorskip("torchao")
    from transformers import AutoModelForSpeechSeq2Seq

    from transformers_fireredasr.quantization import quantization_config

    _, processor, features = demo

    def int8_model():
        loaded = AutoModelForSpeechSeq2Seq.from_pretrained(
            str(DEMO), quantization_config=quantization_config("int8-weight"), device_map="cpu"
        )
        return apply_speed_paths(loaded.eval())

    model = int8_model()
    assert type(model.model.decoder.layers[0].fc1) is cpu_linear.PrepackedLinear
    with_kernel = processor.batch_decode(generate(model, features), skip_special_tokens=True)
    without(monkeypatch, "int8_weight_kernel")
    called = []
    monkeypatch.setattr(torch, "_weight_int8pack_mm", lambda *args: called.append(args) or 1 / 0, raising=False)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        fallback = processor.batch_decode(generate(model, features), skip_special_tokens=True)
        plain = int8_model()  # loaded now: its int8 Linears stay plain, its fp32 encoder is still prepacked
        plain_texts = processor.batch_decode(generate(plain, features), skip_special_tokens=True)
    assert type(plain.model.decoder.layers[0].fc1) is torch.nn.Linear
    assert type(plain.model.encoder.layers[0].feed_forward1.linear1) is cpu_linear.PrepackedLinear
    assert not called  # the kernel is really left alone
    assert fallback == with_kernel == plain_texts and all(fallback)
    assert len(unavailable(record, "int8_weight_kernel")) == 1, [str(w.message) for w in record]


def test_where_torch_cannot_compile_the_steps_run_eagerly_after_one_warning(demo, fresh_warnings):
    """No working C++ compiler for Inductor's CPU code (a real compile failure, not a mock): the compiled decoding
    switch still transcribes, eagerly, with one warning for the whole call."""
    import torch._inductor.config as inductor

    model, _, features = demo
    expected = generate(model, features)
    forget_compiled_decoding(model)
    try:
        with inductor.patch({"cpp.cxx": ("/nonexistent/c++",), "fx_graph_cache": False}):
            with warnings.catch_warnings(record=True) as record:
                warnings.simplefilter("always")
                got = generate(model, features, **compiled_decoding_kwargs())
                again = generate(model, features, **compiled_decoding_kwargs())
    finally:
        forget_compiled_decoding(model)
    assert torch.equal(got, expected) and torch.equal(again, expected)
    messages = unavailable(record, "compiled_decoding")
    assert len(messages) == 1 and ("InductorError" in messages[0] or "BackendCompilerFailed" in messages[0]), messages
