"""The settings of the idle loop, with their defaults and allowed ranges."""

from __future__ import annotations

from dataclasses import dataclass

from avatarkit.errors import AvatarkitError

SECONDS_RANGE = (3.0, 5.0)
FPS_RANGE = (24, 30)
MOTION_RANGE = (0.0, 2.0)
MIN_BLINK_SPACING_S = 1.0  # blinks closer than this look like a twitch


@dataclass(frozen=True)
class IdleOptions:
    """How the idle loop moves and how it is encoded."""

    seconds: float = 4.0
    """Loop length in seconds (3-5): long enough not to feel repetitive, short to download."""
    fps: int = 25
    """Frames per second (24-30); the mouth overlay and the track use the same rate."""
    blinks: int = 1
    """Blinks per loop (0 up to one per second); people blink every 3-5 s at rest."""
    motion: float = 1.0
    """Scale of head, breathing and parallax motion (0-2); 0 is a still photo that only blinks."""
    seed: int = 0
    """Random seed for the motion phases and blink times: same photo + options = same frames."""
    crf: int = 18
    """x264 constant rate factor: 18 is visually lossless, so the seam and stills survive."""
    preset: str = "veryfast"
    """x264 preset: encode speed versus file size; `veryfast` keeps the build inside budget."""

    @property
    def frames(self) -> int:
        """Number of frames in one loop."""
        return max(1, round(self.seconds * self.fps))

    def validate(self) -> None:
        """Refuse settings outside the supported ranges, saying which range applies."""
        lo, hi = SECONDS_RANGE
        if not lo <= self.seconds <= hi:
            raise AvatarkitError(
                f"--seconds must be between {lo:g} and {hi:g}, got {self.seconds:g}"
            )
        lo, hi = FPS_RANGE
        if not lo <= self.fps <= hi:
            raise AvatarkitError(f"--fps must be between {lo} and {hi}, got {self.fps}")
        lo, hi = MOTION_RANGE
        if not lo <= self.motion <= hi:
            raise AvatarkitError(f"--motion must be between {lo:g} and {hi:g}, got {self.motion:g}")
        most = int(self.seconds // MIN_BLINK_SPACING_S)
        if not 0 <= self.blinks <= most:
            raise AvatarkitError(
                f"--blinks must be between 0 and {most} for a {self.seconds:g} s loop, "
                f"got {self.blinks}"
            )
        if not 0 <= self.crf <= 51:
            raise AvatarkitError(f"crf must be between 0 and 51, got {self.crf}")
