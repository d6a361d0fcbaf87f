"""H.264 in and out through the static ffmpeg that imageio-ffmpeg ships (works offline).

Frames are piped raw (no temporary images), converted to yuv420p with the BT.709 matrix and
tagged as such, so browsers and our own decoder agree on the colours; `+faststart` lets a
client start playing before the whole file has arrived.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Self

import imageio_ffmpeg
import numpy as np

from avatarkit.errors import AvatarkitError

COLOR_TAGS = ["-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
              "-color_range", "tv"]


def even_size(width: int, height: int) -> tuple[int, int]:
    """The frame size H.264 4:2:0 accepts: both sides rounded up to even."""
    return width + width % 2, height + height % 2


def pad_even(rgb: np.ndarray) -> np.ndarray:
    """Pad a frame on the right/bottom by edge pixels to even sides (coordinates unchanged)."""
    h, w = rgb.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return rgb
    return np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


SEAM_QP = 4  # quantiser of the keyframe and of the frames that run into it
SEAM_SECONDS = 0.2  # how long before the seam the last frames are refined


def seam_params(frames: int, fps: int) -> str:
    """x264 settings that make the loop seamless after compression.

    The keyframe's coding noise and the noise a P-frame chain has drifted into by the loop's
    end are unrelated, so a plain encode pops at the seam even when the source loops
    exactly. Encoding the keyframe and the last few frames at a low quantiser makes both
    ends converge on the source, so the seam differs by the motion of one frame (the curves
    put it where the head moves slowly) and not by codec noise.
    Adaptive quantisation is off so flat skin and walls get the same care as edges."""
    tail = max(2, round(SEAM_SECONDS * fps))
    last = frames - 1
    zones = f"0,0,q={SEAM_QP}"
    if last > tail:
        zones += f"/{last - tail + 1},{last},q={SEAM_QP}"
    return f"aq-mode=0:zones={zones}"


def h264_args(*, preset: str, crf: int) -> list[str]:
    """ffmpeg output arguments every avatarkit MP4 shares: BT.709 yuv420p H.264, tagged."""
    return ["-vf", "scale=out_color_matrix=bt709:out_range=tv,format=yuv420p",
            "-c:v", "libx264", "-preset", preset, "-crf", str(crf),
            "-pix_fmt", "yuv420p", *COLOR_TAGS, "-movflags", "+faststart"]


class FramePipe:
    """RGB frames piped raw into ffmpeg; `args` (after the frames' input) say what it makes.

    Both MP4 writers (the idle loop, the preview) are this pipe plus their own arguments,
    so starting ffmpeg, size checks and turning its failures into one message live here.
    """

    def __init__(self, name: str, size: tuple[int, int], fps: float, args: list[str]) -> None:
        self.name = name
        self.size = even_size(*size)
        w, h = self.size
        rate = f"{fps:g}" if float(fps).is_integer() else f"{fps:.6f}"
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error",
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-framerate", rate,
               "-i", "-", *args]
        try:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as exc:
            raise AvatarkitError(f"could not start ffmpeg to write {name}: {exc}") from exc

    def write(self, rgb: np.ndarray) -> None:
        """Append one RGB uint8 frame of the pipe's size (odd sizes are padded)."""
        frame = pad_even(rgb)
        if (frame.shape[1], frame.shape[0]) != self.size:
            raise ValueError(f"frame is {frame.shape[1]}x{frame.shape[0]}, expected {self.size}")
        try:
            self._proc.stdin.write(np.ascontiguousarray(frame, dtype=np.uint8).data)
        except BrokenPipeError:
            self.finish()  # raises with ffmpeg's own message

    def finish(self) -> None:
        """Let ffmpeg finish the file; raise with its message if it failed."""
        if self._proc.stdin and not self._proc.stdin.closed:
            try:
                self._proc.stdin.close()
            except BrokenPipeError:
                pass
        err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
        if self._proc.wait() != 0:
            raise AvatarkitError(f"ffmpeg could not encode {self.name}: {err.strip()[-300:]}")

    def kill(self) -> None:
        """Stop ffmpeg at once (the caller removes what it wrote)."""
        self._proc.kill()
        self._proc.wait()
        if self._proc.stderr:
            self._proc.stderr.close()


class PipeWriter:
    """Frames into ffmpeg through a `FramePipe`: `close()` (or leaving the `with` block)
    finishes the file, an exception in the block aborts it."""

    _pipe: FramePipe

    def write(self, rgb: np.ndarray) -> None:
        """Append one RGB uint8 frame of the writer's size (odd sizes are padded)."""
        self._pipe.write(rgb)

    def close(self) -> object:
        """Finish the file; raise with ffmpeg's message if it failed."""
        self._pipe.finish()
        return None

    def abort(self) -> None:
        """Stop ffmpeg at once."""
        self._pipe.kill()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class H264Writer(PipeWriter):
    """Streams RGB frames into an MP4: one keyframe at frame 0, yuv420p, faststart."""

    def __init__(self, path: Path, size: tuple[int, int], fps: int, *, frames: int,
                 crf: int = 18, preset: str = "veryfast") -> None:
        self.path = Path(path)
        gop = str(max(1, frames))
        self._pipe = FramePipe(self.path.name, size, fps, [
            "-an", *h264_args(preset=preset, crf=crf),
            # One GOP for the whole loop: the only keyframe is frame 0, where playback restarts.
            "-g", gop, "-keyint_min", gop, "-sc_threshold", "0",
            "-x264-params", seam_params(frames, fps),
            "-f", "mp4", str(self.path),
        ])
        self.size = self._pipe.size


#: Our MP4s are BT.709 limited range; ffmpeg's default YUV->RGB conversion truncates, which
#: darkens every decode by about one level (a preview re-encoded from such frames drifts from
#: the idle loop beside it). The tagged matrix with accurate rounding comes back unbiased.
DECODE_FILTER = "scale=in_color_matrix=bt709:in_range=tv:flags=accurate_rnd+full_chroma_int"


def read_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Decode a video to RGB uint8 frames (h, w, 3), one at a time (the renderer's input)."""
    path = Path(path)
    if not path.is_file():
        raise AvatarkitError(f"could not read {path}: no such file")
    try:
        gen = imageio_ffmpeg.read_frames(
            str(path), pix_fmt="rgb24", output_params=["-vf", DECODE_FILTER]
        )
        meta = next(gen)
        w, h = meta["size"]
    except (OSError, RuntimeError, StopIteration, KeyError) as exc:
        raise AvatarkitError(f"could not read {path}: {_last_line(exc)}") from exc
    try:
        for buf in gen:
            if len(buf) != w * h * 3:
                raise AvatarkitError(f"could not read {path}: the video is truncated")
            yield np.frombuffer(buf, np.uint8).reshape(h, w, 3)
    except (OSError, RuntimeError) as exc:
        raise AvatarkitError(f"could not read {path}: {_last_line(exc)}") from exc
    finally:
        gen.close()


def _last_line(exc: BaseException) -> str:
    """ffmpeg errors arrive as many lines of log; the last one says what went wrong."""
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def video_info(path: str | Path) -> dict:
    """Codec facts of an MP4 as ffmpeg reports them (for checks): the reader's metadata."""
    gen = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    meta = next(gen)
    gen.close()
    return meta
