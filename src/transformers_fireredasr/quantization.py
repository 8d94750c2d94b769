"""Reduced-precision modes a user chooses for CPU decoding: int8 weights through torchao, the maintained path
(`torch.ao.quantization` is deprecated), loaded by transformers' own `TorchAoConfig`.

    from_pretrained(folder, quantization_config=quantization_config("int8-dynamic"))
    fireredasr-transcribe --quantize int8-dynamic audio.wav

- `int8-weight`: int8 weights, one scale per output row (a quarter of their fp32 memory). For the AED only the
  decoder's that run every step: the encoder, the CTC head and the cross-attention's key and value projections stay
  float (`KEPT_FLOAT`; the LLM variant quantizes all its Linears). On
  the CPU, once `speed_paths.apply_speed_paths` ran (every entry point's engine does), the AED's multiply through
  torch's int8-weight kernel (`cpu_linear.PrepackedLinear`) with bf16 activations, else through torchao's own path:
  the fp32 transcripts on the demo's held-out set;
- `int8-dynamic`: int8 weights and int8 activations quantized per token at run time (torchao's int8 GEMMs) for every
  `nn.Linear` of the encoder and decoder;
- `int8-mixed` (AED only): each half in the mode that pays there, the fastest mode without compiling (benchmarks/RESULTS.md). The
  encoder, compute-bound, gets int8-dynamic's int8 GEMMs; the decoder, memory-bound, int8-weight's int8 weights.
  The CTC head stays fp32. `check_quantized` refuses it on a model it does not fit.

The convolutions stay float, and so does the output projection, whose weight is the token embeddings' (transformers
leaves tied weights alone). bf16 needs no quantizer: `dtype=torch.bfloat16` / `--dtype bfloat16`. What each mode
costs in accuracy and buys in speed is measured by `benchmarks/bench_precision.py` and
`benchmarks/bench_speed.py --quantize` (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# `int8-mixed`'s parts: which torchao config quantizes which AED Linear weights (full-match regexes over parameter
# names, torchao's `FqnToConfig` convention). Matching the `.weight` parameter, not the module: transformers would
# quantize a matched module's bias as well.
MIXED_PARTS = {
    r"re:model\.encoder\.(layers\.\d+\.(feed_forward\d\.linear\d|self_attn\.\w+_proj)|subsampling\.out)\.weight": (
        "Int8DynamicActivationInt8WeightConfig"
    ),
    r"re:model\.decoder\.layers\.\d+\.(self_attn|encoder_attn)\.[qkvo]_proj\.weight": "Int8WeightOnlyConfig",
    r"re:model\.decoder\.layers\.\d+\.fc[12]\.weight": "Int8WeightOnlyConfig",
}
# Each mode: the torchao config (its class name) for every Linear, or a table of parts (pattern -> class name).
QUANTIZE_MODES: dict[str, str | dict[str, str]] = {
    "int8-weight": "Int8WeightOnlyConfig",
    "int8-dynamic": "Int8DynamicActivationInt8WeightConfig",
    "int8-mixed": MIXED_PARTS,
}
# int8 weights pay where decoding is memory-bound: the decoder reads all its weights for every token, the encoder
# (and the CTC head on its output) reads each once per utterance, over hundreds of frames, and is compute-bound:
# int8 weights would only add their conversion there. So `int8-weight` keeps them float (and prepacked once the
# speed paths are applied). The same holds for the decoder's cross-attention key and value projections: they run once
# per utterance, on the encoder's frames, a many-row product where the int8 kernel is slower than bf16's (see
# benchmarks/RESULTS.md). transformers matches these `modules_to_not_convert` patterns against parameter names, as
# regular expressions from the start up to a module boundary (a suffix would have to name the parameter too).
CROSS_ATTENTION_KV = [r"model\.decoder\.layers\.\d+\.encoder_attn\.[kv]_proj"]
KEPT_FLOAT = {
    "int8-weight": ["model.encoder", "ctc_head", *CROSS_ATTENTION_KV],
    "int8-mixed": ["ctc_head", *CROSS_ATTENTION_KV],
}


def quantization_config(mode: str):
    """transformers' `TorchAoConfig` for `mode` (one of `QUANTIZE_MODES`); a ValueError names the choices, an
    ImportError says how to install torchao."""
    if mode not in QUANTIZE_MODES:
        raise ValueError(f"unknown quantization mode {mode!r}: choose one of {', '.join(QUANTIZE_MODES)}")
    if importlib.util.find_spec("torchao") is None:
        raise ImportError(f"--quantize {mode} needs torchao: pip install 'transformers-fireredasr[quantization]'")
    from transformers import TorchAoConfig

    with _torchao_notices_dropped():  # its quantization module registers more enums
        import torchao.quantization

    choice = QUANTIZE_MODES[mode]
    if isinstance(choice, dict):
        parts = {pattern: getattr(torchao.quantization, name)() for pattern, name in choice.items()}
        settings = torchao.quantization.FqnToConfig(parts)
    else:
        settings = getattr(torchao.quantization, choice)()
    return TorchAoConfig(settings, modules_to_not_convert=KEPT_FLOAT.get(mode))


def check_quantized(model: torch.nn.Module, mode: str | None) -> None:
    """Raises a ValueError when `mode` quantized none of `model`'s Linears, so that a mode that does not fit the
    model is an error, not a silent fp32 run: `int8-mixed` names the AED's modules, which the LLM variant lacks."""
    if mode is None:
        return
    import torch

    linears = [module for module in model.modules() if isinstance(module, torch.nn.Linear)]
    if not any("Int8" in type(module.weight).__name__ for module in linears):
        hint = (
            " int8-mixed is for FireRedASR-AED models; use int8-weight or int8-dynamic."
            if mode == "int8-mixed"
            else ""
        )
        raise ValueError(f"--quantize {mode} quantized none of the Linears of this {type(model).__name__}.{hint}")


def import_torchao_quietly() -> None:
    """Imports torchao, when it is installed and not yet imported, without its two harmless import-time notices.

    Once torchao is installed, transformers imports it with `modeling_utils`, so on importing this package, quantized
    or not. torchao 0.18's wheel carries CUDA kernel libraries that a CPU-only torch cannot load, and it logs a
    "Failed to load ..._C_*.so" warning for each; registering its enums makes torch log an "is an Enum subclass"
    notice for each. Every command would start with four such lines. Only those records are dropped, only during
    this import; any other warning passes. The package's `__init__` calls this before it imports transformers.
    """
    if "torchao" in sys.modules or importlib.util.find_spec("torchao") is None:
        return
    with _torchao_notices_dropped():
        import torchao  # noqa: F401
        import torchao.prototype.safetensors.safetensors_support  # noqa: F401 - what transformers imports of it


@contextlib.contextmanager
def _torchao_notices_dropped():
    """Drops torchao's "Failed to load ...so" warnings and torch's "is an Enum subclass" notices while it lasts."""
    notices = {
        logging.getLogger("torchao"): lambda message: message.startswith("Failed to load") and ".so" in message,
        logging.getLogger("torch.utils._pytree"): lambda message: "is an Enum subclass" in message,
    }
    filters = {logger: _Drop(is_notice) for logger, is_notice in notices.items()}
    for logger, drop in filters.items():
        logger.addFilter(drop)
    try:
        yield
    finally:
        for logger, drop in filters.items():
            logger.removeFilter(drop)


class _Drop(logging.Filter):
    """Drops the records whose message `is_notice` recognizes."""

    def __init__(self, is_notice) -> None:
        super().__init__()
        self.is_notice = is_notice

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.is_notice(str(record.msg))


__all__ = [
    "KEPT_FLOAT",
    "MIXED_PARTS",
    "QUANTIZE_MODES",
    "check_quantized",
    "import_torchao_quietly",
    "quantization_config",
]
