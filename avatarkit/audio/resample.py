"""Resampling to 16 kHz (or any rate), chunk by chunk or whole, with one filter.

`StreamResampler` uses a Kaiser-windowed sinc whose taps are tabulated per phase (the rate
ratio is rational), so the output does not depend on how the input was chunked:
concatenated pieces equal one pass over the whole signal. The live server (mouth patches,
audio-driven visemes) resamples as chunks arrive, the offline preview and the listener's
file input resample whole signals (`resample`) - and get exactly the same samples.
(scipy's `resample_poly` is as good a filter but not chunkable; two resamplers made the
preview's mel differ from the server's.)
"""

from __future__ import annotations

from math import gcd

import numpy as np

from avatarkit.errors import AvatarkitError

#: Zero crossings of the resampling sinc on each side of a tap (at the output's cutoff).
SINC_ZEROS = 12
#: Kaiser window shape of the resampling kernel (about 80 dB stop-band).
KAISER_BETA = 8.0


class StreamResampler:
    """Mono float audio at `rate_in` -> 16 kHz (or `rate_out`), chunk by chunk, exactly.

    Output sample n sits at input position n * rate_in / rate_out; it is a weighted sum of
    the input samples within `half` taps of it (samples before the start count as zero, as
    after the end once `finish()` is called). The rate ratio is rational, so there are only
    rate_out / gcd phases; their kernels are computed once and normalised to unit DC gain.
    """

    def __init__(self, rate_in: int, rate_out: int = 16000) -> None:
        if rate_in < 1000 or rate_out < 1000:
            raise AvatarkitError(f"cannot resample {rate_in} Hz audio to {rate_out} Hz")
        self.rate_in, self.rate_out = int(rate_in), int(rate_out)
        g = gcd(self.rate_in, self.rate_out)
        self._up, self._down = self.rate_out // g, self.rate_in // g  # phases, input step
        self._identity = self.rate_in == self.rate_out
        cutoff = min(1.0, self.rate_out / self.rate_in)  # of the input's Nyquist frequency
        self.half = int(np.ceil(SINC_ZEROS / cutoff))
        offsets = np.arange(-self.half + 1, self.half + 1)  # taps relative to floor(position)
        phase = np.arange(self._up)[:, None] / self._up  # fractional position per phase
        d = offsets[None, :] - phase
        window = np.i0(KAISER_BETA * np.sqrt(np.clip(1.0 - (d / self.half) ** 2, 0.0, 1.0)))
        kernel = cutoff * np.sinc(cutoff * d) * window / np.i0(KAISER_BETA)
        kernel /= kernel.sum(axis=1, keepdims=True)
        self._kernel = kernel.astype(np.float64)
        self._offsets = offsets
        self._buf = np.zeros(self.half)  # input from absolute index _base on (leading zeros)
        self._base = -self.half
        self._received = 0  # input samples received
        self._emitted = 0  # output samples emitted
        self._finished = False

    def _positions(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        n = np.arange(self._emitted, self._emitted + count, dtype=np.int64)
        num = n * self._down
        return num // self._up, num % self._up  # floor of the input position, phase

    def _emit(self, available: int) -> np.ndarray:
        """Every output whose taps lie below absolute input index `available`."""
        # largest n with floor(n * down / up) + half < available
        last = ((available - self.half) * self._up - 1) // self._down
        count = int(last - self._emitted + 1)
        if self._finished:
            total = -(-self._received * self._up // self._down)  # ceil(received * out / in)
            count = min(count, total - self._emitted)
        if count <= 0:
            return np.zeros(0)
        floors, phases = self._positions(count)
        idx = (floors - self._base)[:, None] + self._offsets[None, :]
        out = np.einsum("ij,ij->i", self._buf[idx], self._kernel[phases])
        self._emitted += count
        keep_from = int(self._positions(1)[0][0]) - self.half + 1  # first tap of the next
        drop = keep_from - self._base
        if drop > 0:
            self._buf = self._buf[drop:]
            self._base = keep_from
        return out

    def push(self, x: np.ndarray) -> np.ndarray:
        """Feed input samples; returns the output samples that became final."""
        if self._finished:
            raise RuntimeError("StreamResampler.push after finish()")
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        self._received += len(x)
        if self._identity:
            self._emitted += len(x)
            return x.copy()
        self._buf = np.concatenate([self._buf, x])
        return self._emit(self._received)

    def finish(self) -> np.ndarray:
        """End of input: the remaining output (trailing taps see zeros)."""
        if self._finished:
            return np.zeros(0)
        self._finished = True
        if self._identity:
            return np.zeros(0)
        self._buf = np.concatenate([self._buf, np.zeros(2 * self.half + 1)])
        return self._emit(self._received + 2 * self.half + 1)


def resample(samples: np.ndarray, rate_in: int, rate_out: int = 16000) -> np.ndarray:
    """A whole mono signal (float) at `rate_in` -> float64 at `rate_out`; the samples the
    streaming path gives for the same signal in any chunks."""
    r = StreamResampler(rate_in, rate_out)
    return np.concatenate([r.push(samples), r.finish()])
