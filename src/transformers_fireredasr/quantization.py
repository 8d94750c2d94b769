"""Reduced-precision modes a user chooses for CPU decoding: int8 weights through torchao, the maintained path
(`torch.ao.quantization` is deprecated), loaded by transformers' own `TorchAoConfig`.

    from_pretrained(folder, quantization_config=quantization_config("int8-dynamic"))
    fireredasr-transcribe --quantize int8-dynamic audio.wav

- `int8-weight`: int8 weights, float activations (half the memory traffic of bf16, a quarter of fp32's);
- `int8-dynamic`: int8 weights and int8 activations quantized per token at run time (int8 GEMMs).

Every `nn.Linear` of the encoder and decoder is quantized; the convolutions stay float, and so does the output
projection, whose weight is the token embeddings' (transformers leaves tied weights alone). bf16 needs no
quantizer: `dtype=torch.bfloat16` / `--dtype bfloat16`. What each mode costs in accuracy and buys in speed is
measured by `benchmarks/bench_precision.py` and `benchmarks/bench_speed.py --quantize` (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import importlib.util

QUANTIZE_MODES = {
    "int8-weight": "Int8WeightOnlyConfig",
    "int8-dynamic": "Int8DynamicActivationInt8WeightConfig",
}


def quantization_config(mode: str):
    """transformers' `TorchAoConfig` for `mode` (one of `QUANTIZE_MODES`); a ValueError names the choices, an
    ImportError says how to install torchao."""
    if mode not in QUANTIZE_MODES:
        raise ValueError(f"unknown quantization mode {mode!r}: choose one of {', '.join(QUANTIZE_MODES)}")
    if importlib.util.find_spec("torchao") is None:
        raise ImportError(f"--quantize {mode} needs torchao: pip install 'transformers-fireredasr[quantization]'")
    import torchao.quantization
    from transformers import TorchAoConfig

    return TorchAoConfig(getattr(torchao.quantization, QUANTIZE_MODES[mode])())


__all__ = ["QUANTIZE_MODES", "quantization_config"]
