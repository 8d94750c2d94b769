"""LoRA / QLoRA fine-tuning of FireRedASR-LLM (`transformers_fireredasr.lora`) through Trainer, and the example."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import BitsAndBytesConfig, Trainer, TrainingArguments

from transformers_fireredasr import FireRedLlmForSpeechSeq2Seq, FireRedLlmProcessor
from transformers_fireredasr.training import FireRedLlmDataCollator

peft = pytest.importorskip("peft")
from transformers_fireredasr.lora import LLM_LORA_TARGETS, llm_lora_config, prepare_llm_for_lora  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "finetune_llm_lora.py"
LAYERS = 2  # the tiny Qwen2 of the fixture


def examples(utterances):
    return [{"audio": {"array": u.audio, "sampling_rate": 16000}, "text": u.text} for u in utterances if u.text]


def train(model, folder, speech, tmp_path, steps: int = 3):
    """`steps` Trainer steps; returns the parameters before, the names that changed, and the logged losses."""
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    args = TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=steps, learning_rate=1e-2,
        logging_steps=1, save_strategy="no", report_to=[], use_cpu=True, remove_unused_columns=False,
        disable_tqdm=True, label_names=["labels"],
    )  # fmt: skip
    processor = FireRedLlmProcessor.from_pretrained(folder)
    trainer = Trainer(
        model=model, args=args, train_dataset=examples(speech[:8]), data_collator=FireRedLlmDataCollator(processor)
    )
    trainer.train()
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return before, changed, losses


def trainable(model) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


def lora_modules(model) -> list[str]:
    base = model.get_base_model()
    return [name for name, module in base.named_modules() if isinstance(module, peft.tuners.lora.LoraLayer)]


def test_lora_only_trains_lora_weights(converted_llm_dir, speech, tmp_path):
    """Encoder and projector frozen: only `lora_` weights change, and LoRA sits on the language model alone."""
    model = prepare_llm_for_lora(
        FireRedLlmForSpeechSeq2Seq.from_pretrained(converted_llm_dir), train_encoder=False, train_projector=False
    )
    assert isinstance(model, peft.PeftModel) and type(model) is peft.PeftModel  # no task-specific wrapper
    targets = lora_modules(model)
    assert len(targets) == LAYERS * len(LLM_LORA_TARGETS)
    assert all(name.startswith("language_model.") for name in targets)
    assert all("lora_" in name for name in trainable(model))
    _, changed, losses = train(model, converted_llm_dir, speech, tmp_path)
    assert changed == trainable(model)
    assert all(math.isfinite(loss) for loss in losses)


def test_lora_with_encoder_and_projector_trains_them_too(converted_llm_dir, speech, tmp_path):
    """Encoder and projector trained in full through peft's modules_to_save copies; the LM base stays frozen."""
    model = prepare_llm_for_lora(
        FireRedLlmForSpeechSeq2Seq.from_pretrained(converted_llm_dir), train_encoder=True, train_projector=True
    )
    base = model.get_base_model()
    assert type(base.encoder).__name__ == type(base.projector).__name__ == "ModulesToSaveWrapper"
    names = trainable(model)
    assert any(".encoder.modules_to_save." in n for n in names) and any(
        ".projector.modules_to_save." in n for n in names
    )
    assert all("lora_" in n or ".modules_to_save." in n for n in names)
    before, changed, _ = train(model, converted_llm_dir, speech, tmp_path)
    assert changed == names
    for part in ("lora_A", "lora_B", ".encoder.", ".projector."):
        assert any(part in name for name in changed), part
    # The original encoder/projector (kept for disabling the adapter) and the LM base weights are untouched.
    for name, parameter in model.named_parameters():
        if ".original_module." in name or (".language_model." in name and "lora_" not in name):
            assert torch.equal(parameter, before[name]), name


def test_qlora_trains_on_a_4bit_base(converted_llm_dir, speech, tmp_path):
    """QLoRA on CPU: the LM in 4-bit, LoRA + projector trained with activation checkpointing, the base stays 4-bit."""
    bnb = pytest.importorskip("bitsandbytes")
    quantization = BitsAndBytesConfig(load_in_4bit=True)
    model = FireRedLlmForSpeechSeq2Seq.from_pretrained(
        converted_llm_dir, quantization_config=quantization, device_map="cpu"
    )
    model = prepare_llm_for_lora(model, activation_checkpointing=True)
    base = model.get_base_model()
    q_proj = base.language_model.model.layers[0].self_attn.q_proj
    assert type(q_proj).__name__ == "Linear4bit" and isinstance(q_proj.base_layer, bnb.nn.Linear4bit)
    assert all(layer.gradient_checkpointing for layer in base.language_model.model.layers)
    _, changed, losses = train(model, converted_llm_dir, speech, tmp_path)
    assert len(losses) == 3 and all(math.isfinite(loss) for loss in losses)
    assert any("lora_A" in n for n in changed) and any("lora_B" in n for n in changed)
    assert any(".projector.modules_to_save." in n for n in changed)
    q_proj = base.language_model.model.layers[0].self_attn.q_proj.base_layer
    assert isinstance(q_proj, bnb.nn.Linear4bit) and q_proj.weight.dtype == torch.uint8
    assert type(base.encoder.layers[0].self_attn.q_proj) is torch.nn.Linear  # the encoder was never quantized
    assert base.encoder.layers[0].self_attn.q_proj.weight.dtype == torch.float32


def test_targets_stay_on_the_language_model(converted_llm_dir, converted_llm_lora_dir):
    model = FireRedLlmForSpeechSeq2Seq.from_pretrained(converted_llm_dir)
    # The encoder has q_proj/v_proj too: module names are anchored at the language model.
    config = peft.LoraConfig(r=2, target_modules=["q_proj"], modules_to_save=None)
    wrapped = prepare_llm_for_lora(model, config, train_projector=False)
    assert lora_modules(wrapped) == [f"language_model.model.layers.{i}.self_attn.q_proj" for i in range(LAYERS)]
    assert config.target_modules == {"q_proj"} and config.modules_to_save is None  # the caller's config is untouched
    with pytest.raises(TypeError, match="already a PeftModel"):
        prepare_llm_for_lora(wrapped)

    fresh = FireRedLlmForSpeechSeq2Seq.from_pretrained(converted_llm_dir)
    with pytest.raises(ValueError, match="stay on the language model"):
        prepare_llm_for_lora(fresh, peft.LoraConfig(target_modules=r".*\.q_proj"))
    with pytest.raises(ValueError, match="match no module"):
        prepare_llm_for_lora(fresh, llm_lora_config(target_modules=["no_such_proj"]))
    assert not any(isinstance(m, peft.tuners.lora.LoraLayer) for m in fresh.modules())  # refused before any change

    keep_lora = FireRedLlmForSpeechSeq2Seq.from_pretrained(converted_llm_lora_dir)
    with pytest.raises(ValueError, match="keep_lora"):
        prepare_llm_for_lora(keep_lora)


def test_example_script_saves_a_loadable_adapter(converted_llm_dir, speech, tmp_path):
    """examples/finetune_llm_lora.py, 2 steps on an audiofolder: its adapter loads via peft and from_pretrained."""
    if not (shutil.which("espeak-ng") and shutil.which("sox")):
        pytest.skip("espeak-ng and sox build the corpus")
    from safetensors.torch import load_file

    from tools.synthetic_corpus import build_corpus

    corpus = build_corpus(tmp_path / "corpus", num_train=6, num_test=2)
    out = tmp_path / "adapter"
    command = [
        sys.executable, str(EXAMPLE), "--model_name_or_path", str(converted_llm_dir), "--data_dir", str(corpus),
        "--output_dir", str(out), "--max_steps", "2", "--per_device_train_batch_size", "3", "--use_cpu",
        "--learning_rate", "1e-2", "--warmup_steps", "0", "--save_strategy", "no", "--lora_r", "4",
        "--lora_alpha", "8", "--max_eval_samples", "1", "--eval_num_beams", "1", "--disable_tqdm", "true",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])["eval_cer"] >= 0.0

    saved = load_file(out / "adapter_model.safetensors")
    assert any(".projector." in key for key in saved) and not any(".encoder." in key for key in saved)
    assert all(key.startswith("base_model.model.language_model.") for key in saved if "lora_" in key)
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 4

    processor = FireRedLlmProcessor.from_pretrained(out)  # saved next to the adapter
    batch = FireRedLlmDataCollator(processor)(examples(speech[:2]))
    base = FireRedLlmForSpeechSeq2Seq.from_pretrained(converted_llm_dir).eval()
    with torch.no_grad():
        expected_base = base(**batch).logits
    through_peft = peft.PeftModel.from_pretrained(base, out).eval()
    through_transformers = FireRedLlmForSpeechSeq2Seq.from_pretrained(out).eval()
    with torch.no_grad():
        logits = through_peft(**batch).logits
        assert torch.equal(through_transformers(**batch).logits, logits)
    assert not torch.allclose(logits, expected_base, atol=1e-4)  # the trained LoRA and projector are applied
    projector = saved["base_model.model.projector.linear1.weight"]
    assert torch.equal(through_peft.get_base_model().projector.linear1.weight, projector)
