#!/usr/bin/env python
"""LoRA / QLoRA fine-tuning of FireRedASR-LLM with `Trainer`.

LoRA goes on the language model's attention and MLP projections only; the Conformer encoder and the adapter
(`projector`) are trained in full or frozen by flag (`--train_encoder`, `--train_projector`, default: projector
trained, encoder frozen). `--load_in_4bit` (QLoRA: NF4 with double quantization) or `--load_in_8bit` quantizes the
language model with bitsandbytes; the encoder and projector always stay unquantized. Every `TrainingArguments` flag
works (`--max_steps`, `--activation_checkpointing`, `--bf16`, `--report_to`, ...).

The data is any `datasets` audio folder or dataset with an audio column and a transcript column, such as the
synthetic corpus of `python -m tools.synthetic_corpus` (from a checkout; formerly `fireredasr-make-corpus`):

    python examples/finetune_llm_lora.py --model_name_or_path ./FireRedASR-LLM-L-hf --data_dir ./corpus \\
        --output_dir ./llm-lora --load_in_4bit --lora_r 16 --lora_alpha 32 --max_steps 2000

Start from the default conversion (the released LoRA merged into Qwen2), not a `--keep_lora` one. The output folder
holds a peft adapter (`adapter_config.json`, `adapter_model.safetensors`: the LoRA weights, plus the encoder and
projector when they were trained) and the processor files. Load it with either of

    model = FireRedLlmForSpeechSeq2Seq.from_pretrained("./llm-lora")  # the base path comes from adapter_config.json
    model = PeftModel.from_pretrained(FireRedLlmForSpeechSeq2Seq.from_pretrained(base), "./llm-lora")

and `model.merge_and_unload().save_pretrained(...)` (on a PeftModel loaded without quantization) writes one plain
model for the ASR pipeline. With an eval split, the script reports the eval loss and the CER of `generate()`.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass, field

import datasets
import torch
from transformers import BitsAndBytesConfig, HfArgumentParser, Trainer, TrainingArguments, set_seed

from transformers_fireredasr import FireRedLlmForSpeechSeq2Seq, FireRedLlmProcessor
from transformers_fireredasr.lora import llm_lora_config, prepare_llm_for_lora
from transformers_fireredasr.training import FireRedLlmDataCollator, character_error_rate

logger = logging.getLogger(__name__)


@dataclass
class ModelArguments:
    """The converted model, its quantization, and what is trained."""

    model_name_or_path: str = field(metadata={"help": "Converted FireRedASR-LLM folder or Hub id."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank (the released model used 64)."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha; the update is scaled by alpha / r."})
    lora_dropout: float = field(default=0.05)
    train_encoder: bool = field(default=False, metadata={"help": "Also train the Conformer encoder in full."})
    train_projector: bool = field(default=True, metadata={"help": "Also train the adapter (--no_train_projector)."})
    load_in_4bit: bool = field(default=False, metadata={"help": "QLoRA: the language model in 4-bit NF4."})
    load_in_8bit: bool = field(default=False, metadata={"help": "The language model in 8-bit."})
    dtype: str = field(
        default="float32",
        metadata={"help": "Weights and 4-bit compute dtype (bfloat16 on GPUs; fp16 gives garbage).",
                  "choices": ["float32", "bfloat16"]},
    )  # fmt: skip


@dataclass
class DataArguments:
    """Where the audio and transcripts come from, and how the eval split is decoded."""

    data_dir: str | None = field(default=None, metadata={"help": "An audiofolder (train/ and test/ with metadata)."})
    dataset_name: str | None = field(default=None, metadata={"help": "A `datasets` name or path instead."})
    train_split: str = field(default="train")
    eval_split: str = field(default="test")
    audio_column: str = field(default="audio")
    text_column: str = field(default="transcription")
    max_train_samples: int | None = field(default=None)
    max_eval_samples: int | None = field(default=None)
    eval_num_beams: int | None = field(
        default=None, metadata={"help": "Beams for the eval CER; default: the model's generation config (3)."}
    )


def load_data(data_args: DataArguments, sampling_rate: int) -> datasets.DatasetDict:
    if data_args.data_dir:
        data = datasets.load_dataset("audiofolder", data_dir=data_args.data_dir)
    elif data_args.dataset_name:
        data = datasets.load_dataset(data_args.dataset_name)
    else:
        raise ValueError("pass --data_dir (an audiofolder) or --dataset_name")
    limits = {data_args.train_split: data_args.max_train_samples, data_args.eval_split: data_args.max_eval_samples}
    for split, limit in limits.items():
        if split in data and limit is not None:
            data[split] = data[split].select(range(min(limit, len(data[split]))))
    # Transcript length stands in for audio length so that batches group similar lengths (less padding).
    data = data.map(lambda text: {"input_length": len(text)}, input_columns=[data_args.text_column])
    return data.cast_column(data_args.audio_column, datasets.Audio(sampling_rate=sampling_rate))


def load_model(model_args: ModelArguments, device: torch.device) -> FireRedLlmForSpeechSeq2Seq:
    """The converted model, its language model quantized when asked (encoder and projector never are)."""
    if model_args.load_in_4bit and model_args.load_in_8bit:
        raise ValueError("pass at most one of --load_in_4bit and --load_in_8bit")
    dtype = getattr(torch, model_args.dtype)
    quantization = None
    if model_args.load_in_4bit:
        quantization = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype
        )
    elif model_args.load_in_8bit:
        quantization = BitsAndBytesConfig(load_in_8bit=True)
    return FireRedLlmForSpeechSeq2Seq.from_pretrained(
        model_args.model_name_or_path,
        dtype=dtype,
        quantization_config=quantization,
        # A quantized model is placed at load time (each process its own device); Trainer does not move it.
        device_map={"": device} if quantization is not None else None,
    )


@torch.no_grad()
def transcribe(
    model, processor: FireRedLlmProcessor, split: datasets.Dataset, data_args: DataArguments, batch_size: int
) -> list[str]:
    """Greedy or beam transcripts of `split` through `generate()` (audio in, text out: no prompt from the labels)."""
    model.eval()
    generate_kwargs = {} if data_args.eval_num_beams is None else {"num_beams": data_args.eval_num_beams}
    sampling_rate = processor.feature_extractor.sampling_rate
    texts = []
    for start in range(0, len(split), batch_size):
        rows = split.select(range(start, min(start + batch_size, len(split))))
        audio = [example[data_args.audio_column]["array"] for example in rows]
        inputs = processor(audio, sampling_rate=sampling_rate).to(model.device)
        features, mask = inputs["input_features"], inputs["feature_attention_mask"]
        sequences = model.generate(input_features=features, feature_attention_mask=mask, **generate_kwargs)
        texts += processor.batch_decode(sequences, skip_special_tokens=True)
    return texts


def main() -> None:
    parser = HfArgumentParser((ModelArguments, DataArguments, TrainingArguments))
    # Defaults that suit speech + LoRA: keep the audio column for the collator, labels named for the Trainer.
    parser.set_defaults(
        output_dir="fireredasr-llm-lora",
        remove_unused_columns=False,
        label_names=["labels"],
        per_device_train_batch_size=8,
        per_device_eval_batch_size=8,
        learning_rate=1e-4,
        warmup_steps=100,
        lr_scheduler_type="cosine",
        max_steps=2000,
        logging_steps=10,
        save_steps=500,
        save_total_limit=2,
        eval_strategy="no",
        report_to="none",
        dataloader_num_workers=0,
        train_sampling_strategy="group_by_length",
        length_column_name="input_length",
    )
    if len(sys.argv) == 2 and sys.argv[1].endswith(".json"):
        model_args, data_args, training_args = parser.parse_json_file(sys.argv[1])
    else:
        model_args, data_args, training_args = parser.parse_args_into_dataclasses()
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    set_seed(training_args.seed)

    processor = FireRedLlmProcessor.from_pretrained(model_args.model_name_or_path)
    data = load_data(data_args, processor.feature_extractor.sampling_rate)
    model = load_model(model_args, training_args.device)
    lora = llm_lora_config(r=model_args.lora_r, lora_alpha=model_args.lora_alpha, lora_dropout=model_args.lora_dropout)
    # The encoder and projector, when trained, go into peft's `modules_to_save`: the adapter folder then holds what
    # they learned and `PeftModel.from_pretrained` restores it (see `prepare_llm_for_lora`).
    model = prepare_llm_for_lora(
        model,
        lora,
        train_encoder=model_args.train_encoder,
        train_projector=model_args.train_projector,
        activation_checkpointing=training_args.activation_checkpointing,
    )
    if training_args.process_index == 0:
        model.print_trainable_parameters()
    language_model_config = model.get_base_model().language_model.config
    language_model_config.use_cache = False  # no KV cache while training; generate() below turns it back on

    eval_data = data[data_args.eval_split] if data_args.eval_split in data else None
    collator = FireRedLlmDataCollator(
        processor, audio_column=data_args.audio_column, text_column=data_args.text_column
    )
    # Plain Trainer: the transcript is part of `input_ids` (labels on it only), so the loss needs no seq2seq logic.
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=data[data_args.train_split],
        eval_dataset=eval_data,
        data_collator=collator,
        processing_class=processor,
    )
    train_result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model()  # the peft adapter (LoRA + trained encoder/projector) and the processor files
    trainer.log_metrics("train", train_result.metrics)
    trainer.save_metrics("train", train_result.metrics)
    language_model_config.use_cache = True

    if eval_data is not None:
        metrics = trainer.evaluate(metric_key_prefix="eval")
        if trainer.is_world_process_zero():
            texts = transcribe(model, processor, eval_data, data_args, training_args.per_device_eval_batch_size)
            metrics["eval_cer"] = character_error_rate(texts, eval_data[data_args.text_column])
            metrics["eval_samples"] = len(eval_data)
            trainer.log_metrics("eval", metrics)
            trainer.save_metrics("eval", metrics)
            print(json.dumps({"eval_cer": metrics["eval_cer"], "eval_loss": metrics.get("eval_loss")}))
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


if __name__ == "__main__":
    main()
