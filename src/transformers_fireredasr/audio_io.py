"""Turning whatever a user passes as audio into a checked 16 kHz mono float32 waveform, or a clear error.

Accepted: a file path or encoded bytes (any format ffmpeg reads), a numpy array or torch tensor (mono, or stereo as
`(channels, samples)` / `(samples, channels)`), a `{"raw"|"array": ..., "sampling_rate": ...}` dict as the ASR
pipeline and `datasets` use, and a torchcodec `AudioDecoder` from a `datasets` Audio column. Float arrays are
samples in [-1, 1]; integer arrays are PCM and are scaled by their full range as audio files store them (int8,
int16, int32, and unsigned 8-bit with its 128 offset); other integer types are refused. Other sampling rates are
resampled (polyphase, scipy); empty, NaN/inf or undecodable audio raises `ValueError` naming the input. A 16-bit
mono wav already at 16 kHz is read without starting ffmpeg, with the samples ffmpeg would give.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import wave
from math import gcd
from pathlib import Path
from typing import Any

import numpy as np

SAMPLING_RATE = 16000


def _describe(source: Any) -> str:
    return str(source) if isinstance(source, (str, Path)) else f"audio input ({type(source).__name__})"


# Integer PCM as audio files store it: (offset, full scale) per sample type. 8-bit wav is unsigned, centred on 128.
PCM_FULL_SCALE = {
    np.dtype(np.int8): (0.0, 2.0**7),
    np.dtype(np.int16): (0.0, 2.0**15),
    np.dtype(np.int32): (0.0, 2.0**31),
    np.dtype(np.uint8): (128.0, 2.0**7),
}


def pcm_to_float(audio: np.ndarray, name: str = "audio") -> np.ndarray:
    """Integer PCM samples as float32 in [-1, 1] (scaled by the type's full range); float audio is returned as is.

    Taking int16 samples as float would give audio 32768 times too loud, a silent wrong transcript; integer types
    that no audio format uses for PCM (int64, uint16, ...) are refused rather than guessed at.
    """
    if audio.dtype.kind not in "iub":
        return audio
    if audio.dtype not in PCM_FULL_SCALE:
        supported = ", ".join(str(dtype) for dtype in PCM_FULL_SCALE)
        raise ValueError(
            f"{name}: {audio.dtype} samples are not a PCM format; pass integer PCM as {supported}, or float samples"
            " in [-1, 1]"
        )
    offset, scale = PCM_FULL_SCALE[audio.dtype]
    return ((audio.astype(np.float64) - offset) / scale).astype(np.float32)


def decode_file(path: str | Path, sampling_rate: int = SAMPLING_RATE) -> np.ndarray:
    """Decodes an audio file with ffmpeg to mono float32 at `sampling_rate`; errors name the file."""
    file = Path(path)
    if file.is_dir():
        raise ValueError(f"{path}: is a directory, not an audio file")
    if not file.is_file():
        raise ValueError(f"{path}: no such file")
    return decode_bytes(file.read_bytes(), sampling_rate, name=str(path))


def decode_bytes(data: bytes, sampling_rate: int = SAMPLING_RATE, name: str = "audio bytes") -> np.ndarray:
    """Decodes encoded audio bytes with ffmpeg to mono float32 at `sampling_rate`.

    Unlike `transformers.pipelines.audio_utils.ffmpeg_read`, decoder errors are not hidden: a corrupt or truncated
    file raises instead of silently giving part of the audio.
    """
    if not data:
        raise ValueError(f"{name}: the file is empty")
    if _truncated_wav(data):
        raise ValueError(f"{name}: truncated wav (the header promises more audio than the file holds)")
    plain = _plain_wav_samples(data, sampling_rate)
    if plain is not None:
        return check_waveform(plain, name)
    if shutil.which("ffmpeg") is None:
        raise RuntimeError("ffmpeg was not found: install it (apt-get install ffmpeg) to read audio files")
    command = ["ffmpeg", "-nostdin", "-v", "error", "-i", "pipe:0", "-ac", "1", "-ar", str(sampling_rate)]
    result = subprocess.run([*command, "-f", "f32le", "pipe:1"], input=data, capture_output=True)
    message = result.stderr.decode(errors="replace").strip().splitlines()
    if result.returncode != 0 or not result.stdout:
        reason = message[-1] if message else "ffmpeg decoded no samples"
        raise ValueError(f"{name}: not readable as audio ({reason})")
    if message:
        raise ValueError(f"{name}: corrupt or truncated audio ({message[-1]})")
    return check_waveform(np.frombuffer(result.stdout, dtype="<f4").copy(), name)  # writable, torch needs it


def _plain_wav_samples(data: bytes, sampling_rate: int) -> np.ndarray | None:
    """The samples of a 16-bit PCM mono wav already at `sampling_rate`, read with the stdlib; None for any other
    file. Starting an ffmpeg process per file costs more CPU than the rest of a short upload's work in the server;
    for this format ffmpeg would only scale the samples by 2^-15, which this does bit for bit."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    try:
        with wave.open(io.BytesIO(data)) as file:
            if (file.getnchannels(), file.getsampwidth(), file.getframerate()) != (1, 2, sampling_rate):
                return None
            frames = file.readframes(file.getnframes())
    except (wave.Error, EOFError):  # not plain PCM (float, extensible, ...) or an odd header: ffmpeg decides
        return None
    if not frames:
        return None
    return np.frombuffer(frames, dtype="<i2").astype(np.float32) * np.float32(2.0**-15)


def _truncated_wav(data: bytes) -> bool:
    """A RIFF/WAVE file whose `data` chunk declares more bytes than follow it (ffmpeg decodes those silently)."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return False
    position = 12
    while position + 8 <= len(data):
        chunk, size = data[position : position + 4], int.from_bytes(data[position + 4 : position + 8], "little")
        if chunk == b"data":
            # 0 and 0xFFFFFFFF mark streamed wavs of unknown length.
            return size not in (0, 0xFFFFFFFF) and position + 8 + size > len(data)
        position += 8 + size + (size & 1)
    return True  # no data chunk at all


def to_mono(audio: np.ndarray, name: str = "audio") -> np.ndarray:
    """Averages the channels of `(channels, samples)` or `(samples, channels)` audio (the shorter axis is channels)."""
    if audio.ndim == 1:
        return audio
    if audio.ndim == 2:
        channel_axis = 0 if audio.shape[0] <= audio.shape[1] else 1
        if audio.shape[channel_axis] > 8:
            raise ValueError(f"{name}: expected mono or a few channels, got an array of shape {tuple(audio.shape)}")
        return audio.mean(axis=channel_axis)
    raise ValueError(f"{name}: expected a 1-D waveform (or 2-D multichannel), got shape {tuple(audio.shape)}")


def resample(audio: np.ndarray, orig_rate: int, target_rate: int = SAMPLING_RATE) -> np.ndarray:
    """Polyphase resampling (scipy's `resample_poly`, Kaiser window) from `orig_rate` to `target_rate`."""
    if orig_rate <= 0:
        raise ValueError(f"sampling rate must be positive, got {orig_rate}")
    if orig_rate == target_rate:
        return audio
    from scipy.signal import resample_poly

    factor = gcd(int(orig_rate), int(target_rate))
    return resample_poly(audio, target_rate // factor, int(orig_rate) // factor).astype(np.float32)


def check_waveform(audio: np.ndarray, name: str = "audio") -> np.ndarray:
    """Rejects empty and non-finite audio; returns it as float32."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.size == 0:
        raise ValueError(f"{name}: the audio is empty (0 samples)")
    if not np.isfinite(audio).all():
        raise ValueError(f"{name}: the audio contains NaN or infinite samples")
    return audio


def load_waveform(source: Any, sampling_rate: int = SAMPLING_RATE) -> np.ndarray:
    """Any supported audio input as a checked mono float32 waveform at `sampling_rate`."""
    name = _describe(source)
    if isinstance(source, (str, Path)):
        return decode_file(source, sampling_rate)
    if isinstance(source, (bytes, bytearray)):
        return decode_bytes(bytes(source), sampling_rate)
    rate = sampling_rate
    torchcodec = sys.modules.get("torchcodec")
    if torchcodec is not None and isinstance(source, torchcodec.decoders.AudioDecoder):
        samples = source.get_all_samples()
        source, rate = samples.data.numpy(), samples.sample_rate
    elif isinstance(source, dict):
        array = source.get("raw", source.get("array"))
        if array is None or "sampling_rate" not in source:
            raise ValueError('an audio dict needs a "raw" (or "array") waveform and its "sampling_rate"')
        source, rate = array, int(source["sampling_rate"])
    if hasattr(source, "detach"):  # a torch tensor; integer PCM keeps its type so that it is scaled below
        source = source.detach().cpu()
        source = (source.float() if source.is_floating_point() else source).numpy()
    if not isinstance(source, np.ndarray):
        raise TypeError(f"unsupported audio input of type {type(source).__name__}: pass a path, bytes or an array")
    audio = to_mono(check_waveform(pcm_to_float(source, name), name), name)
    return check_waveform(resample(audio, rate, sampling_rate), name)


__all__ = ["check_waveform", "decode_bytes", "decode_file", "load_waveform", "pcm_to_float", "resample", "to_mono"]
