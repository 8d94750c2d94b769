"""Compiled decoding steps on the CPU (`compiled_decoding.py`): the documented switch compiles the steps with frozen
weights and max-autotune, transcribes like eager decoding on the bundled demo, and never decodes with stale weights."""

from __future__ import annotations

import warnings

import pytest
import torch

from tests.audio import HELD_OUT_CLIPS as CLIPS
from transformers_fireredasr import (
    compiled_decoding_kwargs,
    compiled_decoding_load_kwargs,
    cpu_compile_config,
    demo_model_dir,
    forget_compiled_decoding,
)
from transformers_fireredasr.audio_io import load_waveform
from transformers_fireredasr.transformers_compat import cached_compiled_call

DEMO = demo_model_dir()


def generate(model, features, **kwargs) -> torch.Tensor:
    with torch.inference_mode():
        return model.generate(**features, **kwargs)


def test_the_load_switch_asks_for_eager_attention_on_the_cpu_only():
    assert compiled_decoding_load_kwargs() == {"attn_implementation": "eager"}
    assert compiled_decoding_load_kwargs("cuda:1") == {}


def test_the_switch_asks_for_a_static_cache_and_frozen_autotuned_steps_on_the_cpu_only():
    kwargs = compiled_decoding_kwargs()
    assert kwargs["cache_implementation"] == "static"
    config = kwargs["compile_config"]
    assert config.fullgraph and config.dynamic is False and config.mode is None and config._compile_all_devices
    assert config.options["freezing"] and config.options["max_autotune"]
    assert config == cpu_compile_config()  # equal configs: transformers keeps the compiled call between calls
    assert compiled_decoding_kwargs("cuda") == {"cache_implementation": "static"}  # transformers compiles there


def test_inductor_options_are_in_effect_while_the_compiled_steps_run():
    """torch.compile drops `freezing` when given as an option, so the steps run with the options set in Inductor's
    config (where compiling, inside the first call, reads them), and only while they run."""
    import torch._inductor.config as inductor

    from transformers_fireredasr.compiled_decoding import with_inductor_options

    seen = []
    call = with_inductor_options(
        lambda x: seen.append((inductor.freezing, inductor.max_autotune)) or x, cpu_compile_config(), None
    )
    assert call(3) == 3 and seen == [(True, True)]
    assert not inductor.freezing and not inductor.max_autotune


def test_compiled_steps_transcribe_like_eager_decoding(demo):
    """The demo's two held-out clips as a batch, then each alone (each new shape compiles again): the token ids
    are those of eager decoding, and the compiled call is really made."""
    model, processor, features = demo
    single = processor([load_waveform(str(CLIPS[0]))], sampling_rate=16000, return_tensors="pt")
    expected, expected_single = generate(model, features), generate(model, single)
    compiled = generate(model, features, **compiled_decoding_kwargs())
    assert cached_compiled_call(model) is not None, "the compiled steps were not used"
    assert torch.equal(compiled, expected)
    assert torch.equal(generate(model, single, **compiled_decoding_kwargs()), expected_single)
    # The other clip alone: the same rows, another length (frozen weights broke on that shape with dynamic shapes).
    other = processor([load_waveform(str(CLIPS[1]))], sampling_rate=16000, return_tensors="pt")
    assert other["input_features"].shape[1] != single["input_features"].shape[1]
    assert torch.equal(generate(model, other, **compiled_decoding_kwargs()), generate(model, other))
    assert all(processor.batch_decode(compiled, skip_special_tokens=True))


def test_compiled_steps_on_the_speed_paths_transcribe_like_eager_decoding(demo):
    """What every entry point compiles: a model whose modules `apply_speed_paths` swapped (they trace their plain
    path, whose frozen weights Inductor packs itself) gives the token ids of eager decoding."""
    from transformers import AutoModelForSpeechSeq2Seq

    from transformers_fireredasr import apply_speed_paths

    plain, _, features = demo
    expected = generate(plain, features)
    model = apply_speed_paths(AutoModelForSpeechSeq2Seq.from_pretrained(str(DEMO)).eval())
    try:
        assert torch.equal(generate(model, features), expected)
        compiled = generate(model, features, **compiled_decoding_kwargs())
        assert cached_compiled_call(model) is not None, "the compiled steps were not used"
        assert torch.equal(compiled, expected)
    finally:
        forget_compiled_decoding(model)


def test_weights_changed_after_compiling_are_noticed(demo):
    """Frozen weights live in the compiled code, so an in-place change afterwards would be ignored: generate warns
    and decodes eagerly with the new weights; after `forget_compiled_decoding` it compiles them."""
    model, _, features = demo
    before = generate(model, features, **compiled_decoding_kwargs())  # compiled (or kept from the test before)
    layer = model.model.decoder.layers[0].fc1
    original = layer.weight.detach().clone()
    try:
        with torch.no_grad():
            layer.weight.mul_(-1.5)
        changed = generate(model, features)
        assert not torch.equal(changed, before)  # so stale weights would show
        with pytest.warns(UserWarning, match="weights changed after its decoding steps were compiled"):
            after = generate(model, features, **compiled_decoding_kwargs())
        assert torch.equal(after, changed)
        forget_compiled_decoding(model)
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            recompiled = generate(model, features, **compiled_decoding_kwargs())
        assert cached_compiled_call(model) is not None and torch.equal(recompiled, changed)
    finally:
        with torch.no_grad():
            layer.weight.copy_(original)
        forget_compiled_decoding(model)


def test_the_command_line_takes_compile(monkeypatch, capsys):
    """`--compile` decodes through the compiled steps, with eager attention on the CPU
    (`compiled_decoding_load_kwargs`): fp32 transcripts as without it; with the fastest CPU mode's other switches
    (`--quantize int8-weight --dtype bfloat16`) close to them."""
    import jiwer

    from transformers_fireredasr import cli, generation_fireredasr

    clips = [str(path) for path in CLIPS]
    assert cli.main([*clips, "--no-progress"]) == 0
    expected = capsys.readouterr().out
    used = []
    check = generation_fireredasr.frozen_call_usable
    monkeypatch.setattr(
        generation_fireredasr,
        "frozen_call_usable",
        lambda model, *a: (
            used.append((model.config._attn_implementation, type(model.model.decoder.layers[0].fc1).__name__))
            or check(model, *a)
        ),
    )
    assert cli.main([*clips, "--no-progress", "--compile"]) == 0
    # Compiled over the speed paths, as every entry point loads a model.
    assert capsys.readouterr().out == expected and used and set(used) == {("eager", "PrepackedLinear")}
    used.clear()
    # One clip a batch, the first again at the end: shapes A, B, A (frozen compiled steps once kept the first call's
    # cross-attention cache and failed on the return to A).
    fastest = ["--compile", "--quantize", "int8-weight", "--dtype", "bfloat16", "--batch-size", "1"]
    assert cli.main([*clips, clips[0], "--no-progress", *fastest]) == 0
    texts = capsys.readouterr().out.strip().splitlines()
    assert set(used) == {("eager", "PrepackedLinear")} and len(texts) == 3 and texts[0] == texts[2]
    assert jiwer.cer(expected.strip().splitlines(), texts[:2]) <= 0.15, (expected, texts)


def test_shapes_past_the_recompile_limit_decode_eagerly(demo):
    """With `fullgraph=True` torch raises past its recompile limit; a step of a shape beyond it runs eagerly instead,
    with a warning, and the call gives eager decoding's tokens."""
    model, processor, _ = demo
    clip = load_waveform(str(CLIPS[0]))
    generate(model, processor([clip[:16000]], sampling_rate=16000, return_tensors="pt"), **compiled_decoding_kwargs())
    new = processor([clip[:12000]], sampling_rate=16000, return_tensors="pt")
    # reached: a shape is compiled (torch's own patch: monkeypatch's set-and-restore hid the option in torch 2.15)
    with torch._dynamo.config.patch(recompile_limit=1):
        with pytest.warns(UserWarning, match="as many shapes .* as torch's recompile limit allows"):
            beyond = generate(model, new, **compiled_decoding_kwargs())
    assert torch.equal(beyond, generate(model, new))


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_each_call_decodes_its_own_audio(attention):
    """Shapes A, B, then A again with other audio, with either attention: the compiled steps attend to this call's
    encoder output. Freezing turns whatever the steps only read into constants of the compiled code, which Inductor
    may fold further (eager attention's transposed keys were): a cross-attention cache made a constant kept the steps
    attending to an earlier call's audio, or reading past its end."""
    from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor

    processor = AutoProcessor.from_pretrained(str(DEMO))
    model = AutoModelForSpeechSeq2Seq.from_pretrained(str(DEMO), attn_implementation=attention).eval()
    first_clip, other_clip = (load_waveform(str(path)) for path in CLIPS)
    length = min(len(first_clip), len(other_clip))
    first, shorter, other = (
        processor([clip], sampling_rate=16000, return_tensors="pt")
        for clip in (first_clip[:length], first_clip[: length * 3 // 4], other_clip[:length])
    )
    assert first["input_features"].shape == other["input_features"].shape
    eager = [generate(model, features) for features in (first, shorter, other)]
    assert not torch.equal(eager[0], eager[2])  # so decoding with the first audio's cache would show
    try:
        compiled = [generate(model, features, **compiled_decoding_kwargs()) for features in (first, shorter, other)]
    finally:
        forget_compiled_decoding(model)
    for got, expected in zip(compiled, eager, strict=True):
        assert torch.equal(got, expected)


def test_transformers_private_attributes_are_reached_only_through_transformers_compat():
    """`_compiled_call`, `_last_compile_config`, `_compile_all_devices` and `_valid_auto_compile_criteria` are
    transformers' private names: only `transformers_compat.py` touches them (as attributes or as names given to
    getattr/delattr), so a rename in transformers is one edit; and its functions do what the package relies on."""
    import ast
    from pathlib import Path

    from transformers import CompileConfig

    from transformers_fireredasr import transformers_compat

    private = {"_compiled_call", "_last_compile_config", "_compile_all_devices", "_valid_auto_compile_criteria"}
    package = Path(transformers_compat.__file__).parent
    for path in sorted(package.rglob("*.py")):
        if path.name == "transformers_compat.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "value", None)
            assert name not in private, f"{path.relative_to(package)}:{node.lineno} touches {name}"

    config = transformers_compat.compile_on_every_device(CompileConfig())
    assert config._compile_all_devices is True and cpu_compile_config()._compile_all_devices is True
    holder = torch.nn.Linear(2, 2)
    holder._compiled_call, holder._last_compile_config = len, config
    assert transformers_compat.cached_compiled_call(holder) is len
    transformers_compat.drop_compiled_call(holder)
    assert transformers_compat.cached_compiled_call(holder) is None and not hasattr(holder, "_last_compile_config")
