"""Helpers for the renderer tests: measurements on decoded frames of real preview MP4s.
(The example avatar itself is the session fixture `hero` / `hero_dir` of tests/conftest.py.)
"""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import imageio_ffmpeg
import numpy as np

from avatarkit.face import regions
from avatarkit.render.decode import read_video

ROOT = Path(__file__).resolve().parent.parent
HERO = ROOT / "examples" / "hero.jpg"
#: A sentence with closures (b, m, p), lip-teeth (f, v), rounding and wide-open vowels.
SENTENCE = "Bob bought five thin maps, and we all sang a song about the sea."


def decode_video(path: Path) -> np.ndarray:
    """(frames, h, w, 3) RGB of an MP4 (BT.709 decode, as the renderer reads idle.mp4)."""
    return read_video(path)


def decode_audio(path: Path, rate: int = 22050) -> np.ndarray:
    """The MP4's audio track as mono float samples in -1..1 at `rate`."""
    proc = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error",
                           "-i", str(path), "-vn", "-ac", "1", "-ar", str(rate), "-f", "s16le",
                           "-"], capture_output=True, check=True)
    return np.frombuffer(proc.stdout, "<i2").astype(np.float64) / 32768.0


def probe(path: Path) -> str:
    """ffmpeg's description of the file's streams."""
    return subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
                          capture_output=True, text=True).stderr


def lip_openings(points: np.ndarray) -> np.ndarray:
    """Inner lip opening per frame from (frames, 478, 2) landmarks."""
    return np.array([regions.inner_lip_opening(p) for p in points])


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    """Float samples in -1..1 as a 16-bit mono WAV."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def audio_onset_s(samples: np.ndarray, rate: int, threshold: float = 0.05) -> float:
    """Time of the first 5 ms window whose RMS exceeds `threshold`."""
    win = max(1, rate // 200)
    n = len(samples) // win
    rms = np.sqrt(np.mean(samples[:n * win].reshape(n, win) ** 2, axis=1))
    loud = np.flatnonzero(rms > threshold)
    assert len(loud), "no sound in the audio"
    first = loud[0] * win
    # refine to the first sample above threshold inside the window
    above = np.flatnonzero(np.abs(samples[first:first + win]) > threshold)
    return (first + (above[0] if len(above) else 0)) / rate
