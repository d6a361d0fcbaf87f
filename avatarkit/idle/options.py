"""The settings of the idle loop, with their defaults and allowed ranges."""

from __future__ import annotations

from dataclasses import dataclass

from avatarkit.errors import AvatarkitError

SECONDS_RANGE = (3.0, 10.0)
FPS_RANGE = (24, 30)
MOTION_RANGE = (0.0, 2.0)
MAX_BLINKS = 8
MIN_BLINK_SPACING_S = 1.0  # blinks closer than this look like a twitch


@dataclass(frozen=True)
class IdleOptions:
    """How the idle loop moves and how it is encoded (checked when constructed)."""

    seconds: float = 4.0
    """Loop length in seconds, 3 to 10: 4 is long enough not to feel repetitive and quick to
    download; clients that can afford it take a longer, less repetitive loop."""
    fps: int = 25
    """Frames per second of idle.mp4, 24 to 30; the track has one transform per frame."""
    blinks: int | None = None
    """Eye blinks per loop, 0 to 8 and at most one per second; None = as people blink at
    rest (about one every 2.8 s at irregular times: one or two in a 4 s loop)."""
    motion: float = 1.0
    """Scale of head, breathing and parallax motion, 0 to 2 (0 = a still photo that only
    blinks, 1 = about +-1.4 degrees of head roll, 2 = lively)."""
    seed: int = 0
    """Random seed for the motion phases and blink times: same photo + options = same frames."""
    crf: int = 18
    """x264 constant rate factor: 18 is visually lossless, so stills stay still."""
    preset: str = "veryfast"
    """x264 preset: encode speed against file size; `veryfast` keeps the build in budget."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Refuse settings outside the supported ranges, naming the option and the range."""
        _check_range("--seconds", self.seconds, *SECONDS_RANGE)
        _check_range("--fps", self.fps, *FPS_RANGE)
        _check_range("--motion", self.motion, *MOTION_RANGE)
        if self.blinks is not None:
            _check_range("--blinks", self.blinks, 0,
                         min(MAX_BLINKS, int(self.seconds // MIN_BLINK_SPACING_S)))
        _check_range("crf", self.crf, 0, 51)

    @property
    def frames(self) -> int:
        """Number of frames in one loop."""
        return max(1, round(self.seconds * self.fps))


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise AvatarkitError(f"{name} must be between {low:g} and {high:g} (got {value:g})")
