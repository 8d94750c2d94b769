"""FireRedAsrProcessor: the fbank feature extractor and the Hanzi + BPE tokenizer behind one object."""

from __future__ import annotations

from transformers import BatchFeature, ProcessorMixin


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


__all__ = ["FireRedAsrProcessor"]
