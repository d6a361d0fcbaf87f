"""Eye blinks: the upper lid slides down over the eyeball until it meets the lower lid.

The warp is a per-column, piecewise-linear remap inside a small box around each eye: the skin
between the brow and the upper lid stretches down (as a real lid does), the eyeball below the
moving lid edge stays put, and everything outside the box is untouched. It runs on the photo
before the head motion, so the head warp carries the blinking eye with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from avatarkit.face import regions
from avatarkit.face.landmarks import Face

EYES = (regions.EYE_IMAGE_LEFT, regions.EYE_IMAGE_RIGHT)
LID_SKIN = 0.3  # height of the upper-lid skin that stretches, in eye widths
OVERLAP = 0.25  # how far past the lower lid the closed lid reaches, in lid openings


@dataclass(frozen=True)
class EyeLids:
    """One eye's lid curves sampled per pixel column of a box in photo coordinates."""

    x0: int
    y0: int
    x1: int
    y1: int
    upper: np.ndarray  # (x1 - x0,) y of the upper lid edge per column (photo pixels)
    lower: np.ndarray  # (x1 - x0,) y of the lower lid edge per column
    top: np.ndarray  # (x1 - x0,) y above which nothing moves (below the brow)


def _lid_curve(points: np.ndarray, xs: np.ndarray) -> np.ndarray:
    order = np.argsort(points[:, 0])
    return np.interp(xs, points[order, 0], points[order, 1])


def eye_lids(face: Face, image_size: tuple[int, int]) -> list[EyeLids]:
    """Lid curves of both eyes, from the outer through the inner corner."""
    w, h = image_size
    out = []
    for eye in EYES:
        a, b = eye["corners"]
        corners = face.points[[a, b]]
        upper_pts = np.vstack([corners, face.points[list(eye["upper_lid"])]])
        lower_pts = np.vstack([corners, face.points[list(eye["lower_lid"])]])
        width = float(np.linalg.norm(corners[0] - corners[1]))
        x0 = int(np.floor(corners[:, 0].min() - 0.15 * width))
        x1 = int(np.ceil(corners[:, 0].max() + 0.15 * width)) + 1
        x0, x1 = max(0, x0), min(w, x1)
        xs = np.arange(x0, x1, dtype=np.float64)
        upper = _lid_curve(upper_pts, xs)
        lower = _lid_curve(lower_pts, xs)
        lower = np.maximum(lower, upper)
        # Outside the corners the lids coincide, so the warp fades to nothing there.
        inside = (xs > corners[:, 0].min()) & (xs < corners[:, 0].max())
        mid = 0.5 * (upper + lower)
        upper = np.where(inside, upper, mid)
        lower = np.where(inside, lower, mid)
        # The stretched skin reaches up to about the lid crease, short of brows and glasses.
        top = np.maximum(upper - LID_SKIN * width, 0.0)
        y0 = int(np.floor(top.min()))
        y1 = min(h, int(np.ceil(lower.max() + 0.1 * width)) + 1)
        out.append(EyeLids(x0, y0, x1, y1, upper, lower, top))
    return out


def blink_image(rgb: np.ndarray, lids: list[EyeLids], closure: float) -> np.ndarray:
    """The photo with both eyes closed by `closure` (0 = as photographed, 1 = shut)."""
    if closure <= 0.0:
        return rgb
    out = rgb.copy()
    for eye in lids:
        ys = np.arange(eye.y0, eye.y1, dtype=np.float64)[:, None]
        upper, lower, top = eye.upper[None], eye.lower[None], eye.top[None]
        # The lid edge ends a little past the lower lid's landmarks so the lashes overlap it.
        closed = lower + OVERLAP * (lower - upper)
        edge = upper + closure * (closed - upper)
        # Above the moving edge: the lid skin from `top` to the original edge, stretched.
        span = np.maximum(edge - top, 1e-3)
        src_above = top + (ys - top) * (upper - top) / span
        src = np.where((ys >= top) & (ys < edge), src_above, ys)
        map_y = src.astype(np.float32)
        map_x = np.broadcast_to(
            np.arange(eye.x0, eye.x1, dtype=np.float32)[None], map_y.shape
        ).copy()
        patch = cv2.remap(rgb, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        out[eye.y0:eye.y1, eye.x0:eye.x1] = patch
    return out
