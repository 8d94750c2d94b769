"""Resampling a live pcm16 stream to the model's 16 kHz with a windowed-sinc polyphase filter.

The filter runs over the accumulated stream, not chunk by chunk: each output sample is computed once all the input
under its filter is known, so however the audio is cut into appends, the output equals the whole stream resampled in
one go (`resample_pcm16`), which is what the HTTP endpoint is given in the tests. The filter follows
`scipy.signal.resample_poly`'s design (Kaiser window, beta 5, ten zero crossings per side at the lower rate, cutoff at
the lower Nyquist frequency). Outputs are rounded to the 16-bit grid, as if the client had sent 16 kHz pcm16.
Memory is bounded: only the last filter length of input is kept.
"""

from __future__ import annotations

import math

import numpy as np

TARGET_RATE = 16000
# Zero crossings of the sinc on each side, at the lower of the two rates.
HALF_CROSSINGS = 10
KAISER_BETA = 5.0


def lowpass_filter(up: int, down: int) -> np.ndarray:
    """The anti-aliasing filter at `up` times the input rate, with a gain of `up` (the zeros stuffed in between)."""
    factor = max(up, down)
    half = HALF_CROSSINGS * factor
    n = np.arange(2 * half + 1) - half
    taps = np.sinc(n / factor) * np.kaiser(2 * half + 1, KAISER_BETA)
    return taps * (up / taps.sum())


class StreamingResampler:
    """pcm16 at `rate` -> float32 at 16 kHz on the 16-bit grid; `push` what arrives, `flush` at the end of a stream
    (the missing future input counts as silence, as in one-shot resampling)."""

    def __init__(self, rate: int) -> None:
        if rate <= 0:
            raise ValueError(f"the sample rate must be positive, got {rate}")
        common = math.gcd(rate, TARGET_RATE)
        self.rate = rate
        self.up, self.down = TARGET_RATE // common, rate // common
        self.taps = lowpass_filter(self.up, self.down)
        self.half = (len(self.taps) - 1) // 2
        self.width = len(self.taps) // self.up + 1  # inputs any output touches
        # Output n uses inputs last(n) - width + 1 .. last(n) with the taps of its phase, oldest first.
        self._weights = np.zeros((self.up, self.width))
        for phase in range(self.up):
            for back in range(self.width):
                if phase + self.up * back < len(self.taps):
                    self._weights[phase, self.width - 1 - back] = self.taps[phase + self.up * back]
        self._input = np.zeros(0, dtype=np.float64)  # input samples from index `_first` on
        self._first = 0
        self._received = 0
        self._produced = 0  # outputs computed so far

    @property
    def passthrough(self) -> bool:
        return self.up == 1 and self.down == 1

    def _last_needed(self, n: np.ndarray | int):
        """The last input sample that output `n` uses."""
        return (self.half + self.down * n) // self.up

    def _outputs(self, stop: int) -> np.ndarray:
        """Outputs `_produced .. stop - 1`; input beyond what was received counts as zero."""
        n = np.arange(self._produced, stop)
        if not len(n):
            return np.zeros(0, dtype=np.float32)
        last = self._last_needed(n)
        low = int(last[0]) - self.width + 1
        high = int(last[-1]) + 1
        # The input from `low` to `high`, zeros before the stream's start and after what was received.
        span = np.zeros(high - low, dtype=np.float64)
        begin, end = max(low, self._first), min(high, self._received)
        if end > begin:
            span[begin - low : end - low] = self._input[begin - self._first : end - self._first]
        windows = np.lib.stride_tricks.sliding_window_view(span, self.width)
        out = np.empty(len(n))
        # Outputs of one phase use every `down`-th window: strided views, no copies of the windows.
        for first in range(min(self.up, len(n))):
            phase = (self.half + self.down * int(n[first])) % self.up
            rows = windows[int(last[first]) - self.width + 1 - low :: self.down][: len(out[first :: self.up])]
            out[first :: self.up] = np.einsum("ij,j->i", rows, self._weights[phase])
        self._produced = stop
        return quantize(out)

    def _trim(self) -> None:
        """Forgets input no later output needs."""
        first_needed = max(self._last_needed(self._produced) - self.width + 1, 0)
        if first_needed > self._first:
            self._input = self._input[first_needed - self._first :]
            self._first = first_needed

    def push(self, pcm: np.ndarray) -> np.ndarray:
        """Takes int16 samples; returns the 16 kHz samples that are now complete."""
        samples = np.asarray(pcm, dtype=np.float64) / 32768.0
        if self.passthrough:
            self._received += len(samples)
            return quantize(samples)
        self._input = np.concatenate([self._input, samples])
        self._received += len(samples)
        # Output n is complete once its last input sample has arrived.
        stop = (self._received * self.up - 1 - self.half) // self.down + 1 if self._received else 0
        out = self._outputs(max(stop, self._produced))
        self._trim()
        return out

    def flush(self) -> np.ndarray:
        """The outputs still owed for the input received (the stream's end is followed by silence); the resampler
        then starts over."""
        if self.passthrough:
            out = np.zeros(0, dtype=np.float32)
        else:
            out = self._outputs(max(-(-self._received * self.up // self.down), self._produced))
        self.__init__(self.rate)
        return out


def quantize(audio: np.ndarray) -> np.ndarray:
    """float audio in [-1, 1] rounded to the 16-bit grid, as float32 (what a 16-bit wav of it decodes to)."""
    return (np.clip(np.round(np.asarray(audio) * 32768.0), -32768, 32767) / 32768.0).astype(np.float32)


def resample_pcm16(pcm: np.ndarray, rate: int) -> np.ndarray:
    """A whole pcm16 recording at `rate` -> float32 at 16 kHz, exactly as a live session resamples it."""
    resampler = StreamingResampler(rate)
    return np.concatenate([resampler.push(pcm), resampler.flush()])


__all__ = ["TARGET_RATE", "StreamingResampler", "lowpass_filter", "quantize", "resample_pcm16"]
