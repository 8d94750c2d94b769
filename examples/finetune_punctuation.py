"""Fine-tune a punctuation model on your own punctuated text with `Trainer`, and report F1 per mark on held-out text.

    python examples/finetune_punctuation.py --model FireRedTeam/FireRedPunc \
        --train-file my_train.txt --eval-file my_test.txt --output-dir my-punc

Each line of the text files is one punctuated text (a sentence, a paragraph). `--model` is a punctuation model
folder or Hub id (a converted FireRedPunc, an original release, or one this script wrote). With `--new-model VOCAB`
instead, a small BERT token classifier is built from nothing over that vocabulary file (`--hidden-size`, `--layers`,
...): how the demo's punctuation model was made (examples/train_demo_punctuation.sh). The output folder loads with
`Punctuator.from_pretrained`, `--punctuation` and `punctuation_model=`; `eval_results.json` holds the precision,
recall and F1 of each mark on the held-out text, before and after training.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from datasets import Dataset
from transformers import (
    AutoModelForTokenClassification,
    AutoTokenizer,
    BertConfig,
    BertForTokenClassification,
    BertTokenizer,
    DataCollatorForTokenClassification,
    Trainer,
    TrainingArguments,
)

from transformers_fireredasr.conversion.resolve import resolve_model
from transformers_fireredasr.punctuation_training import (
    LABELS,
    punctuation_examples,
    punctuation_metrics,
    read_punctuated_lines,
)


def new_model(vocab_file: Path, output_dir: Path, options: argparse.Namespace):
    """A randomly initialised BERT token classifier over `vocab_file`, and its tokenizer (saved in `output_dir`)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "vocab.txt").write_text(vocab_file.read_text(encoding="utf-8"), encoding="utf-8")
    tokenizer = BertTokenizer.from_pretrained(str(output_dir), do_lower_case=True)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=options.hidden_size,
        num_hidden_layers=options.layers,
        num_attention_heads=options.heads,
        intermediate_size=options.intermediate_size,
        max_position_embeddings=options.max_positions,
        id2label=dict(enumerate(LABELS)),
        label2id={label: index for index, label in enumerate(LABELS)},
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(options.seed)
    model = BertForTokenClassification(config)
    with torch.no_grad():  # sinusoidal positions, as the original Transformer's (see sinusoidal_positions)
        model.bert.embeddings.position_embeddings.weight.copy_(sinusoidal_positions(config))
    return model, tokenizer


def sinusoidal_positions(config: BertConfig) -> torch.Tensor:
    """Position embeddings of the original Transformer, scaled to BERT's initial range.

    A new BERT's random position embeddings carry no notion of which tokens are neighbours, and a small model
    trained from nothing stays for long at the marks' prior before it learns that a mark depends on the next
    words. Sinusoids make the offset between two positions visible to attention from the first step."""
    positions = torch.arange(config.max_position_embeddings, dtype=torch.float32)[:, None]
    rates = torch.exp(torch.arange(0, config.hidden_size, 2, dtype=torch.float32) * (-9.2103 / config.hidden_size))
    table = torch.zeros(config.max_position_embeddings, config.hidden_size)
    table[:, 0::2] = torch.sin(positions * rates)
    table[:, 1::2] = torch.cos(positions * rates)
    return table * config.initializer_range * 10


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    start = parser.add_mutually_exclusive_group(required=True)
    start.add_argument("--model", help="a punctuation model folder or Hub id to fine-tune")
    start.add_argument("--new-model", type=Path, metavar="VOCAB", help="build a new small model over this vocab.txt")
    parser.add_argument("--train-file", nargs="+", required=True, help="punctuated text, one text a line")
    parser.add_argument("--eval-file", nargs="+", required=True, help="held-out punctuated text, one text a line")
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--max-tokens", type=int, default=126, help="tokens per training piece after [CLS]")
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--max-steps", type=int, default=-1, help="stop after this many steps (-1: --epochs)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hidden-size", type=int, default=128, help="--new-model only")
    parser.add_argument("--layers", type=int, default=4, help="--new-model only")
    parser.add_argument("--heads", type=int, default=4, help="--new-model only")
    parser.add_argument("--intermediate-size", type=int, default=512, help="--new-model only")
    parser.add_argument("--max-positions", type=int, default=512, help="--new-model only")
    options = parser.parse_args(argv)

    if options.model is not None:
        folder = resolve_model(options.model)
        model = AutoModelForTokenClassification.from_pretrained(folder)
        tokenizer = AutoTokenizer.from_pretrained(folder)
    else:
        model, tokenizer = new_model(options.new_model, options.output_dir, options)
    limit = min(options.max_tokens, model.config.max_position_embeddings - 1)
    train = Dataset.from_list(
        punctuation_examples(read_punctuated_lines(options.train_file), tokenizer, model.config.label2id, limit)
    )
    held_out = Dataset.from_list(
        punctuation_examples(read_punctuated_lines(options.eval_file), tokenizer, model.config.label2id, limit)
    )
    arguments = TrainingArguments(
        output_dir=str(options.output_dir / "checkpoints"),
        num_train_epochs=options.epochs,
        max_steps=options.max_steps,
        per_device_train_batch_size=options.batch_size,
        per_device_eval_batch_size=options.batch_size * 2,
        learning_rate=options.learning_rate,
        warmup_steps=0.06,
        weight_decay=0.01,
        lr_scheduler_type="linear",
        logging_steps=50,
        eval_strategy="no",
        save_strategy="no",
        report_to=[],
        seed=options.seed,
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
    )
    trainer = Trainer(
        model=model,
        args=arguments,
        train_dataset=train,
        eval_dataset=held_out,
        data_collator=DataCollatorForTokenClassification(tokenizer),
        compute_metrics=punctuation_metrics(model.config.id2label),
    )
    before = trainer.evaluate()
    trainer.train()
    after = trainer.evaluate()
    trainer.save_model(str(options.output_dir))
    tokenizer.save_pretrained(str(options.output_dir))
    results = {
        "train_texts": len(read_punctuated_lines(options.train_file)),
        "train_pieces": len(train),
        "eval_pieces": len(held_out),
        "before": before,
        "after": after,
    }
    (options.output_dir / "eval_results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    marks = ", ".join(f"{mark} {after[f'eval_f1_{mark}']:.1f}" for mark in LABELS[1:])
    print(f"held-out F1: {after['eval_f1']:.1f} (before training {before['eval_f1']:.1f}); per mark: {marks}")
    return results


if __name__ == "__main__":
    main()
