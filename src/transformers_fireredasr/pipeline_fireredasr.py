"""The ASR pipeline for FireRedASR models: any length of audio, optional segment timestamps.

`pipeline("automatic-speech-recognition", model=<FireRedASR>)` builds this class (see `registration.py`); any other
model still gets the stock `AutomaticSpeechRecognitionPipeline`. Compared with the stock pipeline it

- cuts audio longer than the model's limit (60 s AED, 30 s LLM; `chunk_length_s` changes it) into speech segments
  with silero-vad (fixed-size chunks without it, see `segmentation.py`), decodes the segments in length-sorted
  batches (`batch_size`) and joins the texts in order;
- with `merge_segments_s=S` joins neighbouring speech segments (pauses included) into pieces of up to S seconds
  (capped at the limit) before decoding: fewer, longer pieces with more context, and one timestamp per piece;
- with `return_timestamps=True` returns Whisper-style `chunks`: `[{"text", "timestamp": (start_s, end_s)}, ...]`,
  one per speech segment (segments then follow pauses even in short audio);
- with `return_timestamps="word"` (or `"char"`) the chunks are words (each Hanzi, each English word) or tokens,
  timed by CTC forced alignment on the model's CTC head (`alignment.py`), each with its `confidence`; pauses stay
  gaps between words, and `segments` holds the speech segments' chunks. A model without a CTC head refuses them;
- gives every AED result a `confidence`: FireRedASR2's mean over output tokens of exp(step score);
- returns an empty transcript for silent audio without running the model;
- accepts paths, bytes, arrays, stereo, any sampling rate (resampled with scipy, no torchaudio needed), and names
  the problem for empty, NaN/inf or undecodable audio.

Audio within the limit and without timestamps is transcribed whole, exactly as the stock pipeline would.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable

import torch
from transformers import AutomaticSpeechRecognitionPipeline
from transformers.utils import logging

from .audio_io import load_waveform
from .segmentation import is_silent, segment_audio
from .word_timing import align_shown_tokens, can_time_words, shown_positions, timed_words

logger = logging.get_logger(__name__)

# Longest audio each model was trained for (the original's limits); longer input is segmented.
MAX_SEGMENT_SECONDS = {"fireredasr_aed": 60.0, "fireredasr_llm": 30.0}
# Segments shorter than this (a sliver left by fixed-size chunking) carry no speech worth decoding.
MIN_SEGMENT_SECONDS = 0.1


TIMESTAMP_MODES = {None: None, False: None, True: "segment", "segment": "segment", "word": "word", "char": "char"}


def timestamp_mode(return_timestamps) -> str | None:
    """`return_timestamps` as None, "segment", "word" or "char"; a ValueError naming the choices otherwise."""
    if not isinstance(return_timestamps, (bool, str, type(None))) or return_timestamps not in TIMESTAMP_MODES:
        raise ValueError(
            f"return_timestamps must be True (or 'segment') for segment times, 'word' or 'char', got "
            f"{return_timestamps!r}"
        )
    return TIMESTAMP_MODES[return_timestamps]


def decode_transcript(tokenizer, config, ids) -> str:
    """A segment's text from its generated ids, as the original prints it (FireRedASR2-LLM in lowercase)."""
    text = tokenizer.decode(ids, skip_special_tokens=True)
    return text.lower() if getattr(config, "lowercase_output", False) else text


def check_word_timestamps(model, mode: str) -> None:
    """Raises ValueError unless `model` can time words: an AED with a CTC head."""
    if not can_time_words(model):
        raise ValueError(
            f"return_timestamps={mode!r} times tokens by CTC forced alignment, and this model has no CTC head "
            f"({type(model).__name__}; FireRedASR2-AED and the bundled demo have one): use return_timestamps=True "
            "for segment times"
        )


def is_fireredasr_model(model) -> bool:
    """Whether `model` (an instance, not a name) is a FireRedASR model this pipeline serves."""
    return getattr(getattr(model, "config", None), "model_type", None) in MAX_SEGMENT_SECONDS


def positive_seconds(name: str, value) -> float:
    """`value` as float seconds; a ValueError naming `name` unless it is a positive number (NaN is not)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


def join_segment_texts(texts: list[str]) -> str:
    """Joins segment transcripts: nothing between Chinese characters, one space where a word of Latin script meets
    another (FireRedASR transcripts carry no leading spaces, unlike Whisper's)."""
    joined = ""
    for text in (t.strip() for t in texts):
        if not text:
            continue
        if joined and (joined[-1].isascii() and joined[-1].isalnum()) and (text[0].isascii() and text[0].isalnum()):
            joined += " "
        joined += text
    return joined


class FireRedAsrPipeline(AutomaticSpeechRecognitionPipeline):
    """`AutomaticSpeechRecognitionPipeline` with long-form segmentation and segment timestamps for FireRedASR."""

    def __new__(cls, *args, **kwargs):
        # transformers has one pipeline class per task. This subclass replaces the task's class so that the usual
        # `pipeline("automatic-speech-recognition", ...)` call reaches it; for any other model it hands back the
        # stock pipeline, untouched.
        model = kwargs.get("model", args[0] if args else None)
        if cls is FireRedAsrPipeline and not is_fireredasr_model(model):
            return AutomaticSpeechRecognitionPipeline(*args, **kwargs)
        return super().__new__(cls)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.default_max_segment_s = getattr(
            self.model.config, "max_segment_seconds", None
        ) or MAX_SEGMENT_SECONDS.get(self.model.config.model_type, 30.0)
        # Called with the seconds of audio each forward pass transcribed (the CLI's progress bar uses it).
        self.progress_callback: Callable[[float], None] | None = None

    def _sanitize_parameters(
        self,
        chunk_length_s: float | None = None,
        stride_length_s=None,
        return_timestamps: bool | str | None = None,
        segmentation: str | None = None,
        merge_segments_s: float | None = None,
        hotwords=None,
        hotword_score: float | None = None,
        **kwargs,
    ):
        if stride_length_s is not None:
            raise ValueError("FireRedASR segments audio at pauses; `stride_length_s` is not used. Drop it.")
        mode = timestamp_mode(return_timestamps)
        if mode in ("word", "char"):
            check_word_timestamps(self.model, mode)
        preprocess_params, forward_params, postprocess_params = super()._sanitize_parameters(**kwargs)
        if chunk_length_s is not None:
            if chunk_length_s <= 0:
                raise ValueError(f"chunk_length_s must be positive, got {chunk_length_s}")
            preprocess_params["max_segment_s"] = float(chunk_length_s)
        if merge_segments_s is not None:
            preprocess_params["merge_segments_s"] = positive_seconds("merge_segments_s", merge_segments_s)
        if segmentation is not None:
            if segmentation not in ("auto", "vad", "fixed"):
                raise ValueError(f"segmentation must be 'auto', 'vad' or 'fixed', got {segmentation!r}")
            preprocess_params["segmentation"] = segmentation
        if return_timestamps is not None:
            # Word times come from the alignment, not from segments: audio within the limit is decoded whole, so
            # asking for them never changes the transcript.
            preprocess_params["return_timestamps"] = mode == "segment"
            postprocess_params["return_timestamps"] = mode
            forward_params["timestamp_mode"] = mode
        if hotwords is not None:  # the same as generate_kwargs={"hotwords": ...}: for every segment of the call
            forward_params["hotwords"] = hotwords
        if hotword_score is not None:
            forward_params["hotword_score"] = hotword_score
        return preprocess_params, forward_params, postprocess_params

    def preprocess(
        self,
        inputs,
        max_segment_s: float | None = None,
        segmentation="auto",
        return_timestamps=False,
        merge_segments_s: float | None = None,
    ):
        rate = self.feature_extractor.sampling_rate
        audio = load_waveform(inputs, rate)
        window = self.feature_extractor.win_length
        if len(audio) < window:
            raise ValueError(
                f"{len(audio)} samples, shorter than one {window * 1000 // rate} ms frame ({window} samples at {rate} Hz)"
            )
        limit = max_segment_s or self.default_max_segment_s
        if is_silent(audio):
            spans = []
        elif return_timestamps or len(audio) > limit * rate:
            spans = segment_audio(audio, rate, limit, segmentation, merge_up_to_s=merge_segments_s)
        else:
            spans = [(0, len(audio))]
        spans = [span for span in spans if span[1] - span[0] >= MIN_SEGMENT_SECONDS * rate]
        if not spans:  # one placeholder item keeps the batch shape; `_forward` skips it
            yield self._segment_item(audio[: int(MIN_SEGMENT_SECONDS * rate)], -1, 0.0, 0.0, skip=True, is_last=True)
            return
        # Longest first, so that a batch holds segments of similar length (less padding); postprocess restores order.
        order = sorted(range(len(spans)), key=lambda i: spans[i][0] - spans[i][1])
        for position, index in enumerate(order):
            start, end = spans[index]
            yield self._segment_item(
                audio[start:end], index, start / rate, end / rate, skip=False, is_last=position == len(order) - 1
            )

    def _segment_item(self, audio, index: int, start: float, end: float, skip: bool, is_last: bool) -> dict:
        rate = self.feature_extractor.sampling_rate
        processed = self.feature_extractor(audio, sampling_rate=rate, return_tensors="pt", return_attention_mask=True)
        if self.dtype is not None:
            processed = processed.to(dtype=self.dtype)
        return {
            "is_last": is_last,
            "input_features": processed["input_features"],
            "attention_mask": processed["attention_mask"],
            "segment_index": torch.tensor([index]),
            "segment_start": torch.tensor([start], dtype=torch.float64),
            "segment_end": torch.tensor([end], dtype=torch.float64),
            "skip": torch.tensor([skip]),
        }

    def _forward(self, model_inputs, timestamp_mode: str | None = None, **generate_kwargs):
        features, mask, skip = model_inputs["input_features"], model_inputs["attention_mask"], model_inputs["skip"]
        keep = (~skip).nonzero().flatten()
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        tokens = torch.full((len(skip), 1), pad, dtype=torch.long)
        extra = {}
        if len(keep):
            generate_kwargs = self._prepare_generate_kwargs(generate_kwargs)
            generate_kwargs.pop("return_timestamps", None)
            word_times = timestamp_mode in ("word", "char")
            if self.model.config.model_type == "fireredasr_aed":  # token scores (confidence), CTC log-probs
                generate_kwargs.setdefault("return_dict_in_generate", True)
                if word_times:
                    generate_kwargs["output_ctc_log_probs"] = True
            if generate_kwargs.get("hotwords"):  # phrases are tokenized like the transcripts
                generate_kwargs.setdefault("tokenizer", self.tokenizer)
            main_input_name = getattr(self.model, "main_input_name", "input_features")
            generated = self.model.generate(
                **{main_input_name: features[keep], "attention_mask": mask[keep]}, **generate_kwargs
            )
            output = generated
            if isinstance(generated, dict) or hasattr(generated, "sequences"):
                generated = generated["sequences"]
            tokens = torch.full((len(skip), generated.shape[1]), pad, dtype=torch.long)
            tokens[keep] = generated.to("cpu", torch.long)
            extra = self._scores_and_frames(output, tokens, keep, word_times)
        if self.progress_callback is not None:
            seconds = (model_inputs["segment_end"] - model_inputs["segment_start"])[keep.cpu()].sum()
            self.progress_callback(float(seconds))
        return {
            "is_last": model_inputs["is_last"],
            "tokens": tokens,
            "skip": skip,
            "segment_index": model_inputs["segment_index"],
            "segment_start": model_inputs["segment_start"],
            "segment_end": model_inputs["segment_end"],
            **extra,
        }

    def _scores_and_frames(self, output, tokens: torch.Tensor, keep: torch.Tensor, word_times: bool) -> dict:
        """Per row, the chosen tokens' probabilities (for confidences) and, for word times, each token's CTC frames
        `(first, last + 1)` (-1 where none) and whether they were aligned (False: spread evenly, see alignment)."""
        rows, length = tokens.shape
        token_scores = getattr(output, "token_scores", None)
        if token_scores is None:
            return {}
        probabilities = torch.zeros(rows, length - 1)
        probabilities[keep] = token_scores.to("cpu", torch.float32).exp()
        extra = {"token_probabilities": probabilities}
        if not word_times:
            return extra
        frames = torch.full((rows, length - 1, 2), -1, dtype=torch.long)
        aligned = torch.ones(rows, dtype=torch.bool)
        num_frames = torch.zeros(rows, dtype=torch.long)
        log_probs, frame_mask = output.ctc_log_probs.cpu(), output.encoder_attention_mask.cpu()
        shown = self._shown_token_positions(tokens)
        for out_row, row in enumerate(keep.tolist()):
            positions = shown[row]
            count = int(frame_mask[out_row].sum())
            ids = [int(tokens[row, 1 + p]) for p in positions]
            spans, aligned[row] = align_shown_tokens(log_probs[out_row], count, ids, self.model.config.blank_token_id)
            for position, span in zip(positions, spans, strict=True):
                frames[row, position] = torch.tensor(span)
            num_frames[row] = count
        return {**extra, "token_frames": frames, "aligned": aligned, "num_frames": num_frames}

    def _shown_token_positions(self, tokens: torch.Tensor) -> list[list[int]]:
        """Per row, the positions in `tokens[:, 1:]` of the tokens a transcript shows (no special tokens)."""
        return [shown_positions(self.tokenizer, row[1:]) for row in tokens.tolist()]

    def _word_chunks(self, output, mode: str, start: float, end: float) -> list[dict]:
        """The timed words (or tokens) of one segment, in seconds from the start of the audio."""
        tokens = output["tokens"].reshape(-1)
        positions = self._shown_token_positions(tokens.view(1, -1))[0]
        frames = output["token_frames"].reshape(-1, 2)
        spans = [tuple(frames[p].tolist()) for p in positions]
        probabilities = output["token_probabilities"].reshape(-1)[positions].tolist()
        shown = tokens[1:][positions].tolist()
        return timed_words(self.tokenizer, self.model.config, shown, spans, probabilities, mode, start, end)

    def postprocess(self, model_outputs, return_timestamps: str | bool | None = None, **kwargs):
        mode = timestamp_mode(return_timestamps)
        segments, words, probability_sum, token_count = [], [], 0.0, 0
        for output in model_outputs:
            if bool(output["skip"].reshape(-1)[0]):
                continue
            text = decode_transcript(self.tokenizer, self.model.config, output["tokens"].reshape(-1).tolist())
            start, end = float(output["segment_start"].reshape(-1)[0]), float(output["segment_end"].reshape(-1)[0])
            index = int(output["segment_index"].reshape(-1)[0])
            segments.append((index, start, end, text))
            if "token_probabilities" in output:
                real = output["tokens"].reshape(-1)[1:].ne(self.tokenizer.pad_token_id)
                probability_sum += float(output["token_probabilities"].reshape(-1)[real].sum())
                token_count += int(real.sum())
            if mode in ("word", "char"):
                if not bool(output["aligned"].reshape(-1)[0]):
                    logger.warning(
                        "segment %.2f-%.2f s: %s; its token times are spread evenly over the segment",
                        start,
                        end,
                        "the hypothesis has more tokens than the CTC frames can hold, so it cannot be aligned",
                    )
                words.append((index, self._word_chunks(output, mode, start, end)))
        segments.sort()
        texts = [text for *_, text in segments]
        # One segment keeps its text exactly as decoded, as the stock pipeline returns it.
        result = {"text": texts[0] if len(texts) == 1 else join_segment_texts(texts)}
        if token_count:
            result["confidence"] = round(probability_sum / token_count, 4)
        segment_chunks = [
            {"text": text.strip(), "timestamp": (round(start, 3), round(end, 3))}
            for _, start, end, text in segments
            if text.strip()
        ]
        if mode == "segment":
            result["chunks"] = segment_chunks
        elif mode is not None:  # words (or tokens), and the speech segments they belong to (subtitle cues)
            result["chunks"] = [chunk for _, chunks in sorted(words, key=lambda item: item[0]) for chunk in chunks]
            result["segments"] = segment_chunks
        return result


__all__ = [
    "FireRedAsrPipeline",
    "check_word_timestamps",
    "decode_transcript",
    "is_fireredasr_model",
    "join_segment_texts",
    "timestamp_mode",
]
