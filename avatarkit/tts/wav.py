"""Write PCM16 mono audio as a WAV file (stdlib `wave`, errors wrapped with context).

The standard library covers PCM16 WAV: soundfile (libsndfile) would add a native library
and was ~2.7x slower writing 5 s of speech (`benchmarks/libraries.py`)."""

from __future__ import annotations

import wave
from pathlib import Path

from avatarkit.errors import AvatarkitError


def write_wav(path: str | Path, pcm: bytes, sample_rate: int) -> Path:
    """Write little-endian 16-bit mono samples to `path`; return the path."""
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        with wave.open(str(p), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(sample_rate)
            w.writeframes(pcm)
    except OSError as exc:
        raise AvatarkitError(f"could not write audio to {p}: {exc.strerror or exc}") from exc
    return p
