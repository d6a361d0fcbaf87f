"""Sprites: the photo's mouth ROI drawn through each class's mesh deformation, plus interior."""

from __future__ import annotations

import numpy as np

from avatarkit.mouth import mesh
from avatarkit.mouth.chin_rise import chin_edge, draw_with_risen_chin
from avatarkit.mouth.interior import MouthLook, render_interior
from avatarkit.mouth.mesh import MouthGrid
from avatarkit.mouth.seam import draw_seam, seam_rgb
from avatarkit.mouth.shapes import MouthShape
from avatarkit.mouth.warp import warp_image


def render_mouth(patch: np.ndarray, grid: MouthGrid, offsets: np.ndarray, shape: MouthShape,
                 look: MouthLook) -> np.ndarray:
    """RGB uint8 ROI with the mouth in `shape`; identical to `patch` when nothing moves."""
    if not np.any(offsets):
        return patch.copy()
    target = grid.points + offsets
    warped = draw_with_risen_chin(
        patch, grid, offsets,
        warp_image(patch, grid.flat, offsets.reshape(-1, 2)).astype(np.float32))
    if shape.close >= 1.0:
        # The lips meet all along: no interior shows. (Drawn over the zero-area opening,
        # its anti-aliased edge left a line of teeth or cavity colour along the seam that
        # the face detector read as parted lips.)
        c0, c1 = grid.corner_cols
        out = draw_seam(warped, target[mesh.ROW_UPPER_INNER, c0:c1 + 1], seam_rgb(look.lip_rgb))
    else:
        interior, alpha = render_interior(patch, grid, target, shape, look)
        out = warped * (1 - alpha[..., None]) + interior * alpha[..., None]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


#: How far below the dropped chin's edge the sprite fades out, in mouth widths (at least
#: 2 px): the edge under a chin is a natural shadow line that hides the transition.
CHIN_FADE = 0.12


def chin_alpha(grid: MouthGrid, offsets: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w) float 0..1: 1 down to the lower edge of the (dropped) chin, 0 below it.

    A sprite is cut from the still photo; over a moving head the neck and collar under the
    chin come from the live frame, not the sprite (whose neck is stretched by the jaw drop
    and, in the feather band, would blend with the frame's own into a light band). The chin
    piece moves rigidly with the jaw (`shapes.JAW_RIGID` of the way down to the ROI border),
    so its edge is that far below the jaw row, wherever the jaw row went."""
    w, h = size
    pts = grid.points
    edge_src = chin_edge(grid)
    # A chin raised (an open photo's jaw closing) still covers the photo's own chin below it.
    edge = edge_src + np.maximum(offsets[mesh.ROW_JAW, :, 1], 0.0)
    xs = pts[mesh.ROW_JAW, :, 0] + offsets[mesh.ROW_JAW, :, 0]
    edge_px = np.interp(np.arange(w), xs, edge)
    fade = max(2.0, CHIN_FADE * grid.mouth_width)
    t = np.clip((np.arange(h, dtype=np.float64)[:, None] - edge_px[None, :]) / fade, 0.0, 1.0)
    return 1.0 - t * t * (3 - 2 * t)


def to_sprite(rgb: np.ndarray, mask: np.ndarray, alpha: np.ndarray | None = None) -> np.ndarray:
    """RGBA sprite cell: the rendered ROI with the feathered mask (times `alpha`, 0..1, when
    given: see `chin_alpha`) as alpha."""
    if alpha is None:
        return np.dstack([rgb, mask])
    a = np.round(mask.astype(np.float64) * alpha).astype(np.uint8)
    return np.dstack([rgb, a])


def composite(photo_patch: np.ndarray, sprite: np.ndarray) -> np.ndarray:
    """Blend a sprite over a ROI-sized patch through its alpha (what a client does)."""
    a = sprite[..., 3:4].astype(np.float32) / 255.0
    out = photo_patch.astype(np.float32) * (1 - a) + sprite[..., :3].astype(np.float32) * a
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


__all__ = ["chin_alpha", "render_mouth", "to_sprite", "composite"]
