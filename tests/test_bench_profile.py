"""The profiling script runs at a tiny size: encoder and decoder timed apart, per-step figures, operator tables."""

from __future__ import annotations

import re

import pytest

from tests.benchmark_scripts import benchmark_module


@pytest.fixture(scope="module")
def bench():
    pytest.importorskip("fireredasr.models.fireredasr_aed")
    yield from benchmark_module("bench_profile")


@pytest.mark.parametrize("cache", ["dynamic", "static"])
def test_profile_prints_parts_steps_and_operators(bench, capsys, cache):
    argv = ["--size", "tiny", "--seconds", "2", "--max-new-tokens", "8", "--repeats", "1", "--rows", "5"]
    assert bench.main([*argv, "--cache", cache]) == 0
    output = capsys.readouterr().out
    assert re.search(r"encoder \d+\.\d+ s; beam search \d+\.\d+ s = \d+\.\d+ ms per step", output)
    assert re.search(r"decoder weights read per step \d+\.\d+ GB -> [\d.]+ GB/s; copy bandwidth [\d.]+ GB/s", output)
    assert "tiny float32, batch 1, beam 3, 2 s, 8 steps" in output
    for part in ("encoder", "beam search"):
        assert f"## {part}: top operators by self CPU time" in output
        assert f"## {part}: by input shape" in output


def test_profile_of_a_quantized_model_shows_its_int8_kernel(bench, capsys):
    """`--quantize int8-weight` profiles the model as a user loads it: the decoder's products are torch's int8
    kernel, named in the beam search's table."""
    pytest.importorskip("torchao")
    argv = ["--size", "tiny", "--seconds", "2", "--max-new-tokens", "8", "--repeats", "1", "--rows", "60"]
    assert bench.main([*argv, "--quantize", "int8-weight"]) == 0
    output = capsys.readouterr().out
    assert "tiny int8-weight, batch 1, beam 3, 2 s" in output
    search_table = output.split("## beam search: top operators")[1]
    assert "aten::_weight_int8pack_mm" in search_table
