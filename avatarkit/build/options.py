"""Build settings as plain dataclasses: the CLI, the server and tests fill the same fields.

Every field that changes the output enters the build hash (`BuildOptions.hash_settings`), so
an avatar is rebuilt exactly when its photo or one of these settings changed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from avatarkit.errors import AvatarkitError
from avatarkit.face.photo import DEFAULT_MAX_SIDE, MIN_MAX_SIDE


@dataclass(frozen=True)
class IdleOptions:
    """The idle loop (issue 3): how long, how fast, how much it moves."""

    seconds: float = 4.0
    """Loop length in seconds, 3 to 5: long enough not to feel repetitive, short to download."""
    fps: int = 25
    """Frames per second of idle.mp4, 24 to 30."""
    blinks: int = 1
    """Eye blinks per loop (0 to 4); one looks natural for a 4 s loop."""
    motion: float = 1.0
    """Scale of head motion, 0 to 2 (0 = still image that only blinks, 1 = about +-1.5 deg)."""
    seed: int = 0
    """Random seed for the motion curves and blink timing: same seed, identical frames."""

    def __post_init__(self) -> None:
        _check_range("--seconds", self.seconds, 3.0, 5.0)
        _check_range("--fps", self.fps, 24, 30)
        _check_range("--blinks", self.blinks, 0, 4)
        _check_range("--motion", self.motion, 0.0, 2.0)


@dataclass(frozen=True)
class BuildOptions:
    """How `avatarkit build` turns one photo into an avatar folder."""

    max_side: int = DEFAULT_MAX_SIDE
    """Photos whose longer side exceeds this are downscaled to it before anything else."""
    face: int | None = None
    """Which face to use when the photo shows several, 0 = largest. None: the largest, with a
    warning when there is more than one face."""
    force: bool = False
    """Rebuild even when the folder's manifest says the same photo and settings made it."""
    idle: IdleOptions = field(default_factory=IdleOptions)
    """Idle-loop settings (see `IdleOptions`)."""

    def __post_init__(self) -> None:
        if self.max_side < MIN_MAX_SIDE:
            raise AvatarkitError(
                f"--max-side must be at least {MIN_MAX_SIDE} (got {self.max_side})")
        if self.face is not None and self.face < 0:
            raise AvatarkitError(f"--face must be 0 or more (got {self.face}); 0 is the largest")

    def hash_settings(self) -> dict[str, Any]:
        """The settings that change the output (not `force`), for the build hash."""
        settings = asdict(self)
        settings.pop("force")
        settings["face"] = self.face or 0  # no choice and face 0 give the same avatar
        return settings


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise AvatarkitError(f"{name} must be between {low:g} and {high:g} (got {value:g})")
