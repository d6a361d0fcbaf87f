"""Write RGB frames plus mono speech to an MP4 (H.264 yuv420p + AAC, +faststart), atomically.

Independent of how the frames are made. Frames are piped raw into the ffmpeg that
imageio-ffmpeg ships; the audio goes in as a temporary WAV next to the output. The file is
written under a hidden temporary name and renamed into place only when ffmpeg succeeded, so
a failed or interrupted render never leaves a half-written MP4 at the target.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import imageio_ffmpeg
import numpy as np

from avatarkit.errors import AvatarkitError
from avatarkit.idle.encode import COLOR_TAGS, even_size, pad_even
from avatarkit.render.audio import Audio


@dataclass(frozen=True)
class VideoOptions:
    """Encoder settings of the preview MP4."""

    #: x264 constant rate factor: 18 is visually lossless for these faces, lower is larger.
    crf: int = 18
    #: x264 speed preset; `veryfast` keeps encoding a small share of the render time.
    preset: str = "veryfast"
    #: AAC bit rate of the speech track.
    audio_bitrate: str = "128k"


def _fps_arg(fps: float) -> str:
    return f"{fps:g}" if float(fps).is_integer() else f"{fps:.6f}"


class VideoWriter:
    """Streams RGB frames into `path`; `close()` (or leaving the `with` block) finishes it."""

    def __init__(self, path: str | Path, size: tuple[int, int], fps: float,
                 audio: Audio | None = None, options: VideoOptions | None = None) -> None:
        opts = options or VideoOptions()
        self.path = Path(path)
        self.size = even_size(*size)
        self.frames = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AvatarkitError(f"could not write {self.path}: {exc.strerror or exc}") from exc
        # A hidden name in the same folder, so the final rename is atomic.
        tmp = self.path.parent / f".{self.path.stem}.{os.getpid()}.{secrets.token_hex(4)}.part.mp4"
        self._tmp = Path(tmp)
        self._wav: Path | None = None
        w, h = self.size
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error",
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
               "-framerate", _fps_arg(fps), "-i", "-"]
        if audio is not None:
            self._wav = self._tmp.with_suffix(".wav")
            audio.write_wav(self._wav)
            cmd += ["-i", str(self._wav), "-map", "0:v", "-map", "1:a",
                    "-c:a", "aac", "-b:a", opts.audio_bitrate]
        cmd += ["-vf", "scale=out_color_matrix=bt709:out_range=tv,format=yuv420p",
                "-c:v", "libx264", "-preset", opts.preset, "-crf", str(opts.crf),
                "-pix_fmt", "yuv420p", *COLOR_TAGS, "-movflags", "+faststart",
                "-f", "mp4", str(self._tmp)]
        try:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as exc:
            self._cleanup()
            raise AvatarkitError(f"could not start ffmpeg to write {self.path.name}: "
                                 f"{exc}") from exc

    def write(self, rgb: np.ndarray) -> None:
        """Append one RGB uint8 frame of the writer's size (odd sizes are padded)."""
        frame = pad_even(rgb)
        if (frame.shape[1], frame.shape[0]) != self.size:
            raise ValueError(f"frame is {frame.shape[1]}x{frame.shape[0]}, expected {self.size}")
        try:
            self._proc.stdin.write(np.ascontiguousarray(frame, dtype=np.uint8).data)
        except BrokenPipeError:
            self.close()  # raises with ffmpeg's own message
        self.frames += 1

    def close(self) -> Path:
        """Finish the file and move it into place; raise with ffmpeg's message on failure."""
        try:
            if self._proc.stdin and not self._proc.stdin.closed:
                try:
                    self._proc.stdin.close()
                except BrokenPipeError:
                    pass
            err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
            if self._proc.wait() != 0:
                raise AvatarkitError(f"ffmpeg could not encode {self.path.name}: "
                                     f"{err.strip()[-300:]}")
            try:
                os.replace(self._tmp, self.path)
            except OSError as exc:
                raise AvatarkitError(f"could not write {self.path}: {exc.strerror or exc}") from exc
        finally:
            self._cleanup()
        return self.path

    def abort(self) -> None:
        """Stop ffmpeg and remove the partial file (the target is left as it was)."""
        self._proc.kill()
        self._proc.wait()
        if self._proc.stderr:
            self._proc.stderr.close()
        self._cleanup()

    def _cleanup(self) -> None:
        for p in (self._tmp, self._wav):
            if p is not None:
                p.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
