"""An avatar folder as the ONNX variant needs it: idle frames, track, mask and face box."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatarkit.errors import AvatarkitError
from avatarkit.idle import Track
from avatarkit.render.avatar import Avatar
from avatarkit.render.avatar import load_avatar as load_render_avatar
from avatarkit.roi.faces import FaceBox, face_box
from avatarkit.roi.paste import PasteGeometry, paste_geometry


@dataclass(frozen=True)
class RoiAvatar:
    """Decoded idle loop plus the geometry of its mouth (all in memory: loops are 3-5 s)."""

    folder: Path
    frames: Sequence[np.ndarray]  # RGB uint8 idle-loop frames (a list or a (n, h, w, 3) array)
    track: Track
    mask: np.ndarray  # (roi.h, roi.w) uint8
    box: FaceBox

    @property
    def fps(self) -> float:
        return self.track.fps

    def frame(self, i: int) -> np.ndarray:
        """Idle frame at output frame i (the loop repeats)."""
        return self.frames[i % len(self.frames)]

    def affine(self, i: int) -> np.ndarray:
        return self.track.transforms[i % self.track.frames]

    def geometry(self, size: int) -> PasteGeometry:
        return paste_geometry(self.track.roi, self.mask, self.box, size)


def roi_avatar(avatar: Avatar) -> RoiAvatar:
    """The renderer's avatar seen by the ONNX runner (same frames, track and mask)."""
    try:
        bbox = avatar.manifest["face"]["bbox"]
    except (KeyError, TypeError) as exc:
        raise AvatarkitError(f"{avatar.folder}: avatar.json has no face box - rebuild the "
                             "avatar with `avatarkit build`") from exc
    return RoiAvatar(avatar.folder, avatar.frames, avatar.track, avatar.mask, face_box(bbox))


def load_avatar(folder: str | Path) -> RoiAvatar:
    """Read what variant C uses from an avatar folder made by `avatarkit build`.

    The renderer's loader does the reading and checking, so both see one avatar the same way.
    """
    return roi_avatar(load_render_avatar(folder))
