"""`examples/finetune_aed.py` end to end on a tiny synthetic corpus: one process, and two under torchrun (gloo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.audio import requires_espeak
from tests.benchmark_scripts import script_module

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "finetune_aed.py"
TINY = [
    "--hidden_size", "32", "--attention_heads", "2", "--encoder_layers", "1", "--decoder_layers", "1",
    "--ffn_dim", "64", "--conv_kernel_size", "3", "--per_device_train_batch_size", "4",
    "--per_device_eval_batch_size", "4", "--warmup_steps", "1", "--logging_steps", "1", "--cmvn_utterances", "8",
    "--generation_max_length", "20",
]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    pytest.importorskip("datasets")
    from tools.synthetic_corpus import build_corpus

    return build_corpus(tmp_path_factory.mktemp("corpus"), num_train=12, num_test=4, seed=5)


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, **kwargs)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


@requires_espeak
def test_from_scratch_trains_saves_and_transcribes(tiny_corpus, tmp_path):
    out = tmp_path / "run"
    args = ["--data_dir", str(tiny_corpus), "--output_dir", str(out), "--max_steps", "6", "--save_steps", "3"]
    result = run([sys.executable, str(EXAMPLE), *args, *TINY])
    assert "training processes: 1" in result.stderr
    for name in ("model.safetensors", "config.json", "generation_config.json", "dict.txt", "processor_config.json"):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-6"]
    metrics = json.loads((out / "all_results.json").read_text())
    assert metrics["eval_samples"] == 4 and 0.0 <= metrics["eval_cer"] and metrics["train_loss"] > 0
    # The saved model decodes with the published FireRedASR settings, custom keys included.
    from transformers_fireredasr.conversion.aed import AED_DECODING

    generation = json.loads((out / "generation_config.json").read_text())
    assert {key: generation.get(key) for key in AED_DECODING} == AED_DECODING

    from transformers import pipeline

    import transformers_fireredasr  # noqa: F401

    asr = pipeline("automatic-speech-recognition", model=str(out))
    text = asr(str(tiny_corpus / "test" / "000000.wav"), generate_kwargs={"num_beams": 1, "max_new_tokens": 5})["text"]
    assert isinstance(text, str)


@requires_espeak
def test_fine_tunes_an_existing_model_for_a_few_steps(tiny_corpus, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    common = ["--data_dir", str(tiny_corpus), "--max_steps", "2", "--save_steps", "100", *TINY]
    run([sys.executable, str(EXAMPLE), "--output_dir", str(first), *common])
    run([sys.executable, str(EXAMPLE), "--output_dir", str(second), "--model_name_or_path", str(first), *common])
    from safetensors.torch import load_file

    before, after = load_file(first / "model.safetensors"), load_file(second / "model.safetensors")
    assert before.keys() == after.keys() and any((before[k] != after[k]).any() for k in before)


@requires_espeak
def test_data_parallel_under_torchrun(tiny_corpus, tmp_path):
    out = tmp_path / "ddp"
    # torchrun of the interpreter running the tests: whatever `torchrun` is first on PATH may belong to another one.
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517", str(EXAMPLE),
        "--data_dir", str(tiny_corpus), "--output_dir", str(out), "--max_steps", "3", "--save_steps", "100",
        "--ddp_backend", "gloo", *TINY,
    ]  # fmt: skip
    result = run(command)
    assert result.stderr.count("training processes: 2") == 2
    state = json.loads((out / "train_results.json").read_text())
    assert state["train_loss"] > 0
    assert (out / "model.safetensors").is_file()


def train_loss(out: Path) -> float:
    return json.loads((out / "all_results.json").read_text())["train_loss"]


@requires_espeak
@pytest.mark.parametrize("targets", ["characters", "pinyin"])
def test_joint_ctc_training_adds_the_ctc_loss_and_still_evaluates(tiny_corpus, tmp_path, targets):
    common = ["--data_dir", str(tiny_corpus), "--max_steps", "2", "--save_steps", "100", "--seed", "3", *TINY]
    plain, joint = tmp_path / "plain", tmp_path / "joint"
    run([sys.executable, str(EXAMPLE), "--output_dir", str(plain), *common])
    ctc = ["--ctc_weight", "0.5", "--ctc_targets", targets, "--eval_strategy", "steps", "--eval_steps", "1"]
    run([sys.executable, str(EXAMPLE), "--output_dir", str(joint), *common, *ctc])
    # Same seed, data and first step: the losses can only differ by the CTC term.
    assert train_loss(joint) != pytest.approx(train_loss(plain), rel=1e-3)
    metrics = json.loads((joint / "all_results.json").read_text())
    assert metrics["eval_samples"] == 4 and metrics["eval_cer"] >= 0.0


@requires_espeak
def test_a_ctc_head_added_and_trained_alone(tiny_corpus, tmp_path):
    """`--add_ctc_head --train_only_ctc_head` (how the demo got its head, issue #14): the head is saved with the model,
    every other tensor stays exactly as it was, and the generation config gets no stray keys."""
    first, second = tmp_path / "first", tmp_path / "second"
    common = ["--data_dir", str(tiny_corpus), "--max_steps", "2", "--save_steps", "100", *TINY]
    run([sys.executable, str(EXAMPLE), "--output_dir", str(first), *common])
    head = ["--add_ctc_head", "--train_only_ctc_head", "--ctc_weight", "1.0", "--learning_rate", "3e-3"]
    run(
        [sys.executable, str(EXAMPLE), "--output_dir", str(second), "--model_name_or_path", str(first), *common, *head]
    )
    from safetensors.torch import load_file

    before, after = load_file(first / "model.safetensors"), load_file(second / "model.safetensors")
    assert set(after) - set(before) == {"ctc_head.weight", "ctc_head.bias"}
    assert all((before[key] == after[key]).all() for key in before)
    assert json.loads((second / "config.json").read_text())["ctc_head"] is True
    assert "ctc_head" not in json.loads((second / "generation_config.json").read_text())


@requires_espeak
def test_extra_training_folders_join_the_training_data(tiny_corpus, tmp_path):
    """`--extra_train_dirs` (how the demo learned pauses, issue #14): a plain corpus with other columns joins the
    training split (12 + 6 utterances: an epoch is 5 batches of 4 instead of 3), and a folder without a training
    split is refused by name."""
    from tools.synthetic_corpus import build_corpus

    plain = build_corpus(tmp_path / "plain", num_train=6, num_test=2, seed=6, plain=True)
    common = ["--data_dir", str(tiny_corpus), "--max_steps", "2", "--save_steps", "100", *TINY]
    out = tmp_path / "joined"
    run([sys.executable, str(EXAMPLE), "--output_dir", str(out), *common, "--extra_train_dirs", str(plain)])
    assert json.loads((out / "train_results.json").read_text())["epoch"] == pytest.approx(2 / 5)

    only_test = build_corpus(tmp_path / "only-test", num_train=0, num_test=2, seed=7, splits=("test",))
    command = [sys.executable, str(EXAMPLE), "--output_dir", str(tmp_path / "bad"), *common]
    result = subprocess.run(
        [*command, "--extra_train_dirs", str(only_test)], capture_output=True, text=True, timeout=600
    )
    assert result.returncode != 0 and f"--extra_train_dirs {only_test}: no 'train' split" in result.stderr


@pytest.fixture
def finetune_module():
    yield from script_module(EXAMPLE)


def test_batches_are_grouped_by_audio_seconds(tiny_corpus, finetune_module):
    """`input_length` (what `group_by_length` sorts by) is each clip's duration when the clips are files: transcript
    length put clips with long pauses beside short ones."""
    import wave

    import datasets

    data_args = finetune_module.DataArguments(data_dir=str(tiny_corpus))
    train = finetune_module.load_data(data_args, sampling_rate=16000)["train"]
    paths = [entry["path"] for entry in train.cast_column("audio", datasets.Audio(decode=False))["audio"]]
    seconds = []
    for path in paths:
        with wave.open(path) as clip:
            seconds.append(clip.getnframes() / clip.getframerate())
    assert train["input_length"] == pytest.approx(seconds, abs=1e-3)
    assert len(set(train["input_length"])) > 1
