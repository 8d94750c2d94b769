"""FireRedAsrProcessor: the fbank feature extractor and the Hanzi + BPE tokenizer behind one object."""

from __future__ import annotations

import re

import torch
from transformers import BatchFeature, ProcessorMixin

from .modeling_conformer import FireRedConformerPreTrainedModel
from .tokenization_fireredasr import CJK_CHAR


class FireRedAsrProcessor(ProcessorMixin):
    """Wraps [`FireRedAsrFeatureExtractor`] and [`FireRedAsrTokenizer`] for FireRedASR-AED.

    `processor(audio, sampling_rate=16000)` gives `input_features` + `attention_mask`; `processor(text=...)` gives
    `input_ids`; both together put the token ids under `labels` (what `Seq2SeqTrainer` expects).
    """

    def __init__(self, feature_extractor, tokenizer):
        super().__init__(feature_extractor, tokenizer)

    def __call__(self, audio=None, text=None, sampling_rate: int | None = None, **kwargs) -> BatchFeature:
        if audio is None and text is None:
            raise ValueError("Pass `audio`, `text`, or both to the processor.")
        inputs = None
        if audio is not None:
            inputs = self.feature_extractor(audio, sampling_rate=sampling_rate, **kwargs)
        if text is None:
            return inputs
        encodings = self.tokenizer(text, **kwargs)
        if inputs is None:
            return encodings
        inputs["labels"] = encodings["input_ids"]
        return inputs


SPEECH_TOKEN = "<speech>"
# The original's prompt (Qwen chat format); `<speech>` is repeated once per speech vector.
PROMPT_PREFIX = "<|im_start|>user\n"
PROMPT_SUFFIX = "请转写音频为文字<|im_end|>\n<|im_start|>assistant\n"
TRANSCRIPT_END = "<|im_end|>"
_PUNCTUATION = re.compile(r"[，。？！,\.!?《》（）\·“”、\\/]")


def clean_transcript(text: str) -> str:
    """Normalises a training transcript like the original: no punctuation, no spaces between Hanzi, lower case."""
    text = re.sub(r"\s+", " ", _PUNCTUATION.sub("", text))
    return "".join(part for part in CJK_CHAR.split(text.strip()) if part.strip()).strip().lower()


def left_pad(rows: list[list[int]], value: int) -> tuple[torch.LongTensor, torch.LongTensor]:
    """Left-pads token rows with `value`; returns the ids and the attention mask (0 on padding)."""
    width = max(len(row) for row in rows)
    ids = torch.tensor([[value] * (width - len(row)) + row for row in rows])
    mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in rows])
    return ids, mask


class FireRedLlmProcessor(ProcessorMixin):
    """Feature extractor + the LLM's tokenizer (with `<speech>` added) for FireRedASR-LLM.

    `processor(audio)` returns `input_features`, `feature_attention_mask`, and the chat prompt as `input_ids` /
    `attention_mask` with one `<speech>` per speech vector, left-padded. With `text=` (training) the transcript
    and `<|im_end|>` follow the prompt and `labels` hold them, -100 elsewhere. `batch_decode` gives transcripts.
    """

    def __init__(self, feature_extractor, tokenizer, encoder_downsample_rate: int = 2):
        self.encoder_downsample_rate = encoder_downsample_rate
        super().__init__(feature_extractor, tokenizer)
        if SPEECH_TOKEN not in self.tokenizer.get_vocab():
            self.tokenizer.add_special_tokens({"additional_special_tokens": [SPEECH_TOKEN]})

    @property
    def speech_token_id(self) -> int:
        return self.tokenizer.convert_tokens_to_ids(SPEECH_TOKEN)

    def speech_lengths(self, frame_counts) -> list[int]:
        """Speech vectors per utterance: encoder frames ceil(frames / 4), spliced by the downsample rate."""
        encoder_frames = FireRedConformerPreTrainedModel._get_feat_extract_output_lengths
        return [encoder_frames(int(frames)) // self.encoder_downsample_rate for frames in frame_counts]

    def prompt_ids(self) -> tuple[list[int], list[int]]:
        """Token ids of the prompt before and after the `<speech>` placeholders."""
        encode = self.tokenizer.encode
        return encode(PROMPT_PREFIX, add_special_tokens=False), encode(PROMPT_SUFFIX, add_special_tokens=False)

    def __call__(
        self, audio=None, text=None, sampling_rate: int | None = None, return_tensors: str | None = "pt", **kwargs
    ) -> BatchFeature:
        if audio is None:
            raise ValueError("FireRedLlmProcessor needs `audio` (and optionally the transcripts as `text`).")
        features = self.feature_extractor(audio, sampling_rate=sampling_rate, return_tensors="pt", **kwargs)
        lengths = self.speech_lengths(features["attention_mask"].sum(-1).tolist())
        texts = [text] if isinstance(text, str) else text
        if texts is not None and len(texts) != len(lengths):
            raise ValueError(f"got {len(texts)} transcripts for {len(lengths)} audio inputs")
        prefix, suffix = self.prompt_ids()
        rows, label_rows = [], []
        for index, length in enumerate(lengths):
            prompt = prefix + [self.speech_token_id] * length + suffix
            target = []
            if texts is not None:
                target = self.tokenizer.encode(
                    clean_transcript(texts[index]) + TRANSCRIPT_END, add_special_tokens=False
                )
            rows.append(prompt + target)
            label_rows.append([-100] * len(prompt) + target)
        input_ids, attention_mask = left_pad(rows, self.tokenizer.pad_token_id)
        batch = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "input_features": features["input_features"],
            "feature_attention_mask": features["attention_mask"],
        }
        if texts is not None:
            batch["labels"] = left_pad(label_rows, -100)[0]
        return BatchFeature(batch, tensor_type=return_tensors)


__all__ = ["FireRedAsrProcessor", "FireRedLlmProcessor", "clean_transcript", "left_pad"]
