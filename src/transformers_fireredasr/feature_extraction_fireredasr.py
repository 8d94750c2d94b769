# Copyright 2025 The transformers-fireredasr authors. Licensed under the Apache License, Version 2.0.
"""Feature extractor for FireRedASR: Kaldi-compatible log-mel filter banks followed by global CMVN."""

import math
import os
from collections.abc import Sequence

import numpy as np
import torch
from transformers.audio_utils import mel_filter_bank, window_function
from transformers.feature_extraction_sequence_utils import SequenceFeatureExtractor
from transformers.feature_extraction_utils import BatchFeature
from transformers.utils import TensorType, logging

logger = logging.get_logger(__name__)

# The reference computes features on int16-scale samples; float audio in [-1, 1] is scaled up by this factor.
INT16_SCALE = 32768.0
# Kaldi's log floor: `std::numeric_limits<float>::epsilon()`.
KALDI_LOG_FLOOR = float(np.finfo(np.float32).eps)
# Kaldi's default lower edge of the first mel bin (the upper edge defaults to the Nyquist frequency).
KALDI_MEL_LOW_FREQ = 20.0
# Kaldi floors the CMVN variance at this value.
CMVN_VARIANCE_FLOOR = 1e-20
# Who computes the fbank: this module's batched torch code, or the kaldi_native_fbank package (see `__call__`).
FBANK_BACKENDS = ("torch", "kaldi_native_fbank")


class FireRedAsrFeatureExtractor(SequenceFeatureExtractor):
    r"""
    Constructs a FireRedASR feature extractor.

    Computes the log-mel filter bank features the original FireRedASR models were trained on (Kaldi `fbank` with
    `kaldi_native_fbank`'s options: povey window, DC-offset removal, pre-emphasis, `snip_edges=True`, power spectrum,
    natural log floored at float32 epsilon) with a batched torch implementation, then applies the global CMVN
    `(features - cmvn_mean) * cmvn_istd` from the checkpoint's `cmvn.ark` (see [`~FireRedAsrFeatureExtractor.from_kaldi_cmvn`]).

    Args:
        feature_size (`int`, *optional*, defaults to 80):
            Number of mel bins.
        sampling_rate (`int`, *optional*, defaults to 16000):
            Sampling rate (Hz) the models expect; other rates are refused, resample first.
        padding_value (`float`, *optional*, defaults to 0.0):
            Value written into padded feature frames.
        cmvn_mean (`list[float]`, *optional*):
            Per-bin global mean subtracted from the log-mel features. `None` (with `cmvn_istd=None`) skips CMVN.
        cmvn_istd (`list[float]`, *optional*):
            Per-bin inverse standard deviation the centred features are multiplied by.
        frame_length_ms (`float`, *optional*, defaults to 25.0):
            Analysis window length in milliseconds.
        frame_shift_ms (`float`, *optional*, defaults to 10.0):
            Hop between frames in milliseconds.
        preemphasis (`float`, *optional*, defaults to 0.97):
            Pre-emphasis coefficient, applied per frame as Kaldi does.
        dither (`float`, *optional*, defaults to 0.0):
            Standard deviation of Gaussian noise added to every frame, in int16 sample units like Kaldi's `dither`
            (the reference uses 0 at inference).
    """

    model_input_names = ["input_features", "attention_mask"]

    def __init__(
        self,
        feature_size: int = 80,
        sampling_rate: int = 16000,
        padding_value: float = 0.0,
        cmvn_mean: list[float] | None = None,
        cmvn_istd: list[float] | None = None,
        frame_length_ms: float = 25.0,
        frame_shift_ms: float = 10.0,
        preemphasis: float = 0.97,
        dither: float = 0.0,
        **kwargs,
    ):
        super().__init__(feature_size=feature_size, sampling_rate=sampling_rate, padding_value=padding_value, **kwargs)
        if (cmvn_mean is None) != (cmvn_istd is None):
            raise ValueError("`cmvn_mean` and `cmvn_istd` must be given together (or both left as None).")
        if cmvn_mean is not None:
            cmvn_mean = [float(v) for v in cmvn_mean]
            cmvn_istd = [float(v) for v in cmvn_istd]
            if len(cmvn_mean) != feature_size or len(cmvn_istd) != feature_size:
                raise ValueError(
                    f"CMVN statistics have {len(cmvn_mean)} means and {len(cmvn_istd)} inverse stds, but "
                    f"feature_size={feature_size}; they must match."
                )
        self.cmvn_mean = cmvn_mean
        self.cmvn_istd = cmvn_istd
        self.frame_length_ms = frame_length_ms
        self.frame_shift_ms = frame_shift_ms
        self.preemphasis = preemphasis
        self.dither = dither
        if self.win_length < 1 or self.hop_length < 1:
            raise ValueError(
                f"Frame length and shift must be at least one sample, got {frame_length_ms=} ms, "
                f"{frame_shift_ms=} ms at {sampling_rate} Hz."
            )

        # `window` and `mel_filters` are dropped by `to_dict`, so they are not written to preprocessor_config.json.
        self.window = window_function(self.win_length, "povey", periodic=False).astype(np.float32)
        self.mel_filters = mel_filter_bank(
            num_frequency_bins=self.n_fft // 2 + 1,
            num_mel_filters=feature_size,
            min_frequency=KALDI_MEL_LOW_FREQ,
            max_frequency=sampling_rate / 2,
            sampling_rate=sampling_rate,
            norm=None,
            mel_scale="kaldi",
            triangularize_in_mel_space=True,
            dtype=np.float32,
        )

    # Derived sizes are properties so they never end up in the saved config.
    @property
    def win_length(self) -> int:
        """Window length in samples (truncated like Kaldi's `WindowSize()`)."""
        return int(self.sampling_rate * 0.001 * self.frame_length_ms)

    @property
    def hop_length(self) -> int:
        """Frame shift in samples."""
        return int(self.sampling_rate * 0.001 * self.frame_shift_ms)

    @property
    def n_fft(self) -> int:
        """FFT size: the window length rounded up to a power of two (Kaldi's `round_to_power_of_two`)."""
        return 1 << (self.win_length - 1).bit_length()

    def _get_frame_count(self, num_samples: int) -> int:
        """Number of frames Kaldi produces with `snip_edges=True` (0 when shorter than one window)."""
        if num_samples < self.win_length:
            return 0
        return 1 + (num_samples - self.win_length) // self.hop_length

    @classmethod
    def from_kaldi_cmvn(cls, cmvn_path: str | os.PathLike, **kwargs) -> "FireRedAsrFeatureExtractor":
        """
        Builds a feature extractor whose CMVN comes from a Kaldi global CMVN stats file (the checkpoint's `cmvn.ark`:
        row 0 holds per-bin sums and the frame count in its last column, row 1 the sums of squares).
        """
        try:
            import kaldiio
        except ImportError as err:
            raise ImportError(
                "Reading a Kaldi `cmvn.ark` needs kaldiio: `pip install kaldiio` "
                "(or `pip install transformers-fireredasr[convert]`)."
            ) from err
        if not os.path.isfile(cmvn_path):
            raise FileNotFoundError(f"CMVN stats file not found: {cmvn_path}")
        try:
            stats = np.asarray(kaldiio.load_mat(str(cmvn_path)), dtype=np.float64)
        except Exception as err:  # kaldiio raises bare RuntimeErrors/ValueErrors that do not name the file
            raise ValueError(f"{cmvn_path} is not a readable Kaldi CMVN stats file: {err}") from err
        if not np.isfinite(stats).all():
            raise ValueError(f"{cmvn_path} holds NaN or infinite CMVN statistics.")
        if stats.ndim != 2 or stats.shape[0] != 2 or stats.shape[1] < 2:
            raise ValueError(
                f"{cmvn_path} should hold a 2 x (dim + 1) Kaldi CMVN stats matrix, got shape {stats.shape}."
            )
        count = stats[0, -1]
        if not count >= 1:
            raise ValueError(f"{cmvn_path} has a frame count of {count}; CMVN stats need a count >= 1.")
        mean = stats[0, :-1] / count
        variance = np.maximum(stats[1, :-1] / count - mean * mean, CMVN_VARIANCE_FLOOR)
        istd = 1.0 / np.sqrt(variance)
        kwargs.setdefault("feature_size", len(mean))
        return cls(cmvn_mean=mean.tolist(), cmvn_istd=istd.tolist(), **kwargs)

    def _to_waveforms(self, raw_speech) -> list[torch.Tensor]:
        """Splits the input into a list of 1-D float tensors at int16 scale, validating each one."""
        if isinstance(raw_speech, (np.ndarray, torch.Tensor)):
            if raw_speech.ndim == 1:
                items = [raw_speech]
            elif raw_speech.ndim == 2:
                items = list(raw_speech)  # (batch, samples), like Whisper: a (channels, samples) array is a batch
            else:
                raise ValueError(
                    f"Audio must be 1-D (samples) or 2-D (batch, samples), got an array of shape "
                    f"{tuple(raw_speech.shape)}. Mix multi-channel audio down to mono first."
                )
        elif isinstance(raw_speech, Sequence) and not isinstance(raw_speech, str):
            if len(raw_speech) == 0:
                raise ValueError("Got an empty batch: no audio to featurize.")
            is_batch = isinstance(raw_speech[0], (np.ndarray, torch.Tensor, list, tuple))
            items = list(raw_speech) if is_batch else [raw_speech]
        else:
            raise ValueError(f"Audio must be an array, a tensor or a list of them, got {type(raw_speech).__name__}.")

        waveforms = []
        for i, item in enumerate(items):
            # Validation and scaling run on the CPU in float64 (exact for int16 and float32 input; MPS has no float64).
            wave = item.detach().cpu() if isinstance(item, torch.Tensor) else torch.tensor(np.asarray(item))
            if wave.ndim != 1:
                raise ValueError(
                    f"Audio {i} has shape {tuple(wave.shape)}; each audio must be 1-D (mono samples). "
                    "Mix multi-channel audio down to mono first."
                )
            if wave.is_floating_point():
                wave = wave.double()
                if not torch.isfinite(wave).all():
                    raise ValueError(f"Audio {i} contains NaN or infinite values.")
                peak = wave.abs().max().item() if wave.numel() else 0.0
                if peak > 4.0:
                    logger.warning(
                        f"Float audio is expected in [-1, 1] but audio {i} peaks at {peak:.1f}; it is scaled by "
                        "32768. Pass int16-scale samples as an int16 array instead."
                    )
                wave = wave * INT16_SCALE
            elif wave.dtype == torch.int16:  # the original's input: 16-bit PCM samples, used as they are
                wave = wave.double()
            elif wave.dtype in (torch.int8, torch.uint8, torch.int32, torch.int64):
                # Which scale other integer types have is a guess (int32 PCM or int16 values?); refusing beats a
                # silently wrong transcript. The pipeline and `audio_io.load_waveform` scale PCM by its type.
                raise ValueError(
                    f"Integer audio {i} is {str(wave.dtype).replace('torch.', '')}; pass int16 PCM samples or float in"
                    " [-1, 1] (`transformers_fireredasr.audio_io.pcm_to_float` converts int8, uint8 and int32 PCM)."
                )
            else:
                raise ValueError(f"Audio {i} has unsupported dtype {wave.dtype}; use float in [-1, 1] or int16.")
            if wave.numel() == 0:
                raise ValueError(f"Audio {i} is empty.")
            if wave.numel() < self.win_length:
                raise ValueError(
                    f"Audio {i} has {wave.numel()} samples, shorter than one {self.frame_length_ms:g} ms frame "
                    f"({self.win_length} samples at {self.sampling_rate} Hz)."
                )
            waveforms.append(wave)
        return waveforms

    def _extract_fbank_features(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Kaldi fbank of a (batch, samples) float32 tensor at int16 scale -> (batch, frames, feature_size)."""
        frames = waveforms.unfold(-1, self.win_length, self.hop_length)
        if self.dither > 0:
            frames = frames + self.dither * torch.randn_like(frames)
        # The order of operations follows Kaldi's ProcessWindow so the float32 round-off matches it closely.
        frames = frames - frames.sum(dim=-1, keepdim=True) / self.win_length
        if self.preemphasis != 0:
            previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
            frames = frames - self.preemphasis * previous
        frames = frames * torch.from_numpy(self.window).to(frames.device)
        spectrum = torch.fft.rfft(frames, n=self.n_fft)
        power = spectrum.real.square() + spectrum.imag.square()
        mel = power @ torch.from_numpy(self.mel_filters).to(frames.device)
        return mel.clamp_min(KALDI_LOG_FLOOR).log()

    def _kaldi_native_fbank_features(self, waveforms: list[torch.Tensor], frames: int) -> torch.Tensor:
        """The same fbank computed by the kaldi_native_fbank package, one audio at a time on the CPU -> float32
        `(batch, frames, feature_size)`, zero past each audio's own frames."""
        try:
            import kaldi_native_fbank as knf
        except ImportError as err:
            raise ImportError(
                "fbank_backend='kaldi_native_fbank' needs the kaldi-native-fbank package: "
                "`pip install kaldi-native-fbank` (or `pip install transformers-fireredasr[vad]`)."
            ) from err
        options = knf.FbankOptions()  # its defaults are Kaldi's: povey window, DC removal, power, log
        options.frame_opts.samp_freq = self.sampling_rate
        options.frame_opts.frame_length_ms = self.frame_length_ms
        options.frame_opts.frame_shift_ms = self.frame_shift_ms
        options.frame_opts.preemph_coeff = self.preemphasis
        options.frame_opts.dither = self.dither
        options.frame_opts.snip_edges = True
        options.mel_opts.num_bins = self.feature_size
        options.mel_opts.low_freq = KALDI_MEL_LOW_FREQ
        features = torch.zeros(len(waveforms), frames, self.feature_size)
        for row, wave in zip(features, waveforms, strict=True):
            fbank = knf.OnlineFbank(options)
            fbank.accept_waveform(self.sampling_rate, wave.numpy().astype(np.float32))
            fbank.input_finished()
            ready = fbank.num_frames_ready
            if ready:
                row[:ready] = torch.from_numpy(np.stack([fbank.get_frame(i) for i in range(ready)]))
        return features

    def __call__(
        self,
        raw_speech: np.ndarray | torch.Tensor | list[float] | list[np.ndarray] | list[torch.Tensor],
        sampling_rate: int | None = None,
        return_tensors: str | TensorType | None = None,
        padding: bool | str = "longest",
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        truncation: bool = False,
        return_attention_mask: bool | None = True,
        device: str | torch.device = "cpu",
        fbank_backend: str = "torch",
        **kwargs,
    ) -> BatchFeature:
        """
        Featurizes one audio or a batch.

        Args:
            raw_speech (`np.ndarray`, `torch.Tensor`, `list[float]` or a list of those):
                One mono audio (1-D) or a batch (a list of 1-D audios, or a 2-D `(batch, samples)` array; a
                `(channels, samples)` array is therefore read as a batch of mono audios). Float audio is taken to
                lie in [-1, 1] and scaled by 32768; int16 audio is taken as PCM samples; other integer types are refused.
            sampling_rate (`int`, *optional*):
                Sampling rate of `raw_speech`; anything but `self.sampling_rate` is refused.
            return_tensors (`str` or [`~utils.TensorType`], *optional*):
                `"pt"` returns torch tensors (left on `device`); `None`/`"np"` return numpy arrays.
            padding (`bool` or `str`, *optional*, defaults to `"longest"`):
                `"longest"`/`True` pads to the longest audio in frames; `"max_length"` pads to `max_length` frames.
            max_length (`int`, *optional*):
                Number of frames to pad to with `padding="max_length"`.
            pad_to_multiple_of (`int`, *optional*):
                Round the padded number of frames up to a multiple of this value.
            truncation (`bool`, *optional*, defaults to `False`):
                Not supported (accepted as `False` for the ASR pipeline).
            return_attention_mask (`bool`, *optional*, defaults to `True`):
                Return the `(batch, frames)` int32 mask with 1 for real frames.
            device (`str` or `torch.device`, *optional*, defaults to `"cpu"`):
                Device the features are computed on.
            fbank_backend (`str`, *optional*, defaults to `"torch"`):
                `"torch"` computes the fbank batched, with torch, on `device`. `"kaldi_native_fbank"` has the
                kaldi_native_fbank package compute it on the CPU, one audio at a time, and applies the CMVN in float64:
                the original FireRedASR and FireRedVAD packages compute their features this way, so the features
                equal theirs bit for bit. The two agree but for float32 round-off, which their FFTs make differently
                and which shows most in quiet frequency bins.

        Returns:
            [`BatchFeature`] with `input_features` float32 `(batch, frames, feature_size)`, right-padded with
            `padding_value`, and `attention_mask`.
        """
        if sampling_rate is None:
            logger.warning(
                f"It is strongly recommended to pass the `sampling_rate` argument to `{self.__class__.__name__}()`. "
                "Failing to do so can result in silent errors that might be hard to debug."
            )
        elif sampling_rate != self.sampling_rate:
            raise ValueError(
                f"{self.__class__.__name__} expects audio sampled at {self.sampling_rate} Hz, got {sampling_rate} Hz. "
                f"Resample it first, e.g. with `librosa.resample(audio, orig_sr={sampling_rate}, "
                f"target_sr={self.sampling_rate})` or `torchaudio.functional.resample`; the ASR pipeline resamples "
                'for you when given `{"raw": audio, "sampling_rate": sr}`.'
            )
        if truncation:
            raise ValueError(f"{self.__class__.__name__} does not truncate audio; cut it before featurizing.")

        waveforms = self._to_waveforms(raw_speech)
        num_frames = torch.tensor([self._get_frame_count(len(w)) for w in waveforms])
        longest = int(num_frames.max())
        if padding is True or padding == "longest":
            target = longest
        elif padding == "max_length":
            if max_length is None or max_length < longest:
                raise ValueError(
                    f"padding='max_length' needs `max_length` >= the longest audio ({longest} frames), got {max_length}."
                )
            target = max_length
        else:
            raise ValueError(f"Unsupported padding={padding!r}; use 'longest' (default) or 'max_length'.")
        if pad_to_multiple_of:
            target = math.ceil(target / pad_to_multiple_of) * pad_to_multiple_of

        if fbank_backend == "kaldi_native_fbank":
            features = self._kaldi_native_fbank_features(waveforms, longest)
            cmvn_dtype = torch.float64  # as the original packages apply it (numpy, float64) to these features
        elif fbank_backend == "torch":
            batch = torch.nn.utils.rnn.pad_sequence(waveforms, batch_first=True)
            features = self._extract_fbank_features(batch.to(device=device, dtype=torch.float32))
            cmvn_dtype = torch.float32
        else:
            raise ValueError(f"fbank_backend must be one of {', '.join(FBANK_BACKENDS)}, got {fbank_backend!r}.")
        if self.cmvn_mean is not None:
            mean = torch.tensor(self.cmvn_mean, dtype=cmvn_dtype, device=features.device)
            istd = torch.tensor(self.cmvn_istd, dtype=cmvn_dtype, device=features.device)
            features = ((features.to(cmvn_dtype) - mean) * istd).float()
        features = features.to(device)
        features = torch.nn.functional.pad(features, (0, 0, 0, target - features.shape[1]))
        attention_mask = (
            torch.arange(target, device=features.device)[None, :] < num_frames.to(features.device)[:, None]
        )
        features = features.masked_fill(~attention_mask[..., None], self.padding_value)

        data = {"input_features": features}
        if return_attention_mask is None:
            return_attention_mask = self.return_attention_mask
        if return_attention_mask:
            data["attention_mask"] = attention_mask.to(torch.int32)
        if return_tensors != "pt":
            data = {key: value.cpu().numpy() for key, value in data.items()}
        return BatchFeature(data=data, tensor_type=return_tensors)


__all__ = ["FireRedAsrFeatureExtractor"]
