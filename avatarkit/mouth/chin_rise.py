"""A photo's open jaw closing: the chin rises as one block and the neck under it shows.

On a photo taken mid-word, shapes that open less than the photo raise the jaw (see
`shapes.shape_offsets`). Drawn through the grid alone, the cells under the jaw row stretch
to fill the height the chin leaves: the thin shadow under the chin became a tall dark smear
with vertical streaks. Here the skin from the jaw row down to the chin's lower edge moves up
rigidly (it keeps its texture), and the band the chin uncovers shows the photo's own neck
from just under the chin, mirrored about the chin's edge: the band meets the photo's neck
below that edge without a seam (the sprite equals the photo there), so no shifted copy of a
collar or a neck fold can show as a ghost edge. Where a collar, a tie or a sweater lies
within the band's reach under the chin (obama, hero), mirroring it would draw it twice and
lifting it would leave a ghost collar edge, so those columns - and the whole chin when the
middle of it is among them - keep the grid's warp. The mesh layers (meshdef.json) still
carry the grid's offsets alone.
"""

from __future__ import annotations

import cv2
import numpy as np

from avatarkit.mouth import mesh
from avatarkit.mouth.interior import LUMA
from avatarkit.mouth.mesh import MouthGrid
from avatarkit.mouth.shapes import JAW_RIGID

MIN_RISE = 0.5  # px of jaw rise below which the grid's own warp is kept
SEAM_SOFT = 0.05  # mouth widths over which the chin's shadow blends into the neck band
COLLAR_BRIGHT = 1.1  # times the chin skin's bright end (90th percentile): a collar
COLLAR_BLACK = 0.1  # times the same: black clothes
CHIN_FREE = 0.05  # mouth widths from the centre that must be free of clothes
SIDE_FULL, SIDE_END = 0.5, 0.9  # mouth widths from the centre: rigid chin, grid warp only


def chin_edge(grid: MouthGrid) -> np.ndarray:
    """(COLS,) y of the chin's lower edge in the photo: `JAW_RIGID` of the way from the jaw
    row to the ROI border (the chin and the shadow under it lie a little below the jaw row)."""
    pts = grid.points
    jaw = pts[mesh.ROW_JAW, :, 1]
    return jaw + JAW_RIGID * (pts[-1, :, 1] - jaw)


def collar_free(patch: np.ndarray, grid: MouthGrid, top: np.ndarray, edge: np.ndarray,
                bottom: np.ndarray) -> np.ndarray:
    """(w,) 0..1 per pixel column: 1 where the photo between `top` and `bottom` is skin or
    its shadow, 0 where a collar, a tie or a suit shows there (brighter than the skin around
    the lips, no redder than blue, or black below the chin's edge): mirrored or lifted, it
    would show twice."""
    lum = patch.astype(np.float32) @ LUMA
    pts = grid.points
    c0, c1 = grid.corner_cols
    skin_rows = lum[int(pts[mesh.ROW_BELOW_LIP, c0:c1 + 1, 1].min()):
                    int(pts[mesh.ROW_JAW, c0:c1 + 1, 1].min()) + 1,
                    int(pts[mesh.ROW_JAW, c0, 0]):int(pts[mesh.ROW_JAW, c1, 0])]
    bright = COLLAR_BRIGHT * float(np.percentile(skin_rows, 90)) if skin_rows.size else 255.0
    h, w = lum.shape
    ys = np.arange(h)[:, None]
    inside = (ys >= top[None, :]) & (ys <= bottom[None, :])
    img = patch.astype(np.float32)
    not_skin = (lum > bright) | (img[..., 2] >= img[..., 0])  # collar, shirt, tie, suit
    # Black clothes are as dark as the deep shadow under a chin (which the rigid part may
    # hold), but the band mirrored from under the chin's edge must hold no black.
    black = (ys >= edge[None, :]) & (lum < COLLAR_BLACK * bright / COLLAR_BRIGHT)
    hit = np.any(inside & (not_skin | black), axis=0).astype(np.float64)
    free = 1.0 - np.convolve(np.pad(hit, 3, mode="edge"), np.ones(7), mode="valid").clip(0, 1)
    return np.convolve(np.pad(free, 2, mode="edge"), np.ones(5) / 5, mode="valid")


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _remap(image: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    return cv2.remap(image, map_x.astype(np.float32), map_y.astype(np.float32),
                     cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)


def draw_with_risen_chin(patch: np.ndarray, grid: MouthGrid, offsets: np.ndarray,
                         warped: np.ndarray) -> np.ndarray:
    """float32 (h, w, 3): `warped` (`patch` drawn through the grid warp), with the part under a
    rising jaw row replaced by the rigid chin over the mirrored neck band (blended over a
    few px where the chin's shadow meets the band, and into the grid's own warp towards the
    sides, where the jaw line runs into the collar). The grid warp alone where the jaw row
    does not rise (closed and smiling photos, opening shapes)."""
    rise_cols = -offsets[mesh.ROW_JAW, :, 1]
    if not np.any(grid.jaw_open) or float(np.max(rise_cols)) < MIN_RISE:
        return warped
    h, w = warped.shape[:2]
    pts = grid.points
    mw = grid.mouth_width
    xs = np.arange(w, dtype=np.float64)
    jaw_x = pts[mesh.ROW_JAW, :, 0] + offsets[mesh.ROW_JAW, :, 0]
    rise = np.interp(xs, jaw_x, np.maximum(rise_cols, 0.0))[None, :]
    jaw_top = np.interp(xs, jaw_x, pts[mesh.ROW_JAW, :, 1] + offsets[mesh.ROW_JAW, :, 1])
    edge = np.interp(xs, pts[mesh.ROW_JAW, :, 0], chin_edge(grid))[None, :]
    side = _smoothstep((SIDE_END - np.abs(xs - grid.center_x) / mw) / (SIDE_END - SIDE_FULL))
    jaw_src = np.interp(xs, pts[mesh.ROW_JAW, :, 0], pts[mesh.ROW_JAW, :, 1])
    free = collar_free(patch, grid, jaw_src, edge[0], (edge + rise)[0] + 2)
    if float(np.min(free[np.abs(xs - grid.center_x) <= CHIN_FREE * mw], initial=1.0)) < 1.0:
        return warped  # clothes right under the chin: a partly lifted chin would kink
    ys = np.arange(h, dtype=np.float64)[:, None]
    grid_x = np.broadcast_to(xs[None, :], (h, w))
    rigid = _remap(patch, grid_x, np.clip(ys + rise, 0, h - 1))
    neck = _remap(patch, grid_x, np.clip(np.where(ys < edge, 2.0 * edge - ys, ys), 0, h - 1))
    soft = max(1.5, SEAM_SOFT * mw)
    m = _smoothstep((ys - (edge - rise - soft)) / (2 * soft))[..., None]
    mine = rigid * (1 - m) + neck * m
    below = _smoothstep(ys - jaw_top[None, :] + 0.5)
    wgt = (below * (side * free)[None, :] * (rise > 0))[..., None]
    return warped * (1 - wgt) + mine * wgt
