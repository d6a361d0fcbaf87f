"""Small movements inside a still face that make it read as alive: gaze shifts and a faint
brow raise.

Both are local remaps of the photo inside a box around each eye or brow, like the blink,
and run before the head motion so the head warp carries them along:

- Gaze: the pixels between the lids slide sideways (and a little up or down) with a weight
  that is 1 over the iris and falls smoothly to 0 at the eye corners and at the lids, so the
  iris moves, the white of the eye stretches on one side and compresses on the other, and
  the corners, lids and lashes stay where they are.
- Brow: the skin from the lid crease up to above the brow rises with a weight that peaks on
  the brow and fades to nothing at the crease (which the blink owns) and on the forehead.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from avatarkit.face import regions
from avatarkit.face.landmarks import Face
from avatarkit.idle.blink import EyeLids

BROW_RAISE = 0.02  # brow rise at brow 1, in face heights (faint: a few pixels)
LID_FADE = 0.12  # gaze weight fades this far outside the lids, in eye widths


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


@dataclass(frozen=True)
class Patch:
    """A box of the photo and the unit displacement field that one feature applies in it."""

    x0: int
    y0: int
    x1: int
    y1: int
    dx: np.ndarray  # (y1 - y0, x1 - x0) float32 displacement per unit of horizontal motion
    dy: np.ndarray  # same, per unit of vertical motion


@dataclass(frozen=True)
class FaceParts:
    """Per-photo patches of the gaze and brow movements; `image` renders one frame's state."""

    eyes: list[Patch]
    brows: list[Patch]
    iris_radius: float  # pixels: gaze offsets are in iris radii
    brow_px: float  # pixels the brow rises at brow 1

    def image(self, rgb: np.ndarray, gaze: tuple[float, float], brow: float) -> np.ndarray:
        """The photo with the eyes looking `gaze` (iris radii) and the brows raised by `brow`."""
        gx, gy = gaze[0] * self.iris_radius, gaze[1] * self.iris_radius
        moves = []
        if abs(gx) > 0.02 or abs(gy) > 0.02:
            moves += [(p, gx, gy) for p in self.eyes]
        if brow * self.brow_px > 0.02:
            moves += [(p, 0.0, -brow * self.brow_px) for p in self.brows]
        if not moves:
            return rgb
        out = rgb.copy()
        for p, mx, my in moves:
            ys, xs = np.mgrid[p.y0:p.y1, p.x0:p.x1].astype(np.float32)
            # Backward map: the pixel that lands here came from against the motion.
            map_x = xs - mx * p.dx
            map_y = ys - my * p.dy
            out[p.y0:p.y1, p.x0:p.x1] = cv2.remap(rgb, map_x, map_y, cv2.INTER_LINEAR,
                                                  borderMode=cv2.BORDER_REPLICATE)
        return out


def _eye_patch(face: Face, lids: EyeLids, iris: tuple[int, ...],
               size: tuple[int, int]) -> tuple[Patch, float]:
    w, h = size
    p = face.points
    centre = p[iris[0]]
    radius = float(np.mean(np.linalg.norm(p[list(iris[1:])] - centre, axis=1)))
    width = float(lids.x1 - lids.x0) / 1.3  # the lid box is the eye widened by 15 % a side
    fade = LID_FADE * width
    y0 = max(0, int(np.floor(lids.upper.min() - fade)))
    y1 = min(h, int(np.ceil(lids.lower.max() + fade)) + 1)
    xs = np.arange(lids.x0, lids.x1, dtype=np.float64)
    ys = np.arange(y0, y1, dtype=np.float64)[:, None]
    # Across: 1 over the iris, falling to 0 at the lid box's ends (outside the corners).
    left, right = centre[0] - radius - lids.x0, lids.x1 - 1 - (centre[0] + radius)
    across = np.where(xs < centre[0] - radius,
                      _smoothstep((xs - lids.x0) / max(left, 1.0)),
                      np.where(xs > centre[0] + radius,
                               _smoothstep((lids.x1 - 1 - xs) / max(right, 1.0)), 1.0))
    upper, lower = lids.upper[None], lids.lower[None]
    # Sideways: 1 between the lids, fading just outside them.
    inside = _smoothstep(1.0 - np.maximum(upper - ys, ys - lower).clip(0) / fade)
    # Up/down: a bump between the lids, zero on them, so the lid lines never move.
    opening = np.maximum(lower - upper, 1.0)
    bump = np.where((ys > upper) & (ys < lower), np.sin(np.pi * (ys - upper) / opening), 0.0)
    dx = (across[None] * inside).astype(np.float32)
    # Keep the vertical map monotonic: never move more than a third of the opening.
    dy = (across[None] * bump * np.minimum(1.0, opening / (3.0 * radius + 1e-6)))
    return Patch(lids.x0, y0, lids.x1, y1, dx, dy.astype(np.float32)), radius


def _brow_patch(face: Face, brow: tuple[int, ...], lids: EyeLids, size: tuple[int, int],
                face_h: float) -> Patch:
    w, h = size
    pts = face.points[list(brow)]
    bw = float(np.ptp(pts[:, 0]))
    x0 = max(0, int(np.floor(pts[:, 0].min() - 0.25 * bw)))
    x1 = min(w, int(np.ceil(pts[:, 0].max() + 0.25 * bw)) + 1)
    brow_y = float(pts[:, 1].mean())
    # Below: fades to 0 at the lid crease, the top of the blink's stretched skin.
    crease = float(lids.top.min())
    bottom = max(crease, brow_y + 2.0)
    top = brow_y - 0.9 * max(bottom - brow_y, 0.12 * face_h)
    y0, y1 = max(0, int(np.floor(top))), min(h, int(np.ceil(bottom)) + 1)
    xs = np.arange(x0, x1, dtype=np.float64)
    ys = np.arange(y0, y1, dtype=np.float64)[:, None]
    down = np.where(ys >= brow_y, _smoothstep((bottom - ys) / max(bottom - brow_y, 1.0)), 1.0)
    up = np.where(ys < brow_y, _smoothstep((ys - top) / max(brow_y - top, 1.0)), 1.0)
    edge = 0.25 * bw
    across = _smoothstep(np.minimum(xs - x0, x1 - 1 - xs) / max(edge, 1.0))
    weight = (down * up * across[None]).astype(np.float32)
    return Patch(x0, y0, x1, y1, np.zeros_like(weight), weight)


def face_parts(face: Face, lids: list[EyeLids], size: tuple[int, int]) -> FaceParts:
    """The gaze and brow patches of a photo (lids from `blink.eye_lids`, same eye order)."""
    irises = (regions.IRIS_IMAGE_LEFT, regions.IRIS_IMAGE_RIGHT)
    brows = (regions.BROW_IMAGE_LEFT, regions.BROW_IMAGE_RIGHT)
    face_h = float(face.points[regions.CHIN, 1] - face.bbox[1])
    eyes, radii = [], []
    if len(face.points) >= 478:
        for eye_lids, iris in zip(lids, irises, strict=True):
            patch, radius = _eye_patch(face, eye_lids, iris, size)
            eyes.append(patch)
            radii.append(radius)
    brow_patches = [_brow_patch(face, b, eye_lids, size, face_h)
                    for b, eye_lids in zip(brows, lids, strict=True)]
    radius = float(np.mean(radii)) if radii else 0.0
    return FaceParts(eyes, brow_patches, radius, BROW_RAISE * face_h)
