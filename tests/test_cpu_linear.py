"""`cpu_linear`'s modules (`PrepackedLinear`, `PrepackedPointwiseConv1d`, `TimeMajorDepthwiseConv1d`): the
oneDNN-prepacked fp32 CPU inference path, and every case that must keep the plain module's."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from torch import nn

from tests.test_aed_parity import PUBLISHED, load, token_ids, transcribe
from transformers_fireredasr import apply_speed_paths, cpu_linear, remove_speed_paths
from transformers_fireredasr.cpu_linear import (
    PrepackedLinear,
    PrepackedPointwiseConv1d,
    TimeMajorDepthwiseConv1d,
    release_packed_weights,
    set_cpu_prepacking,
)

pytestmark = pytest.mark.skipif(not cpu_linear.cpu_prepacking_available(), reason="this torch has no oneDNN")


@pytest.fixture
def layer():
    torch.manual_seed(0)
    return PrepackedLinear(384, 512)


@pytest.fixture(autouse=True)
def prepacking_on():
    yield
    set_cpu_prepacking(True)


def reference(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    return nn.functional.linear(x, layer.weight, layer.bias)


def packed(layer: nn.Module):
    return layer._packed


def test_is_an_nn_linear_with_the_same_state_dict(layer):
    """An nn.Linear subclass (peft and torchao look for nn.Linear) of its own name, so `print(model)` shows what runs;
    checkpoints do not change."""
    assert isinstance(layer, nn.Linear) and type(layer) is not nn.Linear
    assert repr(layer).startswith("PrepackedLinear(in_features=384, out_features=512")
    assert list(layer.state_dict()) == list(nn.Linear(64, 96).state_dict())


@pytest.mark.parametrize("shape", [(3, 384), (3, 1, 384), (2, 250, 384), (8, 384)])
def test_inference_uses_the_packed_weight_and_agrees_with_linear(layer, shape):
    x = torch.randn(*shape)
    with torch.inference_mode():
        out = layer(x)
    assert packed(layer) is not None, "the packed path was not taken"
    torch.testing.assert_close(out, reference(layer, x), rtol=1e-4, atol=1e-4)


def test_small_products_keep_nn_linear_exactly():
    """Below MIN_PACKED_WORK (rows x weight elements) sgemm beats oneDNN's per-call cost: the bundled demo's
    decoder steps. Its encoder's many frames are packed."""
    layer = PrepackedLinear(128, 384)
    with torch.no_grad():
        x = torch.randn(3, 128)
        assert torch.equal(layer(x), reference(layer, x))
        assert packed(layer) is None
        frames = torch.randn(1, 200, 128)
        torch.testing.assert_close(layer(frames), reference(layer, frames), rtol=1e-4, atol=1e-4)
        assert packed(layer) is not None
        assert torch.equal(layer(x), reference(layer, x)), "small calls keep sgemm after a large one packed"


def test_without_bias():
    layer = PrepackedLinear(384, 512, bias=False)
    x = torch.randn(3, 384)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), reference(layer, x), rtol=1e-4, atol=1e-4)
    assert packed(layer) is not None


def test_autograd_takes_nn_linear_path(layer):
    """Training and fine-tuning: gradients flow exactly as through nn.Linear, and nothing is packed."""
    x = torch.randn(3, 384, requires_grad=True)
    out = layer(x)
    assert torch.equal(out, reference(layer, x))
    out.sum().backward()
    assert layer.weight.grad is not None and x.grad is not None
    assert packed(layer) is None


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_other_dtypes_take_nn_linear_path(layer, dtype):
    layer = layer.to(dtype)
    x = torch.randn(3, 384, dtype=dtype)
    with torch.no_grad():
        assert torch.equal(layer(x), reference(layer, x))
    assert packed(layer) is None


def test_switched_off_is_nn_linear_exactly(layer):
    set_cpu_prepacking(False)
    x = torch.randn(3, 384)
    with torch.no_grad():
        assert torch.equal(layer(x), reference(layer, x))
    assert packed(layer) is None


def test_a_move_or_cast_drops_the_packed_copy(layer):
    x = torch.randn(3, 384)
    with torch.no_grad():
        layer(x)
        layer.to(torch.bfloat16)
        assert torch.equal(layer(x.bfloat16()), reference(layer, x.bfloat16()))
        assert packed(layer) is None
        layer.to(torch.float32)
        torch.testing.assert_close(layer(x), reference(layer, x), rtol=1e-4, atol=1e-4)
        assert packed(layer) is not None


def test_bitsandbytes_quantizer_still_replaces_the_linears(converted_aed_dir):
    """transformers' bitsandbytes integration swaps `type(m) is nn.Linear` modules while loading: a loaded model's
    Linears are exactly that type (the speed paths come after loading), and the speed paths leave bitsandbytes'
    modules alone."""
    pytest.importorskip("bitsandbytes")
    from transformers import BitsAndBytesConfig
    from transformers.integrations.bitsandbytes import replace_with_bnb_linear

    model, _ = load(converted_aed_dir)
    assert all(type(m) is nn.Linear for m in model.modules() if isinstance(m, nn.Linear))
    model = replace_with_bnb_linear(model, quantization_config=BitsAndBytesConfig(load_in_8bit=True))
    swapped = type(model.model.decoder.layers[0].fc1)
    assert swapped.__name__ == "Linear8bitLt"
    apply_speed_paths(model)
    assert type(model.model.decoder.layers[0].fc1) is swapped


def test_in_place_weight_update_repacks(layer):
    """load_state_dict copies into the weights in place: the next call must use the new values."""
    x = torch.randn(3, 384)
    with torch.no_grad():
        layer(x)
        layer.load_state_dict({"weight": torch.randn(512, 384), "bias": torch.randn(512)})
        torch.testing.assert_close(layer(x), reference(layer, x), rtol=1e-4, atol=1e-4)
        layer.weight.mul_(2)
        torch.testing.assert_close(layer(x), reference(layer, x), rtol=1e-4, atol=1e-4)
        layer.bias.zero_()
        torch.testing.assert_close(layer(x), reference(layer, x), rtol=1e-4, atol=1e-4)


def test_copies_repack_on_their_first_call(layer):
    x = torch.randn(3, 384)
    with torch.no_grad():
        layer(x)
        for clone in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
            assert packed(clone) is None and type(clone) is PrepackedLinear
            torch.testing.assert_close(clone(x), reference(layer, x), rtol=1e-4, atol=1e-4)
        release_packed_weights(nn.Sequential(layer))
        assert packed(layer) is None


def test_quantized_weights_take_their_own_path():
    """A wrapped weight (torchao's int8 tensors) is never packed as if it were a plain fp32 tensor: the int8
    product keeps only the kernel's bf16 scales, and a dynamically quantized weight (int8 activations too) keeps
    nothing and runs torchao's own path."""
    pytest.importorskip("torchao")
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig, quantize_

    model = nn.Sequential(PrepackedLinear(384, 512))
    quantize_(model, Int8WeightOnlyConfig())
    assert type(model[0]) is PrepackedLinear  # torchao quantizes the weight in place, the module stays
    with torch.no_grad():
        model(torch.randn(3, 384))
    key, scales = packed(model[0])
    assert key[0] == "int8" and scales.dtype == torch.bfloat16 and scales.shape == (512,)

    model = nn.Sequential(PrepackedLinear(384, 512))
    quantize_(model, Int8DynamicActivationInt8WeightConfig())
    with torch.no_grad():
        model(torch.randn(3, 384))
    assert packed(model[0]) is None


@pytest.fixture(scope="module")
def trained(converted_aed_dir):
    model, processor = load(converted_aed_dir, attn_implementation="sdpa")
    return apply_speed_paths(model), processor


def test_model_transcripts_match_the_reference_with_and_without_packing(trained, reference_aed, speech, monkeypatch):
    """The whole model (encoder, decoder, output projection) decodes the reference's ids with the speed paths, with
    them switched off and with them removed, and the packed path is the one generate takes once they are applied
    (the fixture is small: every size is packed here)."""
    monkeypatch.setattr(cpu_linear, "MIN_PACKED_WORK", 0)
    model, processor = trained
    expected = reference_aed.transcribe([u.path for u in speech], **PUBLISHED)
    try:
        for way in ("packed", "switched off", "removed"):
            release_packed_weights(model)
            set_cpu_prepacking(way != "switched off")
            if way == "removed":
                remove_speed_paths(model)
            sequences, texts = transcribe(model, processor, speech)
            made = [m for m in model.modules() if isinstance(m, PrepackedLinear) and packed(m) is not None]
            assert bool(made) == (way == "packed")
            assert model.proj_out in made or way != "packed"
            for row, text, (ids, reference_text) in zip(sequences, texts, expected, strict=True):
                assert token_ids(row, model.config) == ids
                assert text == reference_text
    finally:
        apply_speed_paths(model)


def test_pointwise_conv_takes_the_packed_path_and_agrees_with_conv1d():
    """The Conformer's kernel-1 convolutions are the same product over channels: packed, the output equals
    `nn.Conv1d`'s and is the time-major view the depthwise conv after it runs fastest on; with autograd the conv's
    own path runs; other convolutions are refused."""
    torch.manual_seed(0)
    conv = PrepackedPointwiseConv1d(256, 1024, kernel_size=1, bias=False)
    assert isinstance(conv, nn.Conv1d) and list(conv.state_dict()) == ["weight"]
    x = torch.randn(2, 256, 250)
    expected = nn.functional.conv1d(x, conv.weight)
    with torch.no_grad():
        out = conv(x)
    assert packed(conv) is not None, "the packed path was not taken"
    assert out.shape == expected.shape and out.stride(1) == 1  # (batch, channels, time), channels innermost
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)
    out = conv(x.requires_grad_())
    out.sum().backward()
    assert out.is_contiguous() and x.grad is not None
    assert cpu_linear.is_pointwise(nn.Conv1d(8, 8, kernel_size=1))
    for other in (nn.Conv1d(8, 8, kernel_size=3), nn.Conv1d(8, 8, 1, stride=2), nn.Conv1d(8, 8, 1, groups=2)):
        assert not cpu_linear.is_pointwise(other)


def test_depthwise_conv_on_time_major_input_runs_as_conv2d(monkeypatch):
    """`TimeMajorDepthwiseConv1d` gives `nn.Conv1d`'s results on either layout; on a time-major input (what the
    packed pointwise conv returns) it runs as a 2-D convolution, which oneDNN's depthwise kernel runs far faster,
    gradients included."""
    torch.manual_seed(0)
    conv = TimeMajorDepthwiseConv1d(64, 64, 33, padding=16, groups=64, bias=False)
    assert cpu_linear.is_depthwise(conv) and not cpu_linear.is_depthwise(nn.Conv1d(64, 64, 33, groups=32))
    plain = nn.Conv1d(64, 64, 33, padding=16, groups=64, bias=False)
    plain.load_state_dict(conv.state_dict())
    time_major = torch.randn(2, 250, 64).transpose(1, 2)
    calls = []
    conv2d = nn.functional.conv2d
    monkeypatch.setattr(nn.functional, "conv2d", lambda *a, **k: calls.append(1) or conv2d(*a, **k))
    for x in (time_major, time_major.contiguous()):
        calls.clear()
        with torch.no_grad():
            torch.testing.assert_close(conv(x), plain(x), rtol=1e-5, atol=1e-5)
        assert bool(calls) == (x is time_major)
    x = time_major.clone().requires_grad_()
    conv(x).square().sum().backward()
    expected = time_major.clone().requires_grad_()
    plain(expected).square().sum().backward()
    torch.testing.assert_close(x.grad, expected.grad, rtol=1e-4, atol=1e-4)
