"""benchmarks/bench_lid.py at its tiny size: sharing the encoder pass changes no output, and its table is sane."""

from __future__ import annotations

import json

import pytest

from tests.benchmark_scripts import benchmark_module


@pytest.fixture(scope="module")
def bench_lid():
    yield from benchmark_module("bench_lid")


def check(path) -> None:
    results = json.loads(path.read_text())
    assert results["identical"] is True
    for row in results["rows"]:
        assert row["encoder s"] > 0 and row["separate s"] > 0 and row["shared s"] > 0
        assert row["saved s"] == pytest.approx(row["separate s"] - row["shared s"], abs=1e-3)


def test_tiny_random_pair(bench_lid, tmp_path):
    out = tmp_path / "lid.json"
    argv = ["--size", "tiny", "--batch", "2", "--seconds", "1", "--max-new-tokens", "5", "--repeats", "1"]
    assert bench_lid.main([*argv, "--json", str(out)]) == 0
    check(out)


def test_converted_pair(bench_lid, converted_aed_dir, converted_lid_dir, tmp_path):
    """The test LID took the test AED's encoder, so the converted pair shares it."""
    out = tmp_path / "pair.json"
    argv = ["--asr", str(converted_aed_dir), "--lid", str(converted_lid_dir), "--batch", "2", "--seconds", "1"]
    argv += ["--max-new-tokens", "5"]
    assert bench_lid.main([*argv, "--repeats", "1", "--json", str(out)]) == 0
    check(out)
