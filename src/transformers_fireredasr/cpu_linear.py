"""`nn.Linear`s that, for fp32 inference on the CPU, multiply with a oneDNN-prepacked copy of their weight.

Why: `F.linear` in fp32 on the CPU goes to the BLAS sgemm that torch links (MKL). For the decoder's shapes (three
beam rows against a 1280 x 5120 weight) it reads the weights at 5-8 GB/s on this machine's AMD EPYC, while
oneDNN's matmul on a weight reordered once into its blocked layout reads them at about 38 GB/s, and is 2.5x faster
at the encoder's 250-row shapes too (benchmarks/RESULTS.md, "Where the time goes at the published size"). The
results differ from sgemm's only by fp32 rounding (another summation order). torch exposes this only inside
`torch.compile` (Inductor's weight prepacking under `freezing`, through the `torch.ops.mkldnn` operators used
here), which means compiling the model for its input shapes first; this module calls the same operators eagerly.
The Conformer's pointwise convolutions (`Conv1d`, kernel 1) are the same product over channels and take the same
path: oneDNN's convolution reorders their weight on every call. Linears whose weights torchao quantized to int8
(weight only, one scale per row: `quantization_config("int8-weight")`) multiply through torch's int8-weight CPU
kernel instead of torchao's dequantize-then-sgemm (`int8_weight_only`).

Products too small to gain (fewer than `MIN_PACKED_WORK` rows x weight elements) keep sgemm. The packed copy is
made on the first call that can use it and kept while the weight's storage and version stay
the same (an in-place update or a `.to()` repacks or drops it). Everything else takes the module's own path:
autograd (training, fine-tuning), other dtypes and devices, quantized or offloaded weights, compiling. The packed
copies cost as much memory as the fp32 weights they copy; `set_cpu_prepacking(False)` turns the path off (and
`release_packed_weights(model)` frees the copies).
"""

from __future__ import annotations

import torch
from torch import nn

from .transformers_compat import speed_path_unavailable, torch_offers

_enabled = True
# Small products keep sgemm: oneDNN's fixed cost per call (about 15 us) loses to it there. Measured on this machine,
# 1 thread, sgemm against packed: 3 rows x a 128 x 128 weight 5 against 19 us, 24 rows 12 against 17 us, 200 rows
# 72 against 42 us; 3 rows x 256 x 256 12 against 16 us, x 512 x 512 58 against 37 us (2 threads favour packing
# more). So a call is packed when rows x weight elements reach this: the bundled demo's decoder steps (3 rows, d_model
# 128) stay on sgemm, which its server needs (packed, it answered about 25 % fewer requests per second), and its
# encoder's frames and every product of the published sizes are packed.
MIN_PACKED_WORK = 2**19


def set_cpu_prepacking(enabled: bool) -> None:
    """Switches the prepacked fp32 CPU path of every `prepacked` Linear on (the default) or off."""
    global _enabled
    _enabled = bool(enabled)


def cpu_prepacking_available() -> bool:
    """Whether this torch has oneDNN and the operators the prepacked path calls."""
    return torch_offers("onednn_linear")


class PrepackedForward:
    """The `forward` of one `nn.Linear` or pointwise `nn.Conv1d` (set on the instance by `prepacked`): the packed
    product when it can be used, else the module class's own `forward`."""

    def __init__(self, linear: nn.Linear | nn.Conv1d):
        self.linear = linear
        self.packed: tuple[tuple, torch.Tensor] | None = None

    def __call__(self, input: torch.Tensor) -> torch.Tensor:
        linear = self.linear
        int8 = int8_weight_only(linear.weight)
        if int8 is not None and self._int8_call(input):
            return self._int8_product(input, *int8)
        if not (self._weights_packable() and self._call_packable(input)):
            return type(linear).forward(linear, input)
        pointwise = isinstance(linear, nn.Conv1d)  # (batch, channels, time): channels are the product's features
        if input.numel() // linear.weight.shape[1] * linear.weight.numel() < MIN_PACKED_WORK:
            return type(linear).forward(linear, input)  # too small to gain; a packed copy made for larger calls stays
        key = self._weight_key()
        if self.packed is None or self.packed[0] != key:
            weight = linear.weight.detach().flatten(1)
            self.packed = (key, torch.ops.mkldnn._reorder_linear_weight(weight, 3))
        bias = None if linear.bias is None else linear.bias.detach()
        rows = input.transpose(1, 2) if pointwise else input
        output = torch.ops.mkldnn._linear_pointwise(rows, self.packed[1], bias, "none", [], "")
        # The conv's output is the product's transposed view: time-major in memory, which the next depthwise conv
        # of the Conformer runs fastest on.
        return output.transpose(1, 2) if pointwise else output

    def _weights_packable(self) -> bool:
        """Plain fp32 CPU weights; otherwise a packed copy is stale and is dropped (moved, cast or quantized)."""
        weight, bias = self.linear.weight, self.linear.bias
        plain = (
            weight.device.type == "cpu"
            and weight.dtype == torch.float32
            and type(weight.data) is torch.Tensor  # not torchao's quantized tensors or another wrapper
            and (bias is None or (type(bias.data) is torch.Tensor and bias.dtype == torch.float32))
            and not hasattr(self.linear, "_hf_hook")  # accelerate may swap the weight in and out around every call
        )
        if not plain:
            self.packed = None
        return plain

    def _call_packable(self, input: torch.Tensor) -> bool:
        wanted = (
            _enabled
            and not torch.is_grad_enabled()
            and not torch.compiler.is_compiling()
            and input.device.type == "cpu"
            and input.dtype == torch.float32
            and (input.dim() == 3 if isinstance(self.linear, nn.Conv1d) else input.dim() >= 2)
        )
        return wanted and _offered("onednn_linear")

    def _int8_call(self, input: torch.Tensor) -> bool:
        bias = self.linear.bias
        wanted = (
            _enabled
            and isinstance(self.linear, nn.Linear)
            and not torch.is_grad_enabled()
            and not torch.compiler.is_compiling()
            and input.device.type == "cpu"
            and input.dtype in (torch.float32, torch.bfloat16)
            and input.dim() >= 2
            and (bias is None or type(bias.data) is torch.Tensor)
            and not hasattr(self.linear, "_hf_hook")
        )
        return wanted and _offered("int8_weight_kernel")

    def _int8_product(self, input: torch.Tensor, qdata: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """`input @ (qdata * scale).T + bias` through torch's int8-weight CPU kernel, with bf16 activations."""
        key = ("int8", qdata.data_ptr(), qdata._version, scale.data_ptr(), scale._version)
        if self.packed is None or self.packed[0] != key:
            self.packed = (key, scale.detach().reshape(-1).to(torch.bfloat16))  # the kernel's scales: bf16, (out,)
        rows = input.reshape(-1, input.shape[-1]).to(torch.bfloat16)
        output = torch._weight_int8pack_mm(rows, qdata, self.packed[1]).to(input.dtype)
        if self.linear.bias is not None:
            output = output + self.linear.bias.detach().to(input.dtype)
        return output.view(*input.shape[:-1], qdata.shape[0])

    def _weight_key(self) -> tuple:
        weight, bias = self.linear.weight, self.linear.bias
        return (weight.data_ptr(), weight._version, None if bias is None else (bias.data_ptr(), bias._version))

    def __getstate__(self) -> dict:
        return {"linear": self.linear, "packed": None}  # pickled or deep-copied modules repack on their first call


def _offered(feature: str) -> bool:
    """Whether torch offers the operators of the wanted speed path `feature`; if not, the caller takes the module's
    own path, after one warning per process (`transformers_compat.speed_path_unavailable`)."""
    if torch_offers(feature):
        return True
    speed_path_unavailable(feature)
    return False


def int8_weight_only(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """`(qdata, scale)` of a torchao int8 weight-only tensor with one scale per output row (`Int8WeightOnlyConfig`,
    what `quantization_config("int8-weight")` loads), on the CPU; None for any other weight.

    Why: torchao 0.18 multiplies such a weight by converting all of it to the activations' dtype on every call
    (then an fp32 sgemm), slower than the fp32 weights it replaces. torch's own int8-weight kernel,
    `torch._weight_int8pack_mm` (what Inductor lowers int8 weight-only matmuls to on the CPU), reads the int8
    weights as they are: about 3x faster than the prepacked fp32 product at the decoder's 3-row shapes. It takes
    bf16 activations; the scales are applied and the sum accumulated in fp32, and its output is rounded to bf16.
    """
    qdata, scale = getattr(weight, "qdata", None), getattr(weight, "scale", None)
    if type(weight).__name__ != "Int8Tensor" or qdata is None or scale is None:
        return None
    per_row = (
        qdata.dtype == torch.int8
        and qdata.dim() == 2
        and qdata.is_contiguous()
        and qdata.device.type == "cpu"
        and scale.numel() == qdata.shape[0]
        and list(getattr(weight, "block_size", ())) == [1, qdata.shape[1]]
    )
    weight_only = getattr(weight, "act_quant_kwargs", True) is None and getattr(weight, "act_pre_scale", True) is None
    return (qdata, scale) if per_row and weight_only else None


def prepacked(linear: nn.Linear | nn.Conv1d) -> nn.Linear | nn.Conv1d:
    """`linear`, still a module of that very class, whose calls take the prepacked fp32 CPU path (module
    docstring). The class is kept rather than subclassed because transformers' quantizers replace only modules
    whose type is exactly `nn.Linear` (bitsandbytes: `type(module) is nn.Linear`). A `Conv1d` must be pointwise
    (kernel 1, no stride, padding, dilation or groups): it is then a product over channels at every time step."""
    if isinstance(linear, nn.Conv1d):
        shape = (linear.kernel_size, linear.stride, linear.padding, linear.dilation, linear.groups)
        if shape != ((1,), (1,), (0,), (1,), 1) or linear.padding_mode != "zeros":
            raise ValueError(f"prepacked takes only a pointwise Conv1d (kernel 1, stride 1, no padding), not {linear}")
    elif not isinstance(linear, nn.Linear):
        raise TypeError(f"prepacked takes an nn.Linear or a pointwise nn.Conv1d, not {type(linear).__name__}")
    linear.forward = PrepackedForward(linear)
    return linear


def packed_forward(module: nn.Module) -> PrepackedForward | None:
    """The `PrepackedForward` of a Linear made by `prepacked`, else None."""
    forward = module.__dict__.get("forward")
    return forward if isinstance(forward, PrepackedForward) else None


def release_packed_weights(model: nn.Module) -> None:
    """Frees every packed copy under `model` (they are made again on the next fp32 CPU inference call)."""
    for module in model.modules():
        forward = packed_forward(module)
        if forward is not None:
            forward.packed = None


__all__ = [
    "PrepackedForward",
    "cpu_prepacking_available",
    "int8_weight_only",
    "packed_forward",
    "prepacked",
    "release_packed_weights",
    "set_cpu_prepacking",
]
