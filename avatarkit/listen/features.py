"""Acoustic features of the lips' state: log-mel band levels and the total level per 10 ms
frame, the input of the lip evidence (lips.py) and the pause finder (pauses.py).

Everything is local in time (no running normalisation), so a stream cut into any chunks gets
exactly the features of the whole signal; lips.py judges each frame's level against the
frames around it, so a quiet recording reads like a loud one.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from avatarkit.listen.pcm import RATE

HOP = 160  # 10 ms
WINDOW = 400  # 25 ms
N_FFT = 512
N_BANDS = 24
FMIN, FMAX = 100.0, 7000.0
#: Level floor relative to full scale, dB (digital silence is not -inf).
FLOOR_DB = -90.0


@lru_cache(maxsize=1)
def _band_edges_hz() -> np.ndarray:
    """N_BANDS + 2 frequencies evenly spaced in mel from FMIN to FMAX: band i spans edges
    i .. i + 2 and peaks at edge i + 1."""
    def hz_to_mel(f: float) -> float:
        return 2595.0 * np.log10(1.0 + f / 700.0)

    mels = np.linspace(hz_to_mel(FMIN), hz_to_mel(FMAX), N_BANDS + 2)
    return 700.0 * (10 ** (mels / 2595.0) - 1.0)


@lru_cache(maxsize=1)
def _mel_matrix() -> np.ndarray:
    hz = _band_edges_hz()
    bins = np.fft.rfftfreq(N_FFT, 1.0 / RATE)
    m = np.zeros((N_BANDS, len(bins)))
    for i in range(N_BANDS):
        lo, mid, hi = hz[i], hz[i + 1], hz[i + 2]
        up = (bins - lo) / (mid - lo)
        down = (hi - bins) / (hi - mid)
        m[i] = np.clip(np.minimum(up, down), 0.0, None)
    return m


def band_centres_hz() -> np.ndarray:
    """Centre frequency of each of the N_BANDS mel bands, Hz."""
    return _band_edges_hz()[1:-1].copy()


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    return np.hanning(WINDOW + 2)[1:-1]


def frame_count(n_samples: int) -> int:
    """Frames whose 25 ms window lies inside `n_samples` (frame i starts at sample 160 i)."""
    return max(0, (n_samples - WINDOW) // HOP + 1)


def band_levels(samples: np.ndarray) -> np.ndarray:
    """(frames, N_BANDS + 1): log-mel band levels in dB and the frame's total level in dB."""
    n = frame_count(len(samples))
    if n == 0:
        return np.zeros((0, N_BANDS + 1))
    # frames as a strided view and the arithmetic in place: the same numbers with fewer
    # copies (a whole recording is ~2.5k frames per 25 s)
    frames = np.lib.stride_tricks.sliding_window_view(samples, WINDOW)[: (n - 1) * HOP + 1: HOP]
    x = frames * _window()
    x -= x.mean(axis=1, keepdims=True)
    power = np.abs(np.fft.rfft(x, N_FFT))
    power **= 2
    bands = power @ _mel_matrix().T
    out = np.empty((n, N_BANDS + 1))
    out[:, :N_BANDS] = bands
    out[:, N_BANDS] = bands.sum(axis=1)
    out += 10 ** (FLOOR_DB / 10)
    np.log10(out, out=out)
    out *= 10
    return out

