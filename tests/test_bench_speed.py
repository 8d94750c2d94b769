"""The side-by-side benchmark runs at a tiny size and checks identical transcripts (speed is not asserted here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.benchmark_scripts import benchmark_module

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_speed.py"
TINY = ["--size", "tiny", "--batch", "2", "--beam", "3", "--seconds", "2", "--repeats", "1"]


@pytest.fixture(scope="module")
def bench():
    pytest.importorskip("fireredasr.models.fireredasr_aed")
    yield from benchmark_module("bench_speed")


def table_rows(output: str, columns: list[str]) -> list[dict[str, str]]:
    """The markdown table the script prints, as one dict per row."""
    lines = [line for line in output.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header == columns
    assert set(lines[1].strip("|").split("|")) == {"---"}
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]
    assert all(len(row) == len(columns) for row in rows)
    return [dict(zip(columns, row, strict=True)) for row in rows]


def assert_one_utterance_differs(bench, argv: list[str], capsys, message: str) -> None:
    """The run fails (exit 1), names the differing utterance and marks its table row."""
    assert bench.main(argv) == 1
    output = capsys.readouterr().out
    assert "TRANSCRIPTS DIFFER" in output and message in output
    (row,) = table_rows(output, bench.TABLE_COLUMNS)
    assert row["transcripts"].startswith("1 DIFFER")


def test_tiny_run_reports_identical_transcripts(bench, capsys):
    assert bench.main(TINY) == 0
    output = capsys.readouterr().out
    assert "all transcripts identical" in output
    (row,) = table_rows(output, bench.TABLE_COLUMNS)
    assert (row["size"], row["device"], row["dtype"], row["batch"], row["beam"]) == (
        "tiny",
        "cpu",
        "float32",
        "2",
        "3",
    )
    assert float(row["audio s"]) == 4.0
    assert float(row["tokens/utt"]) == 50.0  # the random decoder runs to the token limit
    # Non-degenerate: the two utterances get different transcripts, so "identical" compares something.
    assert row["transcripts"] == "identical (2/2 distinct)"
    for name in ("ref wall s", "ours wall s", "ref RTF", "ours RTF", "ref peak MiB", "ours peak MiB"):
        assert float(row[name]) >= 0.0
    assert row["speed-up"].endswith("x") and float(row["speed-up"][:-1]) > 0.0


def test_a_differing_transcript_fails_the_run(bench, capsys, monkeypatch):
    run_ours = bench.run_ours

    def altered(*args, **kwargs):
        outputs = run_ours(*args, **kwargs)
        outputs[1][7] += 1
        return outputs

    monkeypatch.setattr(bench, "run_ours", altered)
    assert_one_utterance_differs(bench, TINY, capsys, "utterance 1 (first difference at token 7)")


def test_static_cache_with_compiled_steps_reports_identical_transcripts(bench, capsys, monkeypatch):
    """`--cache static --compile on`: our steps run compiled (on the CPU too) and still match the reference."""
    from transformers_fireredasr import FireRedAedForConditionalGeneration

    compiled = []
    original = FireRedAedForConditionalGeneration.get_compiled_call

    def recording(self, compile_config):
        compiled.append(compile_config)
        return original(self, compile_config)

    monkeypatch.setattr(FireRedAedForConditionalGeneration, "get_compiled_call", recording)
    assert bench.main([*TINY, "--cache", "static", "--compile", "on"]) == 0
    output = capsys.readouterr().out
    assert "cache (ours) static, compile on" in output
    assert compiled and all(config.fullgraph and config.options["freezing"] for config in compiled)
    (row,) = table_rows(output, bench.TABLE_COLUMNS)
    assert row["transcripts"] == "identical (2/2 distinct)"


@pytest.mark.parametrize(
    ("flags", "value"),
    [
        (["--quantize", "int8-dynamic"], "int8-dynamic"),
        (["--ours-dtype", "bfloat16"], "bfloat16"),
        (["--quantize", "int8-weight", "--ours-dtype", "bfloat16"], "int8-weight + bfloat16"),
    ],
)
def test_reduced_precision_on_our_side_is_timed_against_the_fp32_reference(bench, capsys, flags, value):
    """Our side quantized (through from_pretrained's TorchAoConfig), in bf16 or both, the reference in fp32: the run
    succeeds, the table names both switches and counts the transcripts that differ instead of failing on them."""
    if "--quantize" in flags:
        pytest.importorskip("torchao")
    assert bench.main([*TINY, *flags]) == 0
    output = capsys.readouterr().out
    assert f"ours in {value}" in output and "TRANSCRIPTS DIFFER" not in output
    (row,) = table_rows(output, bench.TABLE_COLUMNS)
    assert row["dtype"] == f"float32 / ours {value}"
    assert row["transcripts"].startswith(("identical", "1 DIFFER", "2 DIFFER"))
    assert float(row["ours wall s"]) > 0
