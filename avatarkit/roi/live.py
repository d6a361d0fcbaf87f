"""Streaming model inputs for the live server: TTS PCM chunks in, per-frame mel windows out.

The live server hears an utterance as PCM16 chunks at the voice's rate (22.05 kHz espeak-ng,
16-44.1 kHz ElevenLabs) and must start rendering mouth patches long before the utterance
ends. This module is the pure part of that: no sockets, no model, no clock.

    frames = LiveFrames(sample_rate=22050, fps=25)
    for chunk in chunks:
        for w in frames.push(chunk_pcm16_bytes):   # windows that became final
            w.index, w.pts_ms, w.mel                # frame i, i * 1000 / fps, (80, 16)
    rest = frames.finish()                          # the tail (Wav2Lip's end rule)

- `StreamResampler` (avatarkit/audio/resample.py) converts to 16 kHz, chunking-independent:
  the offline preview resamples the whole track with the same filter, so both hear the same.
- `MelStream` turns that into Wav2Lip's mel columns as they become final.
- Frame i (at the avatar's idle fps) needs the 16 columns from `int(i * 80 / fps)`, i.e.
  audio up to i/fps + 0.2 s (+ half an STFT window); it is released as soon as they exist.
  At `finish()` the remaining frames follow `mel_window`'s end rule (the last 16 columns;
  silence padding for audio under 0.2 s), so the windows equal `mel_windows` of the whole
  utterance - the offline recipe - frame for frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatarkit.audio.resample import StreamResampler
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
        self._resampler = StreamResampler(int(sample_rate), SAMPLE_RATE)
        self._mel = MelStream()
        self._cols = np.zeros((N_MELS, 0), dtype=np.float32)  # columns from _col_base on
        self._col_base = 0
        self._next = 0  # next frame to release
        self._samples16k = 0
        self._finished = False
        self._odd = b""

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
