"""CPU kernels as modules: `nn.Linear` / `nn.Conv1d` subclasses that, for inference on the CPU, run faster kernels
than the plain modules' and otherwise are those modules exactly. `speed_paths.apply_speed_paths(model)` puts them
into a loaded model (`print(model)` then shows them); the model files themselves hold plain `nn.Linear` / `nn.Conv1d`.

- `PrepackedLinear`: fp32 products on a oneDNN-prepacked copy of the weight. Why: `F.linear` in fp32 on the CPU goes
  to the BLAS sgemm that torch links (MKL), which reads the decoder's weights (three beam rows against a large
  weight) several times slower than oneDNN's matmul on a weight reordered once into its blocked layout, and is slower
  at the encoder's many-row shapes too (benchmarks/RESULTS.md, "Where the time goes at the published size"). The
  results differ from sgemm's only by fp32 rounding (another summation order). torch exposes this only inside
  `torch.compile` (Inductor's weight prepacking under `freezing`, through the `torch.ops.mkldnn` operators used
  here), which means compiling the model for its input shapes first; this module calls the same operators eagerly.
  Weights that torchao quantized to int8 (weight only, one scale per row: `quantization_config("int8-weight")`)
  multiply through torch's int8-weight CPU kernel instead of torchao's dequantize-then-sgemm (`int8_weight_only`).
- `PrepackedPointwiseConv1d`: the Conformer's pointwise convolutions (kernel 1) are the same product over channels
  and take the same path (oneDNN's convolution reorders their weight on every call). The output is the product's
  transposed view: time-major in memory.
- `TimeMajorDepthwiseConv1d`: a depthwise conv that runs as the equivalent 2-D convolution on such a time-major
  input: oneDNN's depthwise kernel is far faster on that layout than `conv1d`, which does not recognise it in a 3-D
  tensor and copies it.

Products too small to gain (fewer than `MIN_PACKED_WORK` rows x weight elements) keep sgemm. The packed copy is
made on the first call that can use it and kept while the weight's storage and version stay the same (an in-place
update or a `.to()` repacks or drops it). Everything else takes the plain module's own path: autograd (training,
fine-tuning), other dtypes and devices (a GPU), quantized or offloaded weights, compiling. The packed copies cost as
much memory as the fp32 weights they copy; `set_cpu_prepacking(False)` turns the path off (and
`release_packed_weights(model)` frees the copies).
"""

from __future__ import annotations

import torch
from torch import nn

from .transformers_compat import speed_path_unavailable, torch_offers

_enabled = True
# Small products keep sgemm: oneDNN's fixed cost per call loses to it there (benchmarks/RESULTS.md, "Small products
# keep sgemm"). So a call is packed when rows x weight elements reach this: the bundled demo's decoder steps
# (3 rows, d_model 128) stay on sgemm, which its server needs, and its encoder's frames and every product of the
# published sizes are packed.
MIN_PACKED_WORK = 2**19


def set_cpu_prepacking(enabled: bool) -> None:
    """Switches the prepacked fp32 and int8 CPU paths of every `PrepackedLinear` / `PrepackedPointwiseConv1d` on (the
    default) or off (the plain module's path)."""
    global _enabled
    _enabled = bool(enabled)


def cpu_prepacking_available() -> bool:
    """Whether this torch has oneDNN and the operators the prepacked path calls."""
    return torch_offers("onednn_linear")


class _PackedProduct:
    """What `PrepackedLinear` and `PrepackedPointwiseConv1d` share: the packed copy of the weight (`_packed`, a class
    default so that a module whose class `speed_paths` swapped needs no `__init__`) and the product on it."""

    _packed: tuple[tuple, torch.Tensor] | None = None

    def _accelerated(self, input: torch.Tensor, pointwise: bool) -> torch.Tensor | None:
        """The packed fp32 (or int8-kernel) product of `input`, or None where the plain module's path must run."""
        if torch.compiler.is_compiling() or torch.is_grad_enabled() or not _enabled or input.device.type != "cpu":
            return None
        if hasattr(self, "_hf_hook"):  # accelerate may swap the weight in and out around every call
            return None
        int8 = None if pointwise else int8_weight_only(self.weight)
        if int8 is not None:
            return self._int8_product(input, *int8) if self._int8_call(input) else None
        if not (self._weights_packable() and self._call_packable(input, pointwise)):
            return None
        if input.numel() // self.weight.shape[1] * self.weight.numel() < MIN_PACKED_WORK:
            return None  # too small to gain; a packed copy made for larger calls stays
        key = self._weight_key()
        if self._packed is None or self._packed[0] != key:
            weight = self.weight.detach().flatten(1)
            self._packed = (key, torch.ops.mkldnn._reorder_linear_weight(weight, 3))
        bias = None if self.bias is None else self.bias.detach()
        rows = input.transpose(1, 2) if pointwise else input  # (batch, channels, time): channels are the features
        output = torch.ops.mkldnn._linear_pointwise(rows, self._packed[1], bias, "none", [], "")
        return output.transpose(1, 2) if pointwise else output

    def _weights_packable(self) -> bool:
        """Plain fp32 CPU weights; otherwise a packed copy is stale and is dropped (moved, cast or quantized)."""
        weight, bias = self.weight, self.bias
        plain = (
            weight.device.type == "cpu"
            and weight.dtype == torch.float32
            and type(weight.data) is torch.Tensor  # not torchao's quantized tensors or another wrapper
            and (bias is None or (type(bias.data) is torch.Tensor and bias.dtype == torch.float32))
        )
        if not plain:
            self._packed = None
        return plain

    def _call_packable(self, input: torch.Tensor, pointwise: bool) -> bool:
        wanted = input.dtype == torch.float32 and (input.dim() == 3 if pointwise else input.dim() >= 2)
        return wanted and torch_offers_or_warn("onednn_linear")

    def _int8_call(self, input: torch.Tensor) -> bool:
        bias = self.bias
        wanted = (
            input.dtype in (torch.float32, torch.bfloat16)
            and input.dim() >= 2
            and (bias is None or type(bias.data) is torch.Tensor)
        )
        return wanted and torch_offers_or_warn("int8_weight_kernel")

    def _int8_product(self, input: torch.Tensor, qdata: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """`input @ (qdata * scale).T + bias` through torch's int8-weight CPU kernel, with bf16 activations."""
        key = ("int8", qdata.data_ptr(), qdata._version, scale.data_ptr(), scale._version)
        if self._packed is None or self._packed[0] != key:
            self._packed = (key, scale.detach().reshape(-1).to(torch.bfloat16))  # the kernel's scales: bf16, (out,)
        rows = input.reshape(-1, input.shape[-1]).to(torch.bfloat16)
        output = torch._weight_int8pack_mm(rows, qdata, self._packed[1]).to(input.dtype)
        if self.bias is not None:
            output = output + self.bias.detach().to(input.dtype)
        return output.view(*input.shape[:-1], qdata.shape[0])

    def _weight_key(self) -> tuple:
        weight, bias = self.weight, self.bias
        return (weight.data_ptr(), weight._version, None if bias is None else (bias.data_ptr(), bias._version))

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state.pop("_packed", None)  # pickled or deep-copied modules repack on their first call
        return state


class PrepackedLinear(_PackedProduct, nn.Linear):
    """`nn.Linear` whose fp32 CPU inference multiplies with a oneDNN-prepacked copy of its weight, and whose torchao
    int8 weight-only weights multiply through torch's int8 kernel (module docstring); the same parameters, state
    dict and results (up to rounding) as `nn.Linear`, whose path every other call takes."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        output = self._accelerated(input, pointwise=False)
        return super().forward(input) if output is None else output


class PrepackedPointwiseConv1d(_PackedProduct, nn.Conv1d):
    """A pointwise `nn.Conv1d` (kernel 1, no stride, padding, dilation or groups) run as the prepacked product over
    channels on the CPU, returning the time-major view that `TimeMajorDepthwiseConv1d` runs fastest on."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        output = self._accelerated(input, pointwise=True)
        return super().forward(input) if output is None else output


class TimeMajorDepthwiseConv1d(nn.Conv1d):
    """A depthwise `nn.Conv1d` that, on the CPU, runs as the equivalent 2-D convolution when its input is time-major
    in memory (channels last: what `PrepackedPointwiseConv1d` returns), which oneDNN's depthwise kernel runs far
    faster than `conv1d` does. The weights and the results are those of `nn.Conv1d` (up to fp32 rounding); any other
    layout or device takes `nn.Conv1d`'s path."""

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        channels_last = input.dim() == 3 and input.stride(1) == 1 and input.size(1) > 1
        if (
            not channels_last
            or input.device.type != "cpu"
            or self.padding_mode != "zeros"
            or isinstance(self.padding, str)
        ):
            return super()._conv_forward(input, weight, bias)
        output = nn.functional.conv2d(
            input.unsqueeze(2),
            weight.unsqueeze(2),
            bias,
            (1, self.stride[0]),
            (0, self.padding[0]),
            (1, self.dilation[0]),
            self.groups,
        )
        return output.squeeze(2)


def is_pointwise(conv: nn.Conv1d) -> bool:
    """Whether `conv` is a product over channels at every time step (kernel 1, stride 1, no padding or groups)."""
    shape = (conv.kernel_size, conv.stride, conv.padding, conv.dilation, conv.groups)
    return shape == ((1,), (1,), (0,), (1,), 1) and conv.padding_mode == "zeros"


def is_depthwise(conv: nn.Conv1d) -> bool:
    """Whether `conv` convolves each channel on its own (groups = channels), with zero padding given in frames."""
    return (
        conv.groups == conv.in_channels == conv.out_channels
        and conv.groups > 1
        and conv.padding_mode == "zeros"
        and not isinstance(conv.padding, str)
    )


def torch_offers_or_warn(feature: str) -> bool:
    """Whether torch offers the operators of the wanted speed path `feature`; if not, the caller takes the plain
    module's path, after one warning per process (`transformers_compat.speed_path_unavailable`)."""
    if torch_offers(feature):
        return True
    speed_path_unavailable(feature)
    return False


def int8_weight_only(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """`(qdata, scale)` of a torchao int8 weight-only tensor with one scale per output row (`Int8WeightOnlyConfig`,
    what `quantization_config("int8-weight")` loads), on the CPU; None for any other weight.

    Why: torchao multiplies such a weight by converting all of it to the activations' dtype on every call (then an
    fp32 sgemm), slower than the fp32 weights it replaces. torch's own int8-weight kernel, `torch._weight_int8pack_mm`
    (what Inductor lowers int8 weight-only matmuls to on the CPU), reads the int8 weights as they are, faster than the
    prepacked fp32 product at the decoder's few-row shapes. It takes bf16 activations; the scales are applied and the
    sum accumulated in fp32, and its output is rounded to bf16.
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


def release_packed_weights(model: nn.Module) -> None:
    """Frees every packed copy under `model` (they are made again on the next fp32 CPU inference call)."""
    for module in model.modules():
        if isinstance(module, _PackedProduct):
            module.__dict__.pop("_packed", None)


__all__ = [
    "MIN_PACKED_WORK",
    "PrepackedLinear",
    "PrepackedPointwiseConv1d",
    "TimeMajorDepthwiseConv1d",
    "cpu_prepacking_available",
    "int8_weight_only",
    "is_depthwise",
    "is_pointwise",
    "release_packed_weights",
    "set_cpu_prepacking",
    "torch_offers_or_warn",
]
