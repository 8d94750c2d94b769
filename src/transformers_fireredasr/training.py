"""What `Seq2SeqTrainer` needs to fine-tune FireRedASR: speech data collators and a CER metric."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .feature_extraction_fireredasr import FireRedAsrFeatureExtractor
from .pinyin_units import encode_units
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
    ignores it); the model builds the `<sos>`-shifted decoder inputs itself. With `ctc_unit_vocab` (see
    `pinyin_units.build_unit_vocab`) it also gives `ctc_labels`: the pinyin unit ids, padded with -100, for an
    auxiliary CTC loss (the trainer must remove them before calling the model).
    """

    processor: FireRedAsrProcessor
    audio_column: str = "audio"
    text_column: str = "text"
    ctc_unit_vocab: dict[str, int] | None = None

    def __call__(self, examples: Sequence[dict]) -> dict[str, torch.Tensor]:
        sampling_rate = self.processor.feature_extractor.sampling_rate
        audio = _audio_arrays(examples, self.audio_column, sampling_rate)
        batch = self.processor.feature_extractor(audio, sampling_rate=sampling_rate, return_tensors="pt")
        texts = [example[self.text_column] for example in examples]
        labels = self.processor.tokenizer(texts, padding=True, return_tensors="pt")
        batch["labels"] = labels["input_ids"].masked_fill(labels["attention_mask"].ne(1), -100)
        if self.ctc_unit_vocab is not None:
            units = [torch.tensor(encode_units(text, self.ctc_unit_vocab), dtype=torch.long) for text in texts]
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
    """A training-only CTC head on the encoder output, for joint CTC-attention training of a new model.

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


SPECIAL_TOKENS = ("<blank>", "<unk>", "<pad>", "<sos>", "<eos>", "<space>")


def write_char_vocab(texts: Sequence[str], path: str | Path) -> Path:
    """Writes a FireRedASR `dict.txt` for training from scratch: the original's special tokens (ids 0-4 as in the
    release: `<blank> <unk> <pad> <sos> <eos>`), `<space>`, then every distinct non-space character of `texts`."""
    chars = sorted({char for text in texts for char in text if not char.isspace()})
    tokens = list(SPECIAL_TOKENS) + [char for char in chars if char not in SPECIAL_TOKENS]
    path = Path(path)
    path.write_text("".join(f"{token} {index}\n" for index, token in enumerate(tokens)), encoding="utf-8")
    return path


def fit_cmvn(feature_extractor: FireRedAsrFeatureExtractor, audio: Sequence[np.ndarray]) -> FireRedAsrFeatureExtractor:
    """A copy of `feature_extractor` whose global CMVN (per-bin mean and 1/std) is measured on `audio` (16 kHz)."""
    if not audio:
        raise ValueError("fit_cmvn needs at least one waveform")
    settings = {key: value for key, value in feature_extractor.to_dict().items() if key != "feature_extractor_type"}
    plain = FireRedAsrFeatureExtractor(**{**settings, "cmvn_mean": None, "cmvn_istd": None})
    total, total_sq, count = 0.0, 0.0, 0
    for waveform in audio:
        features = plain(waveform, sampling_rate=plain.sampling_rate, return_tensors="pt")["input_features"][0]
        features = features.double()
        total, total_sq, count = total + features.sum(0), total_sq + (features**2).sum(0), count + len(features)
    mean = total / count
    std = (total_sq / count - mean**2).clamp_min(1e-20).sqrt()
    return FireRedAsrFeatureExtractor(**{**settings, "cmvn_mean": mean.tolist(), "cmvn_istd": (1.0 / std).tolist()})


__all__ = [
    "CtcAuxiliaryHead",
    "ctc_loss",
    "FireRedAedDataCollator",
    "fit_cmvn",
    "write_char_vocab",
    "FireRedLlmDataCollator",
    "character_error_rate",
    "make_compute_metrics",
]
