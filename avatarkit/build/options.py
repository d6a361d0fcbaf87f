"""Build settings as plain dataclasses: the CLI, the server and tests fill the same fields.

Every field that changes the output enters the build hash (`BuildOptions.hash_settings`), so
an avatar is rebuilt exactly when its photo or one of these settings changed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from avatarkit.errors import AvatarkitError
from avatarkit.face.photo import DEFAULT_MAX_SIDE, MIN_MAX_SIDE
from avatarkit.idle.options import IdleOptions


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
    """Idle-loop settings (`avatarkit.idle.options.IdleOptions`, owned by the idle stage)."""

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

