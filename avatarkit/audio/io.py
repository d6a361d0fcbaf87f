"""Speech audio as mono PCM16 samples: read from a file, padded for the video's lead-in/tail.

WAV files with integer samples are read with the standard library; anything else (float
WAV, MP3, FLAC, ...) is decoded by the ffmpeg that imageio-ffmpeg ships.
"""

from __future__ import annotations

import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatarkit.errors import AvatarkitError

DECODE_RATE = 48000  # the rate non-WAV input is decoded at


@dataclass(frozen=True)
class Audio:
    """Mono 16-bit samples and their rate."""

    samples: np.ndarray  # (n,) int16
    sample_rate: int

    @classmethod
    def from_pcm(cls, pcm: bytes, sample_rate: int) -> Audio:
        """From little-endian PCM16 bytes (what the TTS providers produce)."""
        return cls(np.frombuffer(pcm, "<i2").astype(np.int16), int(sample_rate))

    @property
    def duration_ms(self) -> float:
        return len(self.samples) / self.sample_rate * 1000.0

    def padded(self, before_s: float, total_s: float) -> Audio:
        """Silence before (the lead-in) and after, to exactly `total_s` (cut if longer)."""
        before = round(before_s * self.sample_rate)
        total = round(total_s * self.sample_rate)
        out = np.zeros(total, np.int16)
        body = self.samples[:max(0, total - before)]
        out[before:before + len(body)] = body
        return Audio(out, self.sample_rate)

    def write_wav(self, path: Path) -> None:
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(self.sample_rate)
            w.writeframes(self.samples.astype("<i2").tobytes())


#: Data sizes from here up are what WAV writers put in a header before the length is known
#: (a stream to a pipe: 0xFFFFFFFF, 0x7FFFFFFF, 0x7FFFF000 are all in use), not a promise.
_UNKNOWN_WAV_SIZE = 0x7FFFF000


def _read_wav(path: Path) -> Audio:
    with wave.open(str(path), "rb") as w:
        channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
        promised = w.getnframes()
        raw = w.readframes(promised)
    if not promised and path.stat().st_size > 64:
        raise wave.Error("a data size of 0 (some streaming writers): ffmpeg reads to the end")
    frame = channels * width
    held = len(raw) // frame
    if held < promised and promised * frame < _UNKNOWN_WAV_SIZE - frame:
        want, got = f"{promised / rate:.1f} s", f"{held / rate:.1f} s"
        if want == got:
            want, got = f"{promised} samples", f"{held}"
        raise AvatarkitError(f"could not read audio {path}: the file is damaged or incomplete "
                             f"(its header promises {want}, it holds {got})")
    raw = raw[:len(raw) - len(raw) % frame]  # a stream may stop inside its last frame
    if width == 2 and channels == 1:  # the common case: the samples as they are
        return Audio(np.frombuffer(raw, "<i2").astype(np.int16), rate)
    if width == 1:
        x = (np.frombuffer(raw, np.uint8).astype(np.int32) - 128) << 8
    elif width == 2:
        x = np.frombuffer(raw, "<i2").astype(np.int32)
    elif width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        x = ((b[:, 0] << 8) | (b[:, 1] << 16) | (b[:, 2] << 24)) >> 16
    elif width == 4:
        x = np.frombuffer(raw, "<i4").astype(np.int64) >> 16
    else:
        raise wave.Error(f"{8 * width}-bit samples")
    x = x.reshape(-1, channels).mean(axis=1)
    return Audio(np.clip(np.round(x), -32768, 32767).astype(np.int16), rate)


def _decode_ffmpeg(path: Path) -> Audio:
    import imageio_ffmpeg  # only for files that are not WAV: a WAV reader starts faster

    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", str(path),
           "-vn", "-ac", "1", "-ar", str(DECODE_RATE), "-f", "s16le", "-"]
    try:
        proc = subprocess.run(cmd, capture_output=True, check=False)
    except OSError as exc:
        raise AvatarkitError(f"could not start ffmpeg to read {path.name}: {exc}") from exc
    if proc.returncode != 0:
        detail = proc.stderr.decode(errors="replace").strip().splitlines()
        raise AvatarkitError(f"could not read audio {path}: not an audio file ffmpeg can decode "
                             f"({detail[-1] if detail else 'no detail'})")
    return Audio.from_pcm(proc.stdout, DECODE_RATE)


def read_audio(path: str | Path) -> Audio:
    """Mono PCM16 of an audio file; AvatarkitError names the file when it cannot be read."""
    path = Path(path)
    if not path.is_file():
        what = "a folder, not an audio file" if path.is_dir() else "no such file"
        raise AvatarkitError(f"could not read audio {path}: {what}")
    if path.stat().st_size == 0:
        raise AvatarkitError(f"could not read audio {path}: the file is empty")
    try:
        audio = _read_wav(path)
    except (wave.Error, EOFError, ValueError, RuntimeError):
        # not a PCM WAV, or a damaged one (the stdlib raises RuntimeError for a chunk that
        # claims more bytes than the file has): let ffmpeg try, or say why it cannot
        audio = _decode_ffmpeg(path)
    except OSError as exc:
        raise AvatarkitError(f"could not read audio {path}: {exc.strerror or exc}") from exc
    if len(audio.samples) == 0 or audio.sample_rate <= 0:
        raise AvatarkitError(f"could not read audio {path}: it holds no sound")
    return audio
