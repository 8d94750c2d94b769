"""What `Seq2SeqTrainer` needs to fine-tune FireRedASR on your own data: speech data collators, a CER metric and a
CTC loss on the encoder output.

Building a model from nothing (its vocabulary and CMVN, pinyin CTC targets, the synthetic corpus: how the demo model
was made) is development tooling and lives in the checkout's `tools/`, outside the installed package.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .processing_fireredasr import FireRedAsrProcessor, FireRedLlmProcessor


def _audio_arrays(examples: Sequence[dict], audio_column: str, sampling_rate: int) -> list[np.ndarray]:
    """The waveforms of `examples`, from a `datasets` Audio column (dicts with array/sampling_rate) or raw arrays."""
    arrays = []
    for index, example in enumerate(examples):
        audio = example[audio_column]
        if isinstance(audio, dict):
            if audio.get("sampling_rate", sampling_rate) != sampling_rate:
                raise ValueError(
                    f"example {index}: audio at {audio['sampling_rate']} Hz, expected {sampling_rate} Hz "
                    f"(cast the column: dataset.cast_column('{audio_column}', Audio(sampling_rate={sampling_rate})))"
                )
            audio = audio["array"]
        elif hasattr(audio, "get_all_samples"):  # a torchcodec AudioDecoder from datasets >= 4
            samples = audio.get_all_samples()
            if samples.sample_rate != sampling_rate:
                raise ValueError(f"example {index}: audio at {samples.sample_rate} Hz, expected {sampling_rate} Hz")
            audio = samples.data.mean(0).numpy()
        arrays.append(np.asarray(audio, dtype=np.float32))
    return arrays


@dataclass
class FireRedAedDataCollator:
    """Turns `{"audio": ..., "text": ...}` examples into a padded AED training batch.

    Gives `input_features`, `attention_mask` and `labels` (token ids + `<eos>`, padding set to -100, so the loss
    ignores it); the model builds the `<sos>`-shifted decoder inputs itself. With `ctc_targets` (a function from a
    transcript to the ids of its CTC targets, such as the pinyin units of the checkout's `tools/pinyin_units.py`)
    it also gives `ctc_labels`: those ids, padded with -100, for an auxiliary CTC loss on units other than the
    model's tokens (the trainer must remove them before calling the model).
    """

    processor: FireRedAsrProcessor
    audio_column: str = "audio"
    text_column: str = "text"
    ctc_targets: Callable[[str], Sequence[int]] | None = None

    def __call__(self, examples: Sequence[dict]) -> dict[str, torch.Tensor]:
        sampling_rate = self.processor.feature_extractor.sampling_rate
        audio = _audio_arrays(examples, self.audio_column, sampling_rate)
        batch = self.processor.feature_extractor(audio, sampling_rate=sampling_rate, return_tensors="pt")
        texts = [example[self.text_column] for example in examples]
        labels = self.processor.tokenizer(texts, padding=True, return_tensors="pt")
        batch["labels"] = labels["input_ids"].masked_fill(labels["attention_mask"].ne(1), -100)
        if self.ctc_targets is not None:
            units = [torch.tensor(list(self.ctc_targets(text)), dtype=torch.long) for text in texts]
            batch["ctc_labels"] = torch.nn.utils.rnn.pad_sequence(units, batch_first=True, padding_value=-100)
        return dict(batch)


@dataclass
class FireRedLlmDataCollator:
    """Turns `{"audio": ..., "text": ...}` examples into an LLM training batch: chat prompt with `<speech>`
    placeholders + transcript + `<|im_end|>`, with `labels` on the transcript only."""

    processor: FireRedLlmProcessor
    audio_column: str = "audio"
    text_column: str = "text"

    def __call__(self, examples: Sequence[dict]) -> dict[str, torch.Tensor]:
        sampling_rate = self.processor.feature_extractor.sampling_rate
        audio = _audio_arrays(examples, self.audio_column, sampling_rate)
        texts = [example[self.text_column] for example in examples]
        return dict(self.processor(audio, text=texts, sampling_rate=sampling_rate))


def character_error_rate(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus CER with jiwer: character edits over reference characters, spaces ignored (as Mandarin is scored).

    An empty reference (silence) counts every predicted character as an insertion.
    """
    import jiwer

    predictions = ["".join(text.split()) for text in predictions]
    references = ["".join(text.split()) for text in references]
    total = sum(len(reference) for reference in references)
    if total == 0:
        raise ValueError("every reference is empty: CER is undefined")
    errors = 0
    for reference, prediction in zip(references, predictions, strict=True):
        if reference:
            counts = jiwer.process_characters(reference, prediction)
            errors += counts.substitutions + counts.deletions + counts.insertions
        else:
            errors += len(prediction)
    return errors / total


def make_compute_metrics(tokenizer) -> Callable[[Any], dict[str, float]]:
    """`compute_metrics` for `Seq2SeqTrainer(predict_with_generate=True)`: decodes predictions and labels, gives CER."""

    def compute_metrics(prediction) -> dict[str, float]:
        predicted, labels = prediction.predictions, prediction.label_ids
        if isinstance(predicted, tuple):
            predicted = predicted[0]
        pad = tokenizer.pad_token_id
        predicted = np.where(predicted == -100, pad, predicted)
        labels = np.where(labels == -100, pad, labels)
        texts = tokenizer.batch_decode(predicted, skip_special_tokens=True)
        references = tokenizer.batch_decode(labels, skip_special_tokens=True)
        return {"cer": character_error_rate(texts, references)}

    return compute_metrics


class CtcAuxiliaryHead(torch.nn.Module):
    """A training-only CTC head on the encoder output, for joint CTC-attention training.

    Learning to align from scratch is slow for attention alone (the loss sits at the unigram entropy for thousands of
    steps); an auxiliary CTC loss on the encoder (as in ESPnet and WeNet recipes) makes it learn to align early. The
    head is not part of the model and is not saved: the released architecture has no CTC branch.
    """

    def __init__(self, hidden_size: int, vocab_size: int, blank_id: int):
        super().__init__()
        self.proj = torch.nn.Linear(hidden_size, vocab_size)
        self.blank_id = blank_id

    def forward(
        self, encoder_hidden: torch.Tensor, encoder_mask: torch.Tensor, labels: torch.Tensor, ignore_ids: Sequence[int]
    ) -> torch.Tensor:
        """Mean CTC loss per target token; `labels` padded with -100, ids in `ignore_ids` (e.g. `<eos>`) dropped."""
        log_probs = self.proj(encoder_hidden).float().log_softmax(-1)
        return ctc_loss(log_probs, encoder_mask, labels, ignore_ids, self.blank_id)


def ctc_loss(
    log_probs: torch.Tensor, frame_mask: torch.Tensor, labels: torch.Tensor, ignore_ids: Sequence[int], blank_id: int
) -> torch.Tensor:
    """Mean CTC loss per target token of `(batch, frames, vocab)` log-probs: `labels` padded with -100, ids in
    `ignore_ids` (e.g. `<eos>`) dropped. Shared by the training-only head and a model's own CTC head."""
    keep = labels.ne(-100)
    for token in ignore_ids:
        keep &= labels.ne(token)
    targets = labels[keep]
    target_lengths = keep.sum(-1)
    input_lengths = frame_mask.long().sum(-1)
    loss = torch.nn.functional.ctc_loss(
        log_probs.transpose(0, 1),
        targets,
        input_lengths,
        target_lengths,
        blank=blank_id,
        reduction="sum",
        zero_infinity=True,
    )
    return loss / target_lengths.sum().clamp_min(1)


__all__ = [
    "CtcAuxiliaryHead",
    "ctc_loss",
    "FireRedAedDataCollator",
    "FireRedLlmDataCollator",
    "character_error_rate",
    "make_compute_metrics",
]
