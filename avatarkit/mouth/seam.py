"""The lip seam: a soft dark line where closed lips meet, drawn alike by every renderer.

Closed lips read as two lips, not one band, because of the shadow line between them. It also
hides what a warp samples where the opening collapses to zero height: on a photo taken
mid-word that row is the photo's teeth, which showed as light specks along the closed seam
(the detector read them as parted lips). The sprites draw it into the closing shapes' cells;
the mesh variant and the browser's WebGL mesh draw it from meshdef.json's `seam` entry, faded
by the weight of the closing classes.
"""

from __future__ import annotations

import numpy as np

from avatarkit.mouth.shapes import SHAPES
from avatarkit.visemes.classes import VISEME_CLASSES

#: Darkness at the line's centre (0..1) and its Gaussian width across the line, ROI px.
STRENGTH = 0.45
SIGMA_PX = 0.8
#: The line's colour: the lip colour this much as bright.
LIP_SHADE = 0.35
#: The mesh renderers shade a narrowing opening towards the line's colour once it is under
#: this fraction of the photo's own gap (fully at zero): a warp squeezes whatever the photo
#: shows between the lips (on a photo taken mid-word: its teeth) into the narrowing gap, a
#: bright line where closing lips show a shadow. Sprites are drawn per class, not squeezed.
SHADE_BELOW = 0.5
#: Columns where the photo's lips are less than this far apart (px) are not shaded.
MIN_PHOTO_GAP_PX = 1.0
#: The classes whose lips meet all along: they carry the line.
CLASSES = tuple(c for c in VISEME_CLASSES if SHAPES[c].close >= 1.0)


def seam_rgb(lip_rgb: np.ndarray) -> np.ndarray:
    """(3,) float32: the line's colour for a lip colour."""
    return (np.asarray(lip_rgb, np.float32) * LIP_SHADE).astype(np.float32)


def seam_alpha(row: np.ndarray, size: tuple[int, int], strength: float = STRENGTH,
               sigma_px: float = SIGMA_PX) -> np.ndarray:
    """(h, w) 0..STRENGTH: the line along `row` ((n, 2) ROI px, left to right: the deformed
    upper inner lip between the corners), by vertical distance from the row's
    piecewise-linear curve, and zero outside the corners."""
    w, h = size
    xs = np.arange(w, dtype=np.float32)
    curve = np.interp(xs, row[:, 0], row[:, 1])
    inside = (xs >= row[0, 0]) & (xs <= row[-1, 0])
    ys = np.arange(h, dtype=np.float32)[:, None]
    return strength * np.exp(-((ys - curve[None, :]) / sigma_px) ** 2) * inside[None, :]


def draw_seam(image: np.ndarray, row: np.ndarray, rgb: np.ndarray,
              amount: float = 1.0) -> np.ndarray:
    """`image` (float, ROI-sized) with the line along `row` at `amount` (0..1) of its strength."""
    a = seam_alpha(row, (image.shape[1], image.shape[0]))[..., None] * amount
    return image * (1 - a) + rgb * a


def closing_shade(photo_gap: np.ndarray, gap: np.ndarray, below: float = SHADE_BELOW,
                  min_photo_gap: float = MIN_PHOTO_GAP_PX) -> np.ndarray:
    """Per grid column 0..1: how far the opening is shaded, from the photo's gap and the
    deformed one (both px, per column)."""
    ratio = gap / np.maximum(photo_gap, 1e-6)
    shade = np.clip(1.0 - ratio / below, 0.0, 1.0)
    return np.where(photo_gap > min_photo_gap, shade, 0.0)


def seam_spec(lip_rgb: np.ndarray) -> dict:
    """meshdef.json's `seam` entry (docs/player.md: how a mesh renderer draws it)."""
    return {"rgb": [round(float(v), 2) for v in seam_rgb(lip_rgb)], "strength": STRENGTH,
            "sigma_px": SIGMA_PX, "classes": {c: 1.0 for c in CLASSES},
            "shade_below": SHADE_BELOW, "min_photo_gap_px": MIN_PHOTO_GAP_PX,
            "note": "a dark line along the deformed upper inner lip row between the corner "
                    "columns (`opening`): alpha = strength x min(1, sum of the weights of its "
                    "classes) x exp(-(d / sigma_px)^2), d = vertical ROI-pixel distance from "
                    "the row (linear between columns), drawn over the warped mouth and under "
                    "the mask. Mesh renderers also fill the opening strip with this colour at "
                    "alpha = clamp(1 - (gap / photo gap) / shade_below, 0, 1) per column "
                    "(0 where the photo gap is under min_photo_gap_px; linear between "
                    "columns), whatever the weights: a narrowing gap is in shadow"}


__all__ = ["CLASSES", "closing_shade", "draw_seam", "seam_alpha", "seam_rgb", "seam_spec"]
