"""The feathered alpha mask of the region the mouth overlay may touch."""

from __future__ import annotations

import numpy as np

FEATHER_START = 0.60  # superellipse radius where the fade begins (1.0 = ROI border)
FEATHER_START_BELOW = 0.78  # straight below the lips: the dropped chin must stay opaque
CENTER_Y = 0.42  # of the ROI height
EXPONENT = 4.0  # between an ellipse (2) and the rectangle, so the cheeks and chin are covered


def feathered_mask(w: int, h: int) -> np.ndarray:
    """8-bit alpha: opaque over the lips and jaw, smooth fade, exactly zero on the ROI border."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    # The lips sit high in the ROI (the jaw needs room below), so the full-alpha core does too.
    cx, cy = (w - 1) / 2.0, CENTER_Y * (h - 1)
    ry = np.where(ys < cy, cy, (h - 1) - cy)
    r = ((np.abs(xs - cx) / cx) ** EXPONENT + (np.abs(ys - cy) / ry) ** EXPONENT) ** (1 / EXPONENT)
    # Below the lips the fade starts later: when the jaw drops, the chin moves down into
    # what is the fade at the sides, and a half-transparent chin over the collar looks ghostly.
    below = np.where(ys > cy, (np.abs(ys - cy) / ry) ** EXPONENT / np.maximum(r, 1e-9) ** EXPONENT,
                     0.0)
    start = FEATHER_START + (FEATHER_START_BELOW - FEATHER_START) * below
    t = np.clip((1.0 - r) / (1.0 - start), 0.0, 1.0)
    alpha = t * t * (3 - 2 * t)
    mask = np.round(alpha * 255).astype(np.uint8)
    mask[0, :] = mask[-1, :] = 0
    mask[:, 0] = mask[:, -1] = 0
    return mask
