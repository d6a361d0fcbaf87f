"""Wav2Lip's mel features in numpy, batch and incremental.

A Wav2Lip generator was trained on one exact feature recipe; a model fed anything else moves
the lips wrongly, so this module reproduces it number for number (DESIGN.md, "Wav2Lip I/O"):
16 kHz audio, pre-emphasis 0.97, centred STFT (n_fft 800, hop 200, periodic Hann window of
800, reflect padding as the librosa of Wav2Lip's time did), magnitude, 80 Slaney mel bands
55-7600 Hz with Slaney area normalisation, 20*log10 with a floor of 1e-5, minus 20 dB, and
symmetric normalisation of [-100, 0] dB to [-4, 4] with clipping.

`MelStream` takes PCM in chunks and returns the columns that are final; the concatenation of
everything it returns equals `melspectrogram` of the whole signal (every column depends only
on its own 800-sample window, and the stream holds back the columns that touch the end pad).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

SAMPLE_RATE = 16000
N_FFT = 800
HOP = 200
WIN = 800
N_MELS = 80
FMIN = 55.0
FMAX = 7600.0
PREEMPHASIS = 0.97
REF_LEVEL_DB = 20.0
MIN_LEVEL_DB = -100.0
MAX_ABS_VALUE = 4.0
MEL_STEP = 16  # mel columns per video frame (0.2 s of audio)
COLUMNS_PER_SECOND = SAMPLE_RATE / HOP  # 80
SILENCE = -MAX_ABS_VALUE  # the value of a column of digital silence

_MIN_LEVEL = np.exp(MIN_LEVEL_DB / 20 * np.log(10))  # 1e-5


#: Slaney's auditory scale: linear (F_SP Hz per mel) below MIN_LOG_HZ, logarithmic above.
F_SP = 200.0 / 3
MIN_LOG_HZ = 1000.0
MIN_LOG_MEL = MIN_LOG_HZ / F_SP
LOGSTEP = np.log(6.4) / 27.0


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    hz = np.asarray(hz, dtype=np.float64)
    log_part = MIN_LOG_MEL + np.log(np.maximum(hz, MIN_LOG_HZ) / MIN_LOG_HZ) / LOGSTEP
    return np.where(hz >= MIN_LOG_HZ, log_part, hz / F_SP)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel >= MIN_LOG_MEL, MIN_LOG_HZ * np.exp(LOGSTEP * (mel - MIN_LOG_MEL)),
                    F_SP * mel)


def mel_filterbank(sr: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS,
                   fmin: float = FMIN, fmax: float = FMAX) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular Slaney filters with area normalisation."""
    fft_freqs = np.linspace(0.0, sr / 2.0, n_fft // 2 + 1)
    mel_points = np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2)
    hz_points = _mel_to_hz(mel_points)
    widths = np.diff(hz_points)
    ramps = hz_points[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (hz_points[2:] - hz_points[:-2]))[:, None]
    weights.flags.writeable = False
    return weights


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    n = np.arange(WIN)
    w = 0.5 - 0.5 * np.cos(2 * np.pi * n / WIN)  # periodic Hann (scipy/librosa 'hann')
    w.flags.writeable = False
    return w


def preemphasis(wav: np.ndarray, previous: float = 0.0) -> np.ndarray:
    """y[n] = x[n] - 0.97 x[n-1]; `previous` is the sample before `wav` (0 at the start)."""
    x = np.asarray(wav, dtype=np.float64)
    y = x.copy()
    if len(x):
        y[0] -= PREEMPHASIS * previous
        y[1:] -= PREEMPHASIS * x[:-1]
    return y


def _columns(frames: np.ndarray) -> np.ndarray:
    """(n, 800) windows of the pre-emphasised, padded signal -> (80, n) normalised mel."""
    if len(frames) == 0:
        return np.zeros((N_MELS, 0), dtype=np.float32)
    spec = np.abs(np.fft.rfft(frames * _window(), n=N_FFT, axis=1))
    mel = spec @ mel_filterbank().T  # (n, 80)
    db = 20.0 * np.log10(np.maximum(_MIN_LEVEL, mel)) - REF_LEVEL_DB
    norm = (2 * MAX_ABS_VALUE) * ((db - MIN_LEVEL_DB) / -MIN_LEVEL_DB) - MAX_ABS_VALUE
    return np.clip(norm, -MAX_ABS_VALUE, MAX_ABS_VALUE).T.astype(np.float32)


def _frames(padded: np.ndarray, count: int) -> np.ndarray:
    """The first `count` 800-sample windows of `padded`, 200 samples apart (a strided view)."""
    if count <= 0:
        return np.zeros((0, N_FFT))
    view = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
    return view[:count]


def column_count(samples: int) -> int:
    """Mel columns for a signal of `samples` samples (centred STFT: 1 + samples // hop)."""
    return 1 + samples // HOP


def melspectrogram(wav: np.ndarray) -> np.ndarray:
    """(80, 1 + len(wav) // 200) float32 mel of 16 kHz mono audio in [-1, 1], as Wav2Lip."""
    y = preemphasis(np.asarray(wav, dtype=np.float64).reshape(-1))
    if len(y) == 0:
        return np.zeros((N_MELS, 0), dtype=np.float32)
    padded = np.pad(y, N_FFT // 2, mode="reflect") if len(y) > 1 else np.pad(y, N_FFT // 2)
    return _columns(_frames(padded, column_count(len(y))))


class MelStream:
    """Incremental `melspectrogram`: push PCM chunks, get the columns that became final.

    Column t needs samples up to t*200 + 400; the start pad reflects samples 1..400, so the
    first columns wait until 401 samples have arrived, and the last columns (whose window
    reaches past the end) come from `finish()`, which reflects the final samples.
    """

    def __init__(self) -> None:
        self._previous = 0.0  # last raw sample (pre-emphasis state)
        self._head: np.ndarray | None = None  # pre-emphasised samples until the start pad exists
        self._padded = np.zeros(0)  # padded signal from the next column's window start on
        self._started = False  # the start pad exists (401 samples have arrived)
        self._emitted = 0
        self._samples = 0
        self._finished = False

    @property
    def columns_emitted(self) -> int:
        return self._emitted

    @property
    def samples(self) -> int:
        return self._samples

    def push(self, pcm: np.ndarray) -> np.ndarray:
        """Feed float samples in [-1, 1] at 16 kHz; returns (80, k) newly final columns."""
        if self._finished:
            raise RuntimeError("MelStream.push after finish()")
        x = np.asarray(pcm, dtype=np.float64).reshape(-1)
        if len(x) == 0:
            return np.zeros((N_MELS, 0), dtype=np.float32)
        y = preemphasis(x, self._previous)
        self._previous = float(x[-1])
        self._samples += len(x)
        if not self._started:
            head = y if self._head is None else np.concatenate([self._head, y])
            if len(head) <= N_FFT // 2:
                self._head = head
                return np.zeros((N_MELS, 0), dtype=np.float32)
            self._head = None
            self._started = True
            self._padded = np.concatenate([head[N_FFT // 2:0:-1], head])
        else:
            self._padded = np.concatenate([self._padded, y])
        return self._take(1 + (len(self._padded) - N_FFT) // HOP)

    def _take(self, count: int) -> np.ndarray:
        cols = _columns(_frames(self._padded, count))
        if count > 0:
            self._padded = self._padded[count * HOP:]
            self._emitted += count
        return cols

    def finish(self) -> np.ndarray:
        """End of audio: returns the remaining columns (those whose window reaches the end)."""
        if self._finished:
            return np.zeros((N_MELS, 0), dtype=np.float32)
        self._finished = True
        if self._head is not None:  # fewer than 401 samples in all: nothing emitted yet
            return melspectrogram_preemphasised(self._head)
        if self._samples == 0:
            return np.zeros((N_MELS, 0), dtype=np.float32)
        tail = self._padded[-(N_FFT // 2 + 1):-1][::-1]
        self._padded = np.concatenate([self._padded, tail])
        return self._take(column_count(self._samples) - self._emitted)


def melspectrogram_preemphasised(y: np.ndarray) -> np.ndarray:
    """`melspectrogram` of an already pre-emphasised signal (the stream's short-audio case)."""
    if len(y) == 0:
        return np.zeros((N_MELS, 0), dtype=np.float32)
    padded = np.pad(y, N_FFT // 2, mode="reflect") if len(y) > 1 else np.pad(y, N_FFT // 2)
    return _columns(_frames(padded, column_count(len(y))))


def window_start(frame: int, fps: float) -> int:
    """First mel column of video frame `frame`: int(frame * 80 / fps), as Wav2Lip."""
    return int(frame * COLUMNS_PER_SECOND / fps)


def frame_count(samples: int, fps: float) -> int:
    """Video frames that cover `samples` of 16 kHz audio (the last one may be partial)."""
    return int(np.ceil(samples / SAMPLE_RATE * fps - 1e-9))


def mel_window(mel: np.ndarray, frame: int, fps: float) -> np.ndarray:
    """(80, 16) mel input of video frame `frame`.

    Wav2Lip takes the 16 columns from `window_start`; a window that would run past the end is
    replaced by the last 16 columns (Wav2Lip's own end rule), and audio shorter than 16
    columns is padded with silence.
    """
    n = mel.shape[1]
    if n < MEL_STEP:
        out = np.full((N_MELS, MEL_STEP), SILENCE, dtype=np.float32)
        out[:, :n] = mel
        return out
    start = min(window_start(frame, fps), n - MEL_STEP)
    return mel[:, start:start + MEL_STEP]


def mel_windows(mel: np.ndarray, frames: range | list[int], fps: float) -> np.ndarray:
    """(len(frames), 1, 80, 16) float32 model audio inputs for the given video frames."""
    out = np.stack([mel_window(mel, i, fps) for i in frames]) if len(frames) else \
        np.zeros((0, N_MELS, MEL_STEP), dtype=np.float32)
    return out[:, None].astype(np.float32, copy=False)
