"""`nn.Linear` that, for fp32 inference on the CPU, multiplies with a oneDNN-prepacked copy of its weight.

Why: `F.linear` in fp32 on the CPU goes to the BLAS sgemm that torch links (MKL). For the decoder's shapes (three
beam rows against a 1280 x 5120 weight) it reads the weights at 5-8 GB/s on this machine's AMD EPYC, while
oneDNN's matmul on a weight reordered once into its blocked layout reads them at about 38 GB/s, and is 2.5x faster
at the encoder's 250-row shapes too (benchmarks/RESULTS.md, "Where the time goes at the published size"). The
results differ from sgemm's only by fp32 rounding (another summation order). torch exposes this only inside
`torch.compile` (Inductor's weight prepacking under `freezing`, through the `torch.ops.mkldnn` operators used
here), which costs minutes of compiling per shape at the published size; this module calls the same operators
eagerly.

The packed copy is made on the first call that can use it and kept while the weight's storage and version stay
the same (an in-place update or a `.to()` repacks or drops it). Everything else takes `nn.Linear`'s own path:
autograd (training, fine-tuning), other dtypes and devices, quantized or offloaded weights, compiling. The packed
copies cost as much memory as the fp32 weights they copy; `set_cpu_prepacking(False)` turns the path off (and
`release_packed_weights(model)` frees the copies).
"""

from __future__ import annotations

import torch
from torch import nn

_SUPPORTED = (
    torch.backends.mkldnn.is_available()
    and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
    and hasattr(torch.ops.mkldnn, "_linear_pointwise")
)
_enabled = True


def set_cpu_prepacking(enabled: bool) -> None:
    """Switches the prepacked fp32 CPU path of every `PrepackedLinear` on (the default) or off."""
    global _enabled
    _enabled = bool(enabled)


def cpu_prepacking_available() -> bool:
    """Whether this torch has oneDNN and the operators the prepacked path calls."""
    return _SUPPORTED


class PrepackedLinear(nn.Linear):
    """`nn.Linear` with the same parameters and state dict, faster for fp32 inference on the CPU (module docstring)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._packed: tuple[tuple, torch.Tensor] | None = None

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not self._can_prepack(input):
            return super().forward(input)
        key = self._weight_key()
        if self._packed is None or self._packed[0] != key:
            self._packed = (key, torch.ops.mkldnn._reorder_linear_weight(self.weight.detach(), 3))
        bias = None if self.bias is None else self.bias.detach()
        return torch.ops.mkldnn._linear_pointwise(input, self._packed[1], bias, "none", [], "")

    def _can_prepack(self, input: torch.Tensor) -> bool:
        weight = self.weight
        return (
            _enabled
            and _SUPPORTED
            and not torch.is_grad_enabled()
            and not torch.compiler.is_compiling()
            and not hasattr(self, "_hf_hook")  # accelerate may swap the weight in and out around every call
            and input.device.type == "cpu"
            and weight.device.type == "cpu"
            and input.dtype == torch.float32
            and weight.dtype == torch.float32
            and type(weight.data) is torch.Tensor  # not a quantized or otherwise wrapped tensor
            and (self.bias is None or type(self.bias.data) is torch.Tensor)
            and input.dim() >= 2
        )

    def _weight_key(self) -> tuple:
        bias = self.bias
        return (
            self.weight.data_ptr(),
            self.weight._version,
            None if bias is None else (bias.data_ptr(), bias._version),
        )

    def _apply(self, fn, recurse: bool = True):
        self._packed = None  # a move or cast makes the packed copy stale
        return super()._apply(fn, recurse)

    def __getstate__(self):
        state = super().__getstate__()
        state = dict(state)
        state["_packed"] = None  # pickled or deep-copied modules repack on their first call
        return state


def release_packed_weights(model: nn.Module) -> None:
    """Frees every packed copy under `model` (they are made again on the next fp32 CPU inference call)."""
    for module in model.modules():
        if isinstance(module, PrepackedLinear):
            module._packed = None


__all__ = ["PrepackedLinear", "cpu_prepacking_available", "release_packed_weights", "set_cpu_prepacking"]
