"""Sprites: the photo's mouth ROI drawn through each class's mesh deformation, plus interior."""

from __future__ import annotations

import numpy as np

from avatarkit.mouth import mesh
from avatarkit.mouth.interior import MouthLook, render_interior, row_curve
from avatarkit.mouth.mesh import MouthGrid
from avatarkit.mouth.shapes import MouthShape
from avatarkit.mouth.warp import warp_image


def render_mouth(patch: np.ndarray, grid: MouthGrid, offsets: np.ndarray, shape: MouthShape,
                 look: MouthLook) -> np.ndarray:
    """RGB uint8 ROI with the mouth in `shape`; identical to `patch` when nothing moves."""
    if not np.any(offsets):
        return patch.copy()
    h, w = patch.shape[:2]
    target = grid.points + offsets
    warped = warp_image(patch, grid.flat, offsets.reshape(-1, 2)).astype(np.float32)
    interior, alpha = render_interior(patch, grid, target, shape, look)
    out = warped * (1 - alpha[..., None]) + interior * alpha[..., None]
    if shape.close >= 1.0:
        out = _lip_seam(out, target, grid, look)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _lip_seam(image: np.ndarray, target: np.ndarray, grid: MouthGrid,
              look: MouthLook) -> np.ndarray:
    """A soft dark line where closed lips meet, so they read as two lips, not one band."""
    h, w = image.shape[:2]
    c0, c1 = grid.corner_cols
    xs = np.arange(w, dtype=np.float32)
    seam = row_curve(target, mesh.ROW_UPPER_INNER, slice(c0, c1 + 1), w)
    ys = np.arange(h, dtype=np.float32)[:, None]
    inside = (xs >= target[mesh.ROW_UPPER_INNER, c0, 0]) & (xs <= target[mesh.ROW_UPPER_INNER,
                                                                          c1, 0])
    strength = 0.45 * np.exp(-((ys - seam[None, :]) / 0.8) ** 2) * inside[None, :]
    dark = (look.lip_rgb * 0.35).astype(np.float32)
    return image * (1 - strength[..., None]) + dark * strength[..., None]


def to_sprite(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """RGBA sprite cell: the rendered ROI with the feathered mask as alpha."""
    return np.dstack([rgb, mask])


def composite(photo_patch: np.ndarray, sprite: np.ndarray) -> np.ndarray:
    """Blend a sprite over a ROI-sized patch through its alpha (what a client does)."""
    a = sprite[..., 3:4].astype(np.float32) / 255.0
    out = photo_patch.astype(np.float32) * (1 - a) + sprite[..., :3].astype(np.float32) * a
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


__all__ = ["render_mouth", "to_sprite", "composite"]
