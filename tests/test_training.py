"""Fine-tuning through Seq2SeqTrainer: the AED learns, predict_with_generate decodes, LoRA touches adapters only."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments, Trainer, TrainingArguments

from transformers_fireredasr import (
    FireRedAedConfig,
    FireRedAedForConditionalGeneration,
    FireRedAsrProcessor,
    FireRedLlmForSpeechSeq2Seq,
    FireRedLlmProcessor,
)
from transformers_fireredasr.training import (
    FireRedAedDataCollator,
    FireRedLlmDataCollator,
    character_error_rate,
    make_compute_metrics,
)


def examples(utterances):
    return [{"audio": {"array": u.audio, "sampling_rate": 16000}, "text": u.text} for u in utterances if u.text]


def test_character_error_rate():
    assert character_error_rate(["今天天气好"], ["今天天气很好"]) == pytest.approx(1 / 6)
    assert character_error_rate(["今天 天气"], ["今天天气"]) == 0.0
    assert character_error_rate(["多", "好"], ["", "好"]) == 1.0  # an insertion against a silent reference
    with pytest.raises(ValueError, match="empty"):
        character_error_rate(["a"], [""])


def test_aed_collator_pads_labels_with_ignore_index(converted_aed_dir, speech):
    processor = FireRedAsrProcessor.from_pretrained(converted_aed_dir)
    batch = FireRedAedDataCollator(processor)(examples([speech[0], speech[14]]))  # 6 and 8 Hanzi
    assert batch["input_features"].shape[0] == 2 and batch["attention_mask"].shape == batch["input_features"].shape[:2]
    first = processor.tokenizer(speech[0].text)["input_ids"]
    assert batch["labels"][0, : len(first)].tolist() == first and first[-1] == processor.tokenizer.eos_token_id
    assert batch["labels"][0, len(first) :].tolist() == [-100] * (batch["labels"].shape[1] - len(first))
    assert (batch["labels"][1] != -100).all()
    with pytest.raises(ValueError, match="8000 Hz"):
        FireRedAedDataCollator(processor)([{"audio": {"array": speech[0].audio, "sampling_rate": 8000}, "text": "x"}])


def test_seq2seq_trainer_learns_and_predicts(converted_aed_dir, speech, tmp_path):
    """A fresh tiny AED trained for 150 steps (seconds): the loss drops and predict_with_generate gives text + CER."""
    processor = FireRedAsrProcessor.from_pretrained(converted_aed_dir)
    torch.manual_seed(0)
    config = FireRedAedConfig(
        encoder_config=dict(hidden_size=64, num_attention_heads=4, num_hidden_layers=2, intermediate_size=256),
        d_model=64, decoder_layers=2, decoder_attention_heads=4, decoder_ffn_dim=256,
        vocab_size=len(processor.tokenizer),
    )  # fmt: skip
    model = FireRedAedForConditionalGeneration(config)
    data = examples(speech)
    args = Seq2SeqTrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=8, max_steps=150, learning_rate=3e-3, warmup_steps=10,
        logging_steps=10, save_strategy="no", report_to=[], use_cpu=True, remove_unused_columns=False,
        predict_with_generate=True, generation_num_beams=1, per_device_eval_batch_size=8, disable_tqdm=True,
    )  # fmt: skip
    trainer = Seq2SeqTrainer(
        model=model,
        args=args,
        train_dataset=data,
        data_collator=FireRedAedDataCollator(processor),
        compute_metrics=make_compute_metrics(processor.tokenizer),
    )
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert losses[-1] < 0.5 * losses[0]
    prediction = trainer.predict(data[:8])
    texts = processor.batch_decode(prediction.predictions, skip_special_tokens=True)
    assert len(texts) == 8 and any(texts)
    assert 0.0 <= prediction.metrics["test_cer"] < 1.0


def test_lora_on_the_llm_changes_adapter_weights_only(converted_llm_dir, speech, tmp_path):
    """peft LoRA on the language model through Trainer: base weights, encoder and adapter stay as they were."""
    peft = pytest.importorskip("peft")
    model = FireRedLlmForSpeechSeq2Seq.from_pretrained(converted_llm_dir)
    processor = FireRedLlmProcessor.from_pretrained(converted_llm_dir)
    lora = peft.LoraConfig(r=4, lora_alpha=8, target_modules=r".*language_model.*\.(q_proj|v_proj)")
    model = peft.get_peft_model(model, lora)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    args = TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=3, learning_rate=1e-2,
        save_strategy="no", report_to=[], use_cpu=True, remove_unused_columns=False, disable_tqdm=True,
    )  # fmt: skip
    Trainer(
        model=model, args=args, train_dataset=examples(speech[:8]), data_collator=FireRedLlmDataCollator(processor)
    ).train()
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert changed and all("lora_" in name for name in changed)
    assert any("lora_B" in name for name in changed)


def test_aed_collator_adds_pinyin_ctc_labels(converted_aed_dir, speech):
    pytest.importorskip("pypinyin")
    from tools.pinyin_units import build_unit_vocab, encode_units

    processor = FireRedAsrProcessor.from_pretrained(converted_aed_dir)
    vocab = build_unit_vocab([speech[0].text, speech[14].text])
    collator = FireRedAedDataCollator(processor, ctc_targets=partial(encode_units, vocab=vocab))
    batch = collator(examples([speech[0], speech[14]]))
    first, second = encode_units(speech[0].text, vocab), encode_units(speech[14].text, vocab)
    width = max(len(first), len(second))
    assert batch["ctc_labels"].shape == (2, width)
    assert batch["ctc_labels"][0].tolist() == first + [-100] * (width - len(first))
    assert batch["ctc_labels"][1].tolist() == second + [-100] * (width - len(second))
    assert "ctc_labels" not in FireRedAedDataCollator(processor)(examples([speech[0]]))
