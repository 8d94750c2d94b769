"""benchmarks/bench_precision.py at its tiny size: every mode runs on the bundled demo and its numbers are sane."""

from __future__ import annotations

import json

import pytest

import transformers_fireredasr
from tests.audio import requires_espeak
from tests.benchmark_scripts import benchmark_module


@pytest.fixture(scope="module")
def bench_precision():
    yield from benchmark_module("bench_precision")


@requires_espeak
def test_tiny_run_compares_every_mode_with_fp32(bench_precision, tmp_path):
    pytest.importorskip("torchao")
    out = tmp_path / "precision.json"
    # Every mode but the fastest CPU mode, whose compile is the run's longest step and whose decoding
    # test_compiled_decoding checks (`--compile --quantize int8-weight --dtype bfloat16`); its loading is checked below.
    modes = [mode for mode in bench_precision.MODES if mode != "int8-weight+bfloat16+compiled"]
    assert bench_precision.main(["--utterances", "4", "--json", str(out), "--modes", *modes]) == 0
    rows = {row["mode"]: row for row in json.loads(out.read_text())["rows"]}
    assert list(rows) == modes and "float32+compiled" in rows
    assert rows["float32"]["identical to fp32"] == 1.0 and rows["float32"]["CER vs fp32"] == 0.0
    assert rows["float32+compiled"]["identical to fp32"] == 1.0  # compiling changes no fp32 transcript
    assert rows["float32"]["CER vs reference"] < 0.5  # the demo knows these characters
    for row in rows.values():
        assert 0 <= row["identical to fp32"] <= 1 and 0 <= row["CER vs fp32"] < 1 and row["decode s"] > 0


def test_a_combined_mode_loads_with_both_switches(bench_precision):
    """`int8-weight+bfloat16` is `quantization_config` and `dtype` together: int8 decoder weights, bf16 elsewhere;
    `+compiled` adds the compiled decoding steps' load and `generate()` keywords."""
    pytest.importorskip("torchao")
    import torch

    model, generate_kwargs = bench_precision.load(
        str(transformers_fireredasr.demo_model_dir()), "int8-weight+bfloat16"
    )
    assert model.model.encoder.layers[0].feed_forward1.linear1.weight.dtype == torch.bfloat16
    assert "Int8" in type(model.model.decoder.layers[0].fc1.weight).__name__ and generate_kwargs == {}
    assert model.config._attn_implementation == "sdpa"
    model, generate_kwargs = bench_precision.load(
        str(transformers_fireredasr.demo_model_dir()), "int8-weight+bfloat16+compiled"
    )
    assert generate_kwargs["cache_implementation"] == "static" and generate_kwargs["compile_config"].options
    assert model.config._attn_implementation == "eager"  # as --compile loads it on the CPU
