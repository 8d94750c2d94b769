"""The CPU int8 modes (`quantization.py`, torchao through transformers' TorchAoConfig) on the bundled demo model:
the Linears each mode names are quantized, and the held-out clips are still transcribed close to fp32."""

from __future__ import annotations

import re

import jiwer
import pytest
import torch

from tests.audio import HELD_OUT_CLIPS as CLIPS
from transformers_fireredasr import demo_model_dir
from transformers_fireredasr.audio_io import load_waveform
from transformers_fireredasr.quantization import KEPT_FLOAT, QUANTIZE_MODES, quantization_config

pytest.importorskip("torchao")
DEMO = demo_model_dir()


@pytest.fixture(scope="module")
def inputs():
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(str(DEMO))
    audio = [load_waveform(str(path)) for path in CLIPS]
    return processor, processor(audio, sampling_rate=16000, return_tensors="pt")


def transcribe(model, processor, features) -> list[str]:
    with torch.inference_mode():
        return processor.batch_decode(model.generate(**features), skip_special_tokens=True)


@pytest.mark.parametrize("mode", list(QUANTIZE_MODES))
def test_int8_modes_quantize_their_linears_and_transcribe_like_fp32(inputs, mode):
    """int8-dynamic quantizes every Linear; int8-weight the decoder's only (the encoder, the CTC head and the
    cross-attention's key and value projections, run once per utterance, stay fp32); int8-mixed both, each its own
    way. The tied output projection always stays float."""
    from transformers import AutoModelForSpeechSeq2Seq

    from transformers_fireredasr import apply_speed_paths
    from transformers_fireredasr.cpu_linear import PrepackedLinear, int8_weight_only

    processor, features = inputs
    expected = transcribe(AutoModelForSpeechSeq2Seq.from_pretrained(str(DEMO)), processor, features)
    model = AutoModelForSpeechSeq2Seq.from_pretrained(
        str(DEMO), quantization_config=quantization_config(mode), device_map="cpu"
    )
    apply_speed_paths(model)  # as every entry point does: int8 weight-only weights take torch's int8 kernel
    # The output projection shares its weight with the token embeddings, so transformers keeps it float.
    linears = {name: module for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)}
    assert type(linears.pop("proj_out").weight) is torch.nn.Parameter
    kept_float = KEPT_FLOAT.get(mode, [])
    quantized = {name for name, module in linears.items() if "Int8" in type(module.weight).__name__}
    expected_quantized = {name for name in linears if not any(re.match(rf"{kept}(\.|$)", name) for kept in kept_float)}
    assert len(quantized) >= 16 and quantized == expected_quantized
    for name in quantized:  # torch's int8 kernel takes weight-only int8 weights; torchao's int8 GEMMs run the others
        kernel = int8_weight_only(linears[name].weight) is not None
        assert isinstance(linears[name], PrepackedLinear) == kernel, name
        assert kernel == (mode == "int8-weight" or (mode == "int8-mixed" and name.startswith("model.decoder.")))
    cross_kv = {name for name in linears if ".encoder_attn." in name and name.endswith(("k_proj", "v_proj"))}
    if mode == "int8-weight":
        assert all(name.startswith("model.decoder.") for name in quantized)
        assert model.model.encoder.layers[0].feed_forward1.linear1.weight.dtype == torch.float32
    if mode != "int8-dynamic":  # run once per utterance on the encoder's frames, so kept float like the encoder
        assert cross_kv and not cross_kv & quantized and "model.decoder.layers.0.encoder_attn.q_proj" in quantized
    if mode == "int8-mixed":  # int8 GEMMs (activations quantized too) in the encoder, int8 weights in the decoder
        dynamic = {name for name in quantized if linears[name].weight.act_quant_kwargs is not None}
        assert dynamic == {name for name in quantized if name.startswith("model.encoder.")} and dynamic
        assert all(type(linears[name].bias) is not type(linears[name].weight) for name in quantized)
    texts = transcribe(model, processor, features)
    assert len(texts) == len(CLIPS) == 2 and all(texts)
    assert jiwer.cer(expected, texts) <= 0.15, (expected, texts)


def test_int8_weights_multiply_through_torchs_int8_kernel(monkeypatch):
    """A `PrepackedLinear` (what the speed paths make of our models' Linears) with torchao int8 weight-only weights
    multiplies through `torch._weight_int8pack_mm` with bf16 activations: the result is the dequantized product up
    to bf16 rounding, and the kernel is really called; with autograd, torchao's own path runs."""
    import torchao.quantization

    from transformers_fireredasr.cpu_linear import PrepackedLinear, int8_weight_only

    torch.manual_seed(0)
    layer = PrepackedLinear(256, 384)
    torchao.quantization.quantize_(layer, torchao.quantization.Int8WeightOnlyConfig())
    qdata, scale = int8_weight_only(layer.weight)
    assert qdata.dtype == torch.int8 and scale.numel() == 384
    x = torch.randn(3, 1, 256)
    expected = x @ (qdata.float() * scale.reshape(-1, 1)).T + layer.bias.detach()
    calls = []
    kernel = torch._weight_int8pack_mm
    monkeypatch.setattr(torch, "_weight_int8pack_mm", lambda *args: calls.append(args[0].dtype) or kernel(*args))
    with torch.inference_mode():
        out = layer(x)
    assert calls == [torch.bfloat16] and out.dtype == torch.float32 and out.shape == (3, 1, 384)
    torch.testing.assert_close(out, expected, rtol=2e-2, atol=2e-2)
    calls.clear()
    layer(x.requires_grad_()).sum().backward()
    assert not calls and x.grad is not None
    assert int8_weight_only(torch.nn.Linear(4, 4).weight) is None


def test_an_unknown_mode_names_the_choices():
    with pytest.raises(
        ValueError, match="unknown quantization mode 'int4': choose one of int8-weight, int8-dynamic, int8-mixed"
    ):
        quantization_config("int4")


def test_importing_the_package_holds_back_only_torchaos_harmless_notices():
    """transformers imports torchao with modeling_utils; torchao 0.18 on a CPU-only torch would log a warning per
    CUDA kernel library it cannot load, and torch one per enum it registers. The package's import drops exactly
    those, so the command line starts clean; other records still pass."""
    import logging
    import subprocess
    import sys

    from transformers_fireredasr.quantization import _Drop

    code = "import transformers_fireredasr, transformers; transformers.AutoModelForSpeechSeq2Seq"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "Failed to load" not in result.stderr and "Enum subclass" not in result.stderr, result.stderr
    drop = _Drop(lambda message: message.startswith("Failed to load") and ".so" in message)
    record = logging.LogRecord("torchao", logging.WARNING, __file__, 1, "Failed to load /x/_C.so: gone", None, None)
    other = logging.LogRecord("torchao", logging.WARNING, __file__, 1, "Skipping import of cpp extensions", None, None)
    assert not drop.filter(record) and drop.filter(other)


def test_the_command_line_takes_quantize(capsys):
    from transformers_fireredasr import cli

    clip = str(CLIPS[0])
    assert cli.main([clip, "--no-progress"]) == 0
    expected = capsys.readouterr().out
    assert cli.main([clip, "--no-progress", "--quantize", "int8-dynamic"]) == 0
    assert capsys.readouterr().out == expected  # this clip's transcript is unchanged by int8
    for bad, message in (
        (["--quantize", "int8-dynamic", "--device", "cuda"], "is a CPU mode"),
        (
            ["--quantize", "int4"],
            "quantize must be one of 'int8-weight', 'int8-dynamic', 'int8-mixed' or None, got 'int4'",
        ),
    ):
        with pytest.raises(SystemExit):
            cli.main([clip, "--no-progress", *bad])
        assert message in capsys.readouterr().err


def test_a_mode_that_quantizes_nothing_is_an_error():
    """`int8-mixed` names the AED's modules; on a model without them (the LLM variant) it would quantize nothing and
    run fp32 silently, so `check_quantized` (called by the command line and archive runs) refuses it."""
    import torchao.quantization

    from transformers_fireredasr.quantization import check_quantized

    plain = torch.nn.Sequential(torch.nn.Linear(8, 8))
    with pytest.raises(ValueError, match="int8-mixed quantized none of the Linears of this Sequential. int8-mixed is"):
        check_quantized(plain, "int8-mixed")
    check_quantized(plain, None)
    torchao.quantization.quantize_(plain, torchao.quantization.Int8WeightOnlyConfig())
    check_quantized(plain, "int8-weight")
