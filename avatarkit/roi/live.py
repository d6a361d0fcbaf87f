"""Streaming model inputs for the live server: TTS PCM chunks in, per-frame mel windows out.

The live server hears an utterance as PCM16 chunks at the voice's rate (22.05 kHz espeak-ng,
16-44.1 kHz ElevenLabs) and must start rendering mouth patches long before the utterance
ends. This module is the pure part of that: no sockets, no model, no clock.

    frames = LiveFrames(sample_rate=22050, fps=25)
    for chunk in chunks:
        for w in frames.push(chunk_pcm16_bytes):   # windows that became final
            w.index, w.pts_ms, w.mel                # frame i, i * 1000 / fps, (80, 16)
    rest = frames.finish()                          # the tail (Wav2Lip's end rule)

- `StreamResampler` converts to 16 kHz with a Kaiser-windowed sinc whose taps are tabulated
  per phase (the rate ratio is rational), so the output does not depend on how the input was
  chunked: concatenated pieces equal one pass over the whole signal.
- `MelStream` turns that into Wav2Lip's mel columns as they become final.
- Frame i (at the avatar's idle fps) needs the 16 columns from `int(i * 80 / fps)`, i.e.
  audio up to i/fps + 0.2 s (+ half an STFT window); it is released as soon as they exist.
  At `finish()` the remaining frames follow `mel_window`'s end rule (the last 16 columns;
  silence padding for audio under 0.2 s), so the windows equal `mel_windows` of the whole
  utterance - the offline recipe - frame for frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import gcd

import numpy as np

from avatarkit.errors import AvatarkitError
from avatarkit.roi.mel import (
    MEL_STEP,
    N_MELS,
    SAMPLE_RATE,
    SILENCE,
    MelStream,
    frame_count,
    window_start,
)

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

    def __init__(self, rate_in: int, rate_out: int = SAMPLE_RATE) -> None:
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


@dataclass(frozen=True)
class FrameWindow:
    """The model's audio input for one output frame of an utterance."""

    index: int  # frame number within the utterance (0, 1, ...)
    pts_ms: float  # index * 1000 / fps on the utterance's audio clock
    mel: np.ndarray  # (80, 16) float32


class LiveFrames:
    """PCM16 chunks of one utterance -> `FrameWindow`s at `fps`, as soon as they are final."""

    def __init__(self, sample_rate: int, fps: float) -> None:
        if not fps > 0:
            raise AvatarkitError(f"frame rate must be positive, got {fps}")
        self.fps = float(fps)
        self._resampler = StreamResampler(int(sample_rate))
        self._mel = MelStream()
        self._cols = np.zeros((N_MELS, 0), dtype=np.float32)  # columns from _col_base on
        self._col_base = 0
        self._next = 0  # next frame to release
        self._samples16k = 0
        self._finished = False
        self._odd = b""

    @property
    def frames_released(self) -> int:
        return self._next

    def push_pcm16(self, pcm: bytes) -> list[FrameWindow]:
        """Little-endian PCM16 mono bytes (a provider chunk; an odd byte waits for the next)."""
        data = self._odd + bytes(pcm)
        cut = len(data) - len(data) % 2
        self._odd = data[cut:]
        samples = np.frombuffer(data[:cut], dtype="<i2")
        return self.push(samples.astype(np.float32) / 32768.0)

    def push(self, samples: np.ndarray) -> list[FrameWindow]:
        """Float samples in [-1, 1] at the voice's rate."""
        if self._finished:
            raise RuntimeError("LiveFrames.push after finish()")
        y = self._resampler.push(samples)
        self._samples16k += len(y)
        self._add(self._mel.push(y))
        out = []
        while True:
            start = window_start(self._next, self.fps)
            if start + MEL_STEP > self._col_base + self._cols.shape[1]:
                break
            out.append(self._window(self._next, start))
        self._trim()
        return out

    def finish(self) -> list[FrameWindow]:
        """End of the utterance: every frame still due, by Wav2Lip's end rule."""
        if self._finished:
            return []
        y = self._resampler.finish()
        self._samples16k += len(y)
        self._add(self._mel.push(y))
        self._add(self._mel.finish())
        self._finished = True
        total_cols = self._col_base + self._cols.shape[1]
        out = []
        for i in range(self._next, frame_count(self._samples16k, self.fps)):
            if total_cols < MEL_STEP:
                mel = np.full((N_MELS, MEL_STEP), SILENCE, dtype=np.float32)
                mel[:, :total_cols] = self._cols  # nothing was trimmed: under 16 columns
                out.append(FrameWindow(i, i * 1000.0 / self.fps, mel))
                self._next = i + 1
                continue
            out.append(self._window(i, min(window_start(i, self.fps), total_cols - MEL_STEP)))
        return out

    def _add(self, cols: np.ndarray) -> None:
        if cols.shape[1]:
            self._cols = np.concatenate([self._cols, cols], axis=1)

    def _window(self, i: int, start: int) -> FrameWindow:
        local = start - self._col_base
        mel = np.ascontiguousarray(self._cols[:, local:local + MEL_STEP])
        self._next = i + 1
        return FrameWindow(i, i * 1000.0 / self.fps, mel)

    def _trim(self) -> None:
        """Forget columns no future frame can use (the end rule needs the last 16)."""
        total = self._col_base + self._cols.shape[1]
        keep_from = min(window_start(self._next, self.fps), total - MEL_STEP)
        drop = keep_from - self._col_base
        if drop > 0:
            self._cols = self._cols[:, drop:]
            self._col_base = keep_from
