"""An avatar folder as the ONNX variant needs it: idle frames, track, mask and face box."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from avatarkit.errors import AvatarkitError
from avatarkit.idle import IDLE_MP4, TRACK_JSON, Track, read_frames, read_track
from avatarkit.roi.faces import FaceBox, face_box
from avatarkit.roi.paste import PasteGeometry, paste_geometry

MASK_PNG = "mask_mouth.png"
AVATAR_JSON = "avatar.json"


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


def load_avatar(folder: str | Path) -> RoiAvatar:
    """Read what variant C uses from an avatar folder made by `avatarkit build`."""
    folder = Path(folder)
    manifest = folder / AVATAR_JSON
    try:
        doc = json.loads(manifest.read_text())
        bbox = doc["face"]["bbox"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AvatarkitError(f"{folder} is not an avatar folder (could not read {AVATAR_JSON}: "
                             f"{exc}); run avatarkit build first") from exc
    for name in (IDLE_MP4, TRACK_JSON, MASK_PNG):
        if not (folder / name).is_file():
            raise AvatarkitError(f"{folder} has no {name}; rebuild it with avatarkit build")
    track = read_track(folder / TRACK_JSON)
    frames = list(read_frames(folder / IDLE_MP4))
    if not frames:
        raise AvatarkitError(f"{folder / IDLE_MP4} has no frames; rebuild the avatar")
    try:
        mask = np.asarray(Image.open(folder / MASK_PNG).convert("L"))
    except OSError as exc:
        raise AvatarkitError(f"could not read {folder / MASK_PNG}: {exc}") from exc
    roi = track.roi
    if mask.shape != (roi.h, roi.w):
        raise AvatarkitError(f"{MASK_PNG} is {mask.shape[1]}x{mask.shape[0]} but the ROI is "
                             f"{roi.w}x{roi.h}; rebuild the avatar")
    return RoiAvatar(folder, frames, track, mask, face_box(bbox))
