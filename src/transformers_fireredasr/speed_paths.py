"""The CPU speed paths, applied to a loaded model by one call: `apply_speed_paths(model)`.

    model = AutoModelForSpeechSeq2Seq.from_pretrained(folder)  # plain nn.Linear / nn.Conv1d: correct, slower on a CPU
    apply_speed_paths(model)  # what the engine does for every entry point (pipeline, CLI, archive runs, Ray, server)
    print(model)  # shows PrepackedLinear, PrepackedPointwiseConv1d, TimeMajorDepthwiseConv1d where they run

Why a separate step: the model files (`modeling_*.py`) hold the architecture only, as transformers would take it;
kernels and memory layouts that pay on one device are chosen for a loaded model, after its weights, dtype, device
and quantization are known, and `print(model)` shows what then runs. The modules (`cpu_linear.py`):
- fp32 `nn.Linear` -> `PrepackedLinear`: products on a oneDNN-prepacked copy of the weight;
- `nn.Linear` whose torchao int8 weight-only weights torch's int8 kernel takes -> `PrepackedLinear` (that kernel);
- pointwise fp32 `nn.Conv1d` -> `PrepackedPointwiseConv1d` (the same product over channels, time-major output);
- depthwise fp32 `nn.Conv1d` -> `TimeMajorDepthwiseConv1d` (runs as a 2-D convolution on that time-major output).
Compiled decoding (`compiled_decoding.py`) is the fourth speed path; it is asked for per `generate` call (the engine
passes it when its load options say `compile`), and under `torch.compile` the modules above trace their plain path,
whose frozen weights Inductor packs itself.

Which modules: the Linears and Conv1ds that FireRedASR's own modules hold (the Conformer encoder, the LLM variant's
adapter, the AED decoder, its output projection and CTC head), when their weights are on the CPU. The language model
that FireRedASR-LLM wraps keeps its own modules: a packed copy of each of its weights would double its memory. On a
GPU nothing is swapped, and a swapped module moved to a GPU later takes the plain module's path.

How: each such module's class is swapped in place (as `torch.nn.utils.parametrize` does), so it stays the same
object: its parameters (the output projection stays tied to the token embeddings), buffers, hooks, state dict keys
and every reference to it (peft, `get_output_embeddings`) are untouched. Only modules of exactly the plain class are
swapped: one that a quantizer (bitsandbytes) or peft replaced keeps its own, and applying twice changes nothing.
`remove_speed_paths(model)` turns them back into the plain classes.

Training: the swapped modules take the plain module's path whenever autograd records (and under `torch.compile`), so
`model.train()`, gradients and peft LoRA work as on the plain model; only inference on the CPU takes the kernels.
Where the installed torch lacks the operators a path calls (`transformers_compat.torch_offers`), that path's modules
stay plain, after one warning (`transformers_compat.speed_path_unavailable`).
"""

from __future__ import annotations

import torch
from torch import nn

from .cpu_linear import (
    PrepackedLinear,
    PrepackedPointwiseConv1d,
    TimeMajorDepthwiseConv1d,
    int8_weight_only,
    is_depthwise,
    is_pointwise,
    torch_offers_or_warn,
)

# Each accelerated class and the plain class it stands in for.
PLAIN_CLASSES: dict[type[nn.Module], type[nn.Module]] = {
    PrepackedLinear: nn.Linear,
    PrepackedPointwiseConv1d: nn.Conv1d,
    TimeMajorDepthwiseConv1d: nn.Conv1d,
}
_PACKAGE = __name__.rpartition(".")[0] + "."


def apply_speed_paths(model: nn.Module) -> nn.Module:
    """Swaps, in place, the CPU-resident Linears and Conv1ds of FireRedASR's own modules in `model` for the
    accelerated modules of `cpu_linear.py` (module docstring), and returns `model`. Idempotent; parameters, ties and
    state dict keys stay as they are."""
    for parent in model.modules():
        if not type(parent).__module__.startswith(_PACKAGE):
            continue  # a wrapped language model, peft's wrappers: their modules stay theirs
        for child in parent.children():
            accelerated = _accelerated_class(child)
            if accelerated is not None:
                child.__class__ = accelerated
    return model


def remove_speed_paths(model: nn.Module) -> nn.Module:
    """Turns every module that `apply_speed_paths` swapped back into its plain class (packed copies freed); returns
    `model`."""
    for module in model.modules():
        plain = PLAIN_CLASSES.get(type(module))
        if plain is not None:
            module.__dict__.pop("_packed", None)
            module.__class__ = plain
    return model


def _accelerated_class(module: nn.Module) -> type[nn.Module] | None:
    """The accelerated class for `module`, or None where it keeps its own (not a plain Linear or Conv1d of a shape
    the kernels take, not on the CPU, weights of another dtype, offloaded, or no kernel in this torch)."""
    if type(module) not in (nn.Linear, nn.Conv1d) or hasattr(module, "_hf_hook"):  # accelerate swaps its weights
        return None
    weight = module.weight
    if weight.device.type != "cpu":
        return None
    if isinstance(module, nn.Linear) and int8_weight_only(weight) is not None:
        return PrepackedLinear if torch_offers_or_warn("int8_weight_kernel") else None
    fp32 = type(weight.data) is torch.Tensor and weight.dtype == torch.float32
    if not fp32:
        return None  # bf16, fp16, torchao's other quantized tensors: their own kernels
    if isinstance(module, nn.Linear):
        accelerated = PrepackedLinear
    elif is_pointwise(module):
        accelerated = PrepackedPointwiseConv1d
    elif is_depthwise(module):
        accelerated = TimeMajorDepthwiseConv1d
    else:
        return None
    return accelerated if torch_offers_or_warn("onednn_linear") else None


__all__ = ["PLAIN_CLASSES", "apply_speed_paths", "remove_speed_paths"]
