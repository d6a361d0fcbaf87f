"""Write RGB frames plus mono speech to an MP4 (H.264 yuv420p + AAC, +faststart), atomically.

Independent of how the frames are made. Frames are piped raw into the ffmpeg that
imageio-ffmpeg ships; the audio goes in as a temporary WAV next to the output. The file is
written under a hidden temporary name and renamed into place only when ffmpeg succeeded, so
a failed or interrupted render never leaves a half-written MP4 at the target.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatarkit.audio.io import Audio
from avatarkit.errors import AvatarkitError
from avatarkit.idle.encode import FramePipe, PipeWriter, h264_args


@dataclass(frozen=True)
class VideoOptions:
    """Encoder settings of the preview MP4."""

    #: x264 constant rate factor: 18 is visually lossless for these faces, lower is larger.
    crf: int = 18
    #: x264 speed preset; `veryfast` keeps encoding a small share of the render time.
    preset: str = "veryfast"
    #: AAC bit rate of the speech track.
    audio_bitrate: str = "128k"


class VideoWriter(PipeWriter):
    """Streams RGB frames into `path`; `close()` (or leaving the `with` block) finishes it."""

    def __init__(self, path: str | Path, size: tuple[int, int], fps: float,
                 audio: Audio | None = None, options: VideoOptions | None = None) -> None:
        opts = options or VideoOptions()
        self.path = Path(path)
        self.frames = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AvatarkitError(f"could not write {self.path}: {exc.strerror or exc}") from exc
        # A hidden name in the same folder, so the final rename is atomic.
        tmp = self.path.parent / f".{self.path.stem}.{os.getpid()}.{secrets.token_hex(4)}.part.mp4"
        self._tmp = Path(tmp)
        self._wav: Path | None = None
        args: list[str] = []
        if audio is not None:
            self._wav = self._tmp.with_suffix(".wav")
            audio.write_wav(self._wav)
            args += ["-i", str(self._wav), "-map", "0:v", "-map", "1:a",
                     "-c:a", "aac", "-b:a", opts.audio_bitrate]
        args += [*h264_args(preset=opts.preset, crf=opts.crf), "-f", "mp4", str(self._tmp)]
        try:
            self._pipe = FramePipe(self.path.name, size, fps, args)
        except AvatarkitError:
            self._cleanup()
            raise
        self.size = self._pipe.size

    def write(self, rgb: np.ndarray) -> None:
        """Append one RGB uint8 frame of the writer's size (odd sizes are padded)."""
        super().write(rgb)
        self.frames += 1

    def close(self) -> Path:
        """Finish the file and move it into place; raise with ffmpeg's message on failure."""
        try:
            self._pipe.finish()
            try:
                os.replace(self._tmp, self.path)
            except OSError as exc:
                raise AvatarkitError(f"could not write {self.path}: {exc.strerror or exc}") from exc
        finally:
            self._cleanup()
        return self.path

    def abort(self) -> None:
        """Stop ffmpeg and remove the partial file (the target is left as it was)."""
        super().abort()
        self._cleanup()

    def _cleanup(self) -> None:
        for p in (self._tmp, self._wav):
            if p is not None:
                p.unlink(missing_ok=True)
