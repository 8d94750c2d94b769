#!/usr/bin/env python
"""Fine-tune FireRedASR-AED (or train a small one from scratch) with `Seq2SeqTrainer`.

The data is any `datasets` audio folder or dataset with an audio column and a transcript column, such as the
synthetic corpus of `python -m tools.synthetic_corpus` (from a checkout; formerly `fireredasr-make-corpus`). Every
`Seq2SeqTrainingArguments` flag works (`--max_steps`, `--save_steps`, `--report_to`, ...); progress bars and
checkpoints come from the Trainer.

Fine-tune a converted model:

    python examples/finetune_aed.py --model_name_or_path ./FireRedASR-AED-L-hf --data_dir ./corpus \\
        --output_dir ./aed-finetuned --max_steps 2000

Train a small model from scratch (how the bundled demo model was made: `examples/train_demo_model.sh` has the exact
command). A new Mandarin model needs the auxiliary pinyin CTC loss to start learning within an hour. Training from
scratch uses the checkout's development tooling (`tools/`: vocabulary, CMVN, pinyin units), which the installed
package does not ship; fine-tuning an existing model needs only the package:

    python -m tools.synthetic_corpus ./corpus --num-train 8000 --num-test 300
    python examples/finetune_aed.py --data_dir ./corpus --output_dir ./demo --ctc_weight 0.5 --ctc_targets pinyin

Training data from several folders: `--extra_train_dirs ./corpus-plain` (repeatable) adds another folder's training
split to `--data_dir`'s, as the demo's stage 3 mixes its recordings with and without pauses; evaluation stays on
`--data_dir`.

Data-parallel on several processes (gloo on CPU, nccl on GPUs): `torchrun --nproc_per_node 2 examples/finetune_aed.py ...`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import datasets
import numpy as np
import torch
from transformers import HfArgumentParser, Seq2SeqTrainer, Seq2SeqTrainingArguments, set_seed

# `python examples/finetune_aed.py` (and torchrun) puts examples/ on sys.path, not the checkout's root: the root makes
# its `tools/` importable (training from scratch; development tooling, not part of the installed package). The
# package itself still comes from the install: it lives under src/, not in the root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transformers_fireredasr import (  # noqa: E402
    FireRedAedConfig,
    FireRedAedForConditionalGeneration,
    FireRedAsrFeatureExtractor,
    FireRedAsrProcessor,
    FireRedAsrTokenizer,
)
from transformers_fireredasr.batch.inputs import file_seconds  # noqa: E402
from transformers_fireredasr.conversion.aed import aed_generation_config  # noqa: E402
from transformers_fireredasr.modeling_conformer import encoder_frame_mask  # noqa: E402
from transformers_fireredasr.training import (  # noqa: E402
    CtcAuxiliaryHead,
    FireRedAedDataCollator,
    ctc_loss,
    make_compute_metrics,
)

logger = logging.getLogger(__name__)


@dataclass
class ModelArguments:
    """The model to fine-tune, or the sizes of a new one trained from scratch."""

    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Converted model folder or Hub id; leave unset to train from scratch."}
    )
    hidden_size: int = field(default=128, metadata={"help": "From scratch: encoder and decoder width."})
    encoder_layers: int = field(default=5, metadata={"help": "From scratch: Conformer blocks."})
    decoder_layers: int = field(default=2, metadata={"help": "From scratch: decoder layers."})
    attention_heads: int = field(default=4, metadata={"help": "From scratch: attention heads."})
    ffn_dim: int = field(default=384, metadata={"help": "From scratch: feed-forward width."})
    conv_kernel_size: int = field(default=15, metadata={"help": "From scratch: Conformer depthwise kernel."})
    dropout: float = field(default=0.1, metadata={"help": "From scratch: residual and activation dropout."})
    initializer_range: float = field(
        default=0.05, metadata={"help": "From scratch: std of the initial weights (about PyTorch's default here)."}
    )
    cmvn_utterances: int = field(default=500, metadata={"help": "From scratch: utterances to measure CMVN on."})
    ctc_weight: float = field(
        default=0.0,
        metadata={"help": "Weight of a training-only CTC loss on the encoder (0.3 helps a new model learn to align)."},
    )
    add_ctc_head: bool = field(
        default=False,
        metadata={
            "help": "Give the model a character CTC head (`config.ctc_head`, saved with it; what word timestamps "
            "need) if it has none. With --ctc_targets characters the CTC loss then trains that head."
        },
    )
    train_only_ctc_head: bool = field(
        default=False,
        metadata={
            "help": "Freeze everything but the model's CTC head: it learns to align on the trained encoder while the "
            "transcripts stay exactly those of the model fine-tuned from (use with --add_ctc_head --ctc_weight 1)."
        },
    )
    ctc_head_lr_scale: float = field(
        default=1.0,
        metadata={
            "help": "Learning-rate multiplier for the model's own CTC head (a new head on a trained encoder is a "
            "linear probe: at the encoder's rate its logits barely move off all-blank for hundreds of steps)."
        },
    )
    ctc_targets: str = field(
        default="characters",
        metadata={
            "help": "What the CTC loss predicts: 'characters' (the model's tokens) or 'pinyin' (initial, final and "
            "tone of each Hanzi, via pypinyin; a new Mandarin model aligns within hundreds of steps instead of "
            "thousands).",
            "choices": ["characters", "pinyin"],
        },
    )


@dataclass
class DataArguments:
    """Where the audio and transcripts come from."""

    data_dir: str | None = field(default=None, metadata={"help": "An audiofolder (train/ and test/ with metadata)."})
    dataset_name: str | None = field(default=None, metadata={"help": "A `datasets` name or path instead."})
    extra_train_dirs: list[str] = field(
        default_factory=list,
        metadata={
            "help": "More audiofolders whose training splits join the training data (audio and transcript columns "
            "only), e.g. the same sentences recorded with and without pauses; evaluation stays on the main data."
        },
    )
    train_split: str = field(default="train")
    eval_split: str = field(default="test")
    audio_column: str = field(default="audio")
    text_column: str = field(default="transcription")
    max_train_samples: int | None = field(default=None)
    max_eval_samples: int | None = field(default=None)


def load_data(data_args: DataArguments, sampling_rate: int) -> datasets.DatasetDict:
    if data_args.data_dir:
        data = datasets.load_dataset("audiofolder", data_dir=data_args.data_dir)
    elif data_args.dataset_name:
        data = datasets.load_dataset(data_args.dataset_name)
    else:
        raise ValueError("pass --data_dir (an audiofolder) or --dataset_name")
    if data_args.extra_train_dirs:
        data[data_args.train_split] = concatenate_train_splits(data[data_args.train_split], data_args)
    for split, limit in ((data_args.train_split, data_args.max_train_samples), (data_args.eval_split, data_args.max_eval_samples)):  # fmt: skip
        if split in data and limit is not None:
            data[split] = data[split].select(range(min(limit, len(data[split]))))
    data = datasets.DatasetDict({split: with_input_lengths(part, data_args) for split, part in data.items()})
    return data.cast_column(data_args.audio_column, datasets.Audio(sampling_rate=sampling_rate))


def with_input_lengths(data: datasets.Dataset, data_args: DataArguments) -> datasets.Dataset:
    """Adds `input_length`, by which batches group similar lengths (less padding): the audio's seconds when every
    clip is a file (its wav header, else its size), else the transcript's length.

    Transcript length alone put clips with long pauses beside short ones: on the demo's corpus with pauses the
    padding made each training step about three times slower.
    """
    audio = data.cast_column(data_args.audio_column, datasets.Audio(decode=False))[data_args.audio_column]
    paths = [entry.get("path") for entry in audio]
    if paths and all(path and os.path.isfile(path) for path in paths):
        return data.add_column("input_length", [file_seconds(path) for path in paths])
    return data.map(lambda text: {"input_length": len(text)}, input_columns=[data_args.text_column])


def concatenate_train_splits(train: datasets.Dataset, data_args: DataArguments) -> datasets.Dataset:
    """`train` followed by the training split of each `--extra_train_dirs` folder, on the audio and text columns.

    The other metadata columns differ between folders (a corpus with pauses describes them), and
    `concatenate_datasets` needs one schema, so only the two columns training reads are kept.
    """
    columns = [data_args.audio_column, data_args.text_column]
    parts = [train.select_columns(columns)]
    for folder in data_args.extra_train_dirs:
        extra = datasets.load_dataset("audiofolder", data_dir=folder)
        if data_args.train_split not in extra:
            raise ValueError(f"--extra_train_dirs {folder}: no {data_args.train_split!r} split in it")
        parts.append(extra[data_args.train_split].select_columns(columns).cast(parts[0].features))
    return datasets.concatenate_datasets(parts)


def new_model_and_processor(
    model_args: ModelArguments, train: datasets.Dataset, data_args: DataArguments, output_dir: str
) -> tuple[FireRedAedForConditionalGeneration, FireRedAsrProcessor]:
    """A fresh model with a character vocabulary of the training transcripts and CMVN measured on the training audio."""
    from tools.new_model import fit_cmvn, write_char_vocab  # the checkout's tooling: only training from scratch

    vocab = write_char_vocab(train[data_args.text_column], f"{output_dir}/dict.txt")
    tokenizer = FireRedAsrTokenizer(vocab_file=str(vocab))
    sample = train.select(range(min(model_args.cmvn_utterances, len(train))))
    audio = [np.asarray(example[data_args.audio_column]["array"], dtype=np.float32) for example in sample]
    feature_extractor = fit_cmvn(FireRedAsrFeatureExtractor(), audio)
    processor = FireRedAsrProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer)
    config = FireRedAedConfig(
        encoder_config=dict(
            hidden_size=model_args.hidden_size,
            num_hidden_layers=model_args.encoder_layers,
            num_attention_heads=model_args.attention_heads,
            intermediate_size=model_args.ffn_dim,
            conv_kernel_size=model_args.conv_kernel_size,
            hidden_dropout=model_args.dropout,
            activation_dropout=model_args.dropout,
            initializer_range=model_args.initializer_range,
        ),
        initializer_range=model_args.initializer_range,
        vocab_size=len(tokenizer),
        d_model=model_args.hidden_size,
        decoder_layers=model_args.decoder_layers,
        decoder_attention_heads=model_args.attention_heads,
        decoder_ffn_dim=model_args.ffn_dim,
        dropout=model_args.dropout,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.bos_token_id,
        blank_token_id=tokenizer.convert_tokens_to_ids("<blank>"),
        ctc_head=model_args.add_ctc_head,
    )
    model = FireRedAedForConditionalGeneration(config)
    # The converters' published settings. Not built from `model.generation_config`: `update()` and a config made
    # with `_from_model_config=True` both drop keys GenerationConfig does not define (softmax_smoothing, ...).
    model.generation_config = aed_generation_config(config)
    return model, processor


class JointCtcSeq2SeqTrainer(Seq2SeqTrainer):
    """`Seq2SeqTrainer` whose training loss is `(1 - w) * attention loss + w * CTC loss` on the encoder output.

    The CTC head is either the model's own (`config.ctc_head`; `ctc_head=None` here: character targets, saved with
    the model) or a training-only `CtcAuxiliaryHead` outside the model, so checkpoints hold only the released
    architecture; that one joins the optimizer as its own parameter group. Under DDP the auxiliary head is not
    wrapped, so its gradients are not averaged across processes (each keeps its own head); the model's gradients are.
    """

    def __init__(
        self, *args, ctc_head: CtcAuxiliaryHead | None, ctc_weight: float, ctc_head_lr_scale: float = 1.0, **kwargs
    ):
        super().__init__(*args, **kwargs)
        self.ctc_head = None if ctc_head is None else ctc_head.to(self.args.device)
        self.ctc_weight = ctc_weight
        self.ctc_head_lr_scale = ctc_head_lr_scale

    def create_optimizer(self, model=None):
        optimizer = super().create_optimizer(model)
        # Added before the scheduler is made, so the learning-rate schedule covers the head too.
        if self.ctc_head is not None:
            optimizer.add_param_group({"params": list(self.ctc_head.parameters()), "weight_decay": 0.0})
        elif self.ctc_head_lr_scale != 1.0:  # the model's own head in a group of its own, at a scaled rate
            head = list(self.model.ctc_head.parameters())
            ids = {id(parameter) for parameter in head}
            for group in optimizer.param_groups:
                group["params"] = [parameter for parameter in group["params"] if id(parameter) not in ids]
            lr = self.args.learning_rate * self.ctc_head_lr_scale
            optimizer.add_param_group({"params": head, "weight_decay": 0.0, "lr": lr})
        return optimizer

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        # Pinyin unit targets (from the collator's `ctc_targets`) replace the character labels for CTC.
        ctc_labels = inputs.pop("ctc_labels", None)
        outputs = model(**inputs)
        loss = outputs.loss
        if model.training and self.ctc_weight > 0:
            encoder_mask = encoder_frame_mask((outputs.encoder_last_hidden_state,), inputs.get("attention_mask"))
            if encoder_mask is None:
                encoder_mask = torch.ones(outputs.encoder_last_hidden_state.shape[:2], device=loss.device)
            targets, ignore = (
                (inputs["labels"], [model.config.eos_token_id]) if ctc_labels is None else (ctc_labels, [])
            )
            if self.ctc_head is None:  # the model's own character CTC head
                ctc = ctc_loss(outputs.ctc_log_probs, encoder_mask, targets, ignore, model.config.blank_token_id)
            else:
                ctc = self.ctc_head(outputs.encoder_last_hidden_state, encoder_mask.long(), targets, ignore)
            loss = (1 - self.ctc_weight) * loss + self.ctc_weight * ctc
        return (loss, outputs) if return_outputs else loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None, **gen_kwargs):
        inputs = {key: value for key, value in inputs.items() if key != "ctc_labels"}
        return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys, **gen_kwargs)


def main() -> None:
    parser = HfArgumentParser((ModelArguments, DataArguments, Seq2SeqTrainingArguments))
    # Defaults that suit speech: keep the audio column for the collator, decode to score CER, small eval batches.
    parser.set_defaults(
        output_dir="fireredasr-aed-finetuned",
        remove_unused_columns=False,
        predict_with_generate=True,
        generation_num_beams=1,
        per_device_train_batch_size=32,
        per_device_eval_batch_size=32,
        learning_rate=1e-3,
        warmup_steps=500,
        lr_scheduler_type="cosine",
        weight_decay=0.01,
        max_steps=6000,
        logging_steps=50,
        save_steps=1000,
        save_total_limit=2,
        eval_strategy="no",
        report_to="none",
        dataloader_num_workers=0,
        label_names=["labels"],
        train_sampling_strategy="group_by_length",
        length_column_name="input_length",
    )
    if len(sys.argv) == 2 and sys.argv[1].endswith(".json"):
        model_args, data_args, training_args = parser.parse_json_file(sys.argv[1])
    else:
        model_args, data_args, training_args = parser.parse_args_into_dataclasses()
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    set_seed(training_args.seed)
    # Subnormal floats (tiny gradients and Adam moments) make x86 CPUs 10-20x slower; training does not need them.
    torch.set_flush_denormal(True)

    if model_args.model_name_or_path:
        processor = FireRedAsrProcessor.from_pretrained(model_args.model_name_or_path)
        # `ctc_head=True` adds a freshly initialised CTC head to a model saved without one (set on the config, not
        # passed to from_pretrained, which would also write it into the generation config).
        config = FireRedAedConfig.from_pretrained(model_args.model_name_or_path)
        config.ctc_head = config.ctc_head or model_args.add_ctc_head
        model = FireRedAedForConditionalGeneration.from_pretrained(model_args.model_name_or_path, config=config)
        data = load_data(data_args, processor.feature_extractor.sampling_rate)
    else:
        data = load_data(data_args, FireRedAsrFeatureExtractor().sampling_rate)
        with training_args.main_process_first(desc="vocabulary and CMVN"):
            os.makedirs(training_args.output_dir, exist_ok=True)
            model, processor = new_model_and_processor(
                model_args, data[data_args.train_split], data_args, training_args.output_dir
            )
    if model_args.train_only_ctc_head:
        if model.ctc_head is None:
            raise ValueError("--train_only_ctc_head needs a model with a CTC head (--add_ctc_head)")
        for name, parameter in model.named_parameters():
            parameter.requires_grad = name.startswith("ctc_head.")
    logger.info(
        "model: %.2fM parameters; training processes: %d", model.num_parameters() / 1e6, training_args.world_size
    )

    eval_data = data[data_args.eval_split] if data_args.eval_split in data else None
    trainer_class, extra, ctc_targets = Seq2SeqTrainer, {}, None
    if model_args.ctc_weight > 0:
        if model_args.ctc_targets == "pinyin":
            from tools.pinyin_units import BLANK_UNIT, build_unit_vocab, encode_units  # the checkout's tooling

            unit_vocab = build_unit_vocab(data[data_args.train_split][data_args.text_column])
            ctc_targets = partial(encode_units, vocab=unit_vocab)  # a module-level function: picklable for workers
            head = CtcAuxiliaryHead(model.config.d_model, len(unit_vocab), unit_vocab[BLANK_UNIT])
        elif model.ctc_head is not None:
            head = None  # the model's own head learns the characters and is saved with it
        else:
            blank = processor.tokenizer.convert_tokens_to_ids("<blank>")
            head = CtcAuxiliaryHead(model.config.d_model, model.config.vocab_size, blank)
        if model_args.ctc_head_lr_scale != 1.0 and head is not None:
            raise ValueError("--ctc_head_lr_scale applies to the model's own CTC head (--add_ctc_head, characters)")
        trainer_class, extra = (
            JointCtcSeq2SeqTrainer,
            {
                "ctc_head": head,
                "ctc_weight": model_args.ctc_weight,
                "ctc_head_lr_scale": model_args.ctc_head_lr_scale,
            },
        )
    trainer = trainer_class(
        **extra,
        model=model,
        args=training_args,
        train_dataset=data[data_args.train_split],
        eval_dataset=eval_data,
        data_collator=FireRedAedDataCollator(
            processor,
            audio_column=data_args.audio_column,
            text_column=data_args.text_column,
            ctc_targets=ctc_targets,
        ),
        processing_class=processor,
        compute_metrics=make_compute_metrics(processor.tokenizer),
    )
    train_result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model()  # model, generation config and processor files
    trainer.log_metrics("train", train_result.metrics)
    trainer.save_metrics("train", train_result.metrics)

    if eval_data is not None:
        metrics = trainer.evaluate(metric_key_prefix="eval")
        metrics["eval_samples"] = len(eval_data)
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
        if trainer.is_world_process_zero():
            print(json.dumps({"eval_cer": metrics.get("eval_cer"), "eval_loss": metrics.get("eval_loss")}))
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


if __name__ == "__main__":
    main()
