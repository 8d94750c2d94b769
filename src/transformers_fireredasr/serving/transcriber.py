"""Audio in, segment texts out, with the pipeline's own pieces: one request's audio becomes speech segments with
features (`prepare`, run per request), and a batch of segments from any requests becomes texts (`decode`, run by
the batcher in one `generate` call).

Every request is segmented the way `pipeline(..., return_timestamps=True)` segments it (silero-vad, or fixed-size
chunks without it; segments at most the model's limit), so every response format and the stream carry the same
text: the segment texts joined by `join_segment_texts`. Each segment is featurized alone, exactly as the pipeline
featurizes it, and padded into a batch by the feature extractor; batched decoding of this model equals decoding
one segment at a time, so a response never depends on what else was in its batch. Word timings are each segment's
tokens aligned on the CTC head exactly as the pipeline aligns them (`word_timing`); hotwords go to `generate`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from ..audio_io import decode_bytes
from ..hotwords import Hotword, token_tries
from ..pipeline_fireredasr import MAX_SEGMENT_SECONDS, MIN_SEGMENT_SECONDS, decode_transcript, join_segment_texts
from ..segmentation import is_silent, segment_audio
from ..word_timing import align_shown_tokens, can_time_words, shown_positions, timed_words

# silero-vad keeps recurrent state inside its one shared model: two requests must not run it at the same time.
_VAD_LOCK = threading.Lock()


class AudioTooLong(ValueError):
    """The decoded audio is longer than the server accepts (answered with 413)."""


@dataclass(frozen=True)
class Segment:
    """One speech segment of a request: where it lies in the audio and its features `(frames, bins)`."""

    index: int
    start: float
    end: float
    features: torch.Tensor
    mask: torch.Tensor


@dataclass(frozen=True)
class PreparedAudio:
    """A request's audio, ready for decoding: its duration and its segments in time order."""

    duration: float
    segments: list[Segment]


@dataclass(frozen=True)
class DecodeOptions:
    """Per-request decoding settings; only segments with equal options share a `generate` call."""

    temperature: float = 0.0
    hotwords: tuple[Hotword, ...] = ()
    word_timestamps: bool = False

    def generate_kwargs(self) -> dict:
        """temperature 0 keeps the model's own decoding (FireRedASR's beam search); above 0 samples at it. Hotwords
        carry their own scores; word timings need the CTC head's log-probs."""
        kwargs = {} if self.temperature == 0 else {"do_sample": True, "temperature": self.temperature, "num_beams": 1}
        if self.hotwords:
            kwargs["hotwords"] = list(self.hotwords)
        if self.word_timestamps:
            kwargs["output_ctc_log_probs"] = True
        return kwargs


@dataclass(frozen=True)
class SegmentResult:
    """What decoding one segment gave: its text, token ids, its confidence when the decoding reports it, and its
    timed words (seconds from the start of the audio) when they were asked for."""

    text: str
    tokens: list[int] = field(default_factory=list)
    confidence: float | None = None
    words: list[dict] | None = None


def join_texts(results: Sequence[SegmentResult]) -> str:
    """A request's transcript: its segment texts joined as the pipeline joins them."""
    return join_segment_texts([result.text for result in results])


def pick_device(device: str) -> torch.device:
    """`auto` is the first GPU when there is one, else the CPU; anything else is passed to torch as it is."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def sequence_confidences(output, model) -> list[float | None]:
    """Per returned sequence, the mean over its output tokens of exp(the chosen token's step score), or None.

    A `confidence` the model's `generate` returns itself (FireRedASR's own beam search does) is used as it is.
    Otherwise the step scores come from `generate(..., return_dict_in_generate=True, output_scores=True)` in
    transformers' greedy and sampling modes (normalized, so a sampled token's score is its probability at that step);
    a decoding that reports neither gets None.
    """
    sequences = output.sequences
    given = getattr(output, "confidence", None)
    if given is not None:
        return [float(value) for value in given]
    scores = getattr(output, "scores", None)
    if not scores or getattr(output, "beam_indices", None) is not None:
        return [None] * len(sequences)
    steps = model.compute_transition_scores(sequences, scores, normalize_logits=True)
    generated = sequences[:, -steps.shape[1] :]
    pad = model.generation_config.pad_token_id
    real = torch.isfinite(steps) & (generated != pad if pad is not None else True)
    probabilities = torch.where(real, steps.exp(), 0.0)
    counts = real.sum(dim=1)
    return [
        float(total / count) if count else None for total, count in zip(probabilities.sum(dim=1), counts, strict=True)
    ]


class Transcriber:
    """A FireRedASR model (AED or LLM) with its processor, split into per-request preparation and batched decoding."""

    def __init__(self, model, processor) -> None:
        self.model = model.eval()
        self.feature_extractor = processor.feature_extractor
        self.tokenizer = processor.tokenizer
        self.rate = self.feature_extractor.sampling_rate
        model_type = model.config.model_type
        if model_type not in MAX_SEGMENT_SECONDS:
            raise ValueError(f"not a FireRedASR model (model_type {model_type!r}); the server serves FireRedASR only")
        self.max_segment_s = MAX_SEGMENT_SECONDS[model_type]

    @classmethod
    def from_pretrained(cls, name_or_path: str, device: str = "auto", dtype: str = "float32") -> Transcriber:
        """Loads a model folder or Hub id with the Auto classes (importing the package registered them); an original
        release is converted once (`resolve_model`)."""
        from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor

        from ..conversion.resolve import resolve_model

        name_or_path = resolve_model(name_or_path)
        model = AutoModelForSpeechSeq2Seq.from_pretrained(name_or_path, dtype=getattr(torch, dtype))
        return cls(model.to(pick_device(device)), AutoProcessor.from_pretrained(name_or_path))

    @property
    def model_type(self) -> str:
        return self.model.config.model_type

    @property
    def times_words(self) -> bool:
        """Whether this model gives word timestamps (an AED with a CTC head)."""
        return can_time_words(self.model)

    def check_word_timestamps(self, options: DecodeOptions) -> None:
        """Raises ValueError unless this model can time words with these options: a CTC head, and temperature 0.
        Checked before a request is queued, so that its segments never fail inside a shared batch."""
        if not self.times_words:
            raise ValueError(
                f"word timestamps come from the CTC head, and this model ({self.model_type}) has none; "
                "use timestamp_granularities[]=segment"
            )
        if options.temperature > 0:
            raise ValueError("word timestamps need temperature 0 (the model's own beam search)")

    def check_hotwords(self, hotwords: Sequence[Hotword]) -> None:
        """Raises ValueError for a phrase this AED's vocabulary cannot spell (an `<unk>` piece); the LLM matches
        decoded text, so any phrase is fine for it."""
        if self.model_type == "fireredasr_aed":
            token_tries([list(hotwords)], self.tokenizer)

    def prepare(self, data: bytes, name: str, max_audio_seconds: float) -> PreparedAudio:
        """Decodes an upload (any format ffmpeg reads), checks it, segments it and featurizes every segment.

        Raises ValueError naming `name` for empty, undecodable, NaN/inf or too short audio, and AudioTooLong.
        """
        audio = decode_bytes(data, self.rate, name=name)
        duration = len(audio) / self.rate
        if duration > max_audio_seconds:
            raise AudioTooLong(
                f"{name}: {duration:.1f} s of audio, more than this server's limit of {max_audio_seconds:g} s"
            )
        window = self.feature_extractor.win_length
        if len(audio) < window:
            raise ValueError(f"{name}: {len(audio)} samples, shorter than one {window * 1000 // self.rate} ms frame")
        spans = []
        if not is_silent(audio):
            with _VAD_LOCK:
                spans = segment_audio(audio, self.rate, self.max_segment_s)
        segments = []
        for start, end in spans:
            if end - start < MIN_SEGMENT_SECONDS * self.rate:
                continue
            features = self.feature_extractor(
                audio[start:end], sampling_rate=self.rate, return_tensors="pt", return_attention_mask=True
            )
            segments.append(
                Segment(
                    index=len(segments),
                    start=round(start / self.rate, 3),
                    end=round(end / self.rate, 3),
                    features=features["input_features"][0],
                    mask=features["attention_mask"][0],
                )
            )
        return PreparedAudio(duration=round(duration, 3), segments=segments)

    def decode(self, segments: Sequence[Segment], options: DecodeOptions) -> list[SegmentResult]:
        """Decodes segments (from any requests) in one `generate` call; results in the order given."""
        padded = self.feature_extractor.pad(
            [{"input_features": segment.features, "attention_mask": segment.mask} for segment in segments],
            padding="longest",
            return_attention_mask=True,
            return_tensors="pt",
        )
        features = padded["input_features"].to(self.model.device, self.model.dtype)
        mask = padded["attention_mask"].to(self.model.device)
        main_input_name = getattr(self.model, "main_input_name", "input_features")
        with torch.inference_mode():
            output = self.model.generate(
                **{main_input_name: features, "attention_mask": mask},
                **options.generate_kwargs(),
                **({"tokenizer": self.tokenizer} if options.hotwords else {}),  # phrases in the model's own tokens
                return_dict_in_generate=True,
                output_scores=True,
            )
        confidences = sequence_confidences(output, self.model)
        sequences = output.sequences.to("cpu").tolist()
        special = set(self.tokenizer.all_special_ids)
        results = []
        for row, (ids, confidence) in enumerate(zip(sequences, confidences, strict=True)):
            text = decode_transcript(self.tokenizer, self.model.config, ids).strip()
            words = self._words(output, row, ids, segments[row]) if options.word_timestamps else None
            results.append(SegmentResult(text, [token for token in ids if token not in special], confidence, words))
        return results

    def _words(self, output, row: int, ids: list[int], segment: Segment) -> list[dict]:
        """One decoded segment's timed words, as the pipeline times them (`word_timing`)."""
        generated = ids[1:]  # after the decoder start token, as `token_scores` are
        positions = shown_positions(self.tokenizer, generated)
        shown = [generated[p] for p in positions]
        frames = int(output.encoder_attention_mask[row].sum())
        spans, _ = align_shown_tokens(output.ctc_log_probs[row], frames, shown, self.model.config.blank_token_id)
        probabilities = output.token_scores[row].float().exp().cpu()[positions].tolist()
        return timed_words(
            self.tokenizer, self.model.config, shown, spans, probabilities, "word", segment.start, segment.end
        )


__all__ = [
    "AudioTooLong",
    "DecodeOptions",
    "PreparedAudio",
    "Segment",
    "SegmentResult",
    "Transcriber",
    "join_texts",
    "sequence_confidences",
]
