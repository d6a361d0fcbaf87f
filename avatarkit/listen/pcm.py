"""Speech audio in any shape -> the 16 kHz mono samples the listener works on.

Files (WAV, or anything ffmpeg reads), PCM16 bytes from a socket, or NumPy arrays, at any
rate and channel count, all pass through one streaming resampler, so a stream cut into
chunks gives exactly the samples of the whole file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from avatarkit.audio.io import read_audio
from avatarkit.audio.resample import StreamResampler
from avatarkit.errors import AvatarkitError

#: The acoustic model's sample rate (pocketsphinx en-us) and the listener's clock.
RATE = 16000
#: Rates below this cannot carry the formant structure the recogniser needs.
MIN_RATE = 8000
#: Channels an interleaved stream may have.
MAX_CHANNELS = 8


def as_mono_float(pcm: bytes | np.ndarray, channels: int = 1) -> np.ndarray:
    """PCM16 LE bytes or an int16/float array (interleaved) -> mono float64 in [-1, 1]."""
    if isinstance(pcm, bytes | bytearray | memoryview):
        raw = bytes(pcm)
        if len(raw) % (2 * channels):
            raise AvatarkitError(
                f"PCM16 audio must come in whole samples of {channels} channel(s) "
                f"({2 * channels} bytes); got {len(raw)} bytes"
            )
        x = np.frombuffer(raw, "<i2").astype(np.float64) / 32768.0
    else:
        arr = np.asarray(pcm)
        if arr.dtype.kind == "i":
            x = arr.astype(np.float64).reshape(-1) / 32768.0
        elif arr.dtype.kind == "f":
            x = arr.astype(np.float64).reshape(-1)
        else:
            raise AvatarkitError(f"audio samples must be int16 or float, not {arr.dtype}")
        if x.size % channels:
            raise AvatarkitError(f"{x.size} samples do not split into {channels} channels")
    if not np.all(np.isfinite(x)):
        raise AvatarkitError("audio samples contain NaN or infinity")
    if channels > 1:
        x = x.reshape(-1, channels).mean(axis=1)
    return x


def check_format(sample_rate: int, channels: int) -> None:
    """Raise an actionable error for a rate/channel layout the listener cannot use."""
    if not isinstance(sample_rate, int | np.integer) or not MIN_RATE <= sample_rate <= 192000:
        raise AvatarkitError(
            f"sample rate {sample_rate!r} Hz is not supported; use {MIN_RATE}-192000 Hz"
        )
    if not isinstance(channels, int | np.integer) or not 1 <= channels <= MAX_CHANNELS:
        raise AvatarkitError(f"channels must be 1-{MAX_CHANNELS}, got {channels!r}")


class ToListenerRate:
    """Chunks at `sample_rate` x `channels` -> mono 16 kHz float, chunking-independent."""

    def __init__(self, sample_rate: int, channels: int = 1) -> None:
        check_format(sample_rate, channels)
        self.sample_rate, self.channels = int(sample_rate), int(channels)
        self._resampler = StreamResampler(self.sample_rate, RATE)

    def push(self, pcm: bytes | np.ndarray) -> np.ndarray:
        """Feed a chunk; returns the 16 kHz samples that became final."""
        return self._resampler.push(as_mono_float(pcm, self.channels))

    def finish(self) -> np.ndarray:
        """End of input: the resampler's tail."""
        return self._resampler.finish()


def resample(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """A whole mono signal -> 16 kHz float (the same samples the streaming path produces)."""
    conv = ToListenerRate(sample_rate)
    x = np.asarray(samples)
    return np.concatenate([conv.push(x), conv.finish()])


def load_speech(path: str | Path) -> np.ndarray:
    """Any audio file (any rate, mono or stereo) -> 16 kHz mono float samples."""
    audio = read_audio(path)
    if audio.sample_rate < MIN_RATE:
        raise AvatarkitError(
            f"could not use audio {Path(path).name}: {audio.sample_rate} Hz is below the "
            f"{MIN_RATE} Hz the listener needs"
        )
    return resample(audio.samples, audio.sample_rate)
