"""The 16x12 control grid over the mouth ROI, laid out so that grid rows follow the lips.

Rows 2-5 run along the upper outer, upper inner, lower inner and lower outer lip contours,
row 7 along the jaw line. Moving a row therefore moves exactly that lip edge, which lets the
mesh variant close a smiling mouth (lips stretched over the teeth) with only 192 points.
Each cell is drawn as two triangles split along its top-left/bottom-right diagonal, the way
GPU clients draw it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from avatarkit.face import regions
from avatarkit.face.landmarks import Face
from avatarkit.mouth.roi import Roi

COLS, ROWS = 16, 12
ROW_UPPER_OUTER, ROW_UPPER_INNER, ROW_LOWER_INNER, ROW_LOWER_OUTER = 2, 3, 4, 5
ROW_BELOW_LIP, ROW_JAW = 6, 7
MIN_ROW_GAP = 0.35  # px; keeps rows ordered so no triangle folds over


@dataclass(frozen=True)
class MouthGrid:
    """Control points (ROWS, COLS, 2) in ROI pixels plus the geometry the shapes need."""

    points: np.ndarray
    corner_cols: tuple[int, int]  # grid columns at the left and right mouth corners
    mouth_width: float
    center_x: float
    #: (COLS,) px of the lip opening that is the photo's jaw being open (its dark cavity),
    #: zeros for a closed or smiling mouth: see mouth/open_photo.py.
    jaw_open: np.ndarray = field(default_factory=lambda: np.zeros(COLS))
    #: (COLS,) px of the lip opening below the photo's upper teeth (cavity, tongue, lower
    #: teeth): what its jaw closing would hide. Zeros where `jaw_open` is.
    jaw_drop: np.ndarray = field(default_factory=lambda: np.zeros(COLS))

    @property
    def flat(self) -> np.ndarray:
        """(ROWS*COLS, 2), row-major: the order used in meshdef.json."""
        return self.points.reshape(-1, 2)


def _column_xs(w: int, left: float, right: float) -> np.ndarray:
    """Border, two cheek columns, corner, 8 inside the mouth, corner, two cheek, border."""
    inside = np.linspace(left, right, 10)
    cheeks_l = np.linspace(0.0, left, 4)[1:3]
    cheeks_r = np.linspace(right, w - 1.0, 4)[1:3]
    return np.concatenate([[0.0], cheeks_l, inside, cheeks_r, [w - 1.0]])


def _contour_y(points: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Height of a left-to-right contour at each x (flat beyond its ends)."""
    order = np.argsort(points[:, 0])
    return np.interp(xs, points[order, 0], points[order, 1])


def build_grid(face: Face, roi: Roi) -> MouthGrid:
    """Lay the grid over this face's mouth."""
    p = roi.to_local(face.points.astype(np.float64))
    left, right = p[regions.MOUTH_LEFT, 0], p[regions.MOUTH_RIGHT, 0]
    width = right - left
    xs = _column_xs(roi.w, left, right)
    thickness = 0.12 * width
    # How far beyond the corners a column is, 0 inside the mouth, 1 at the ROI border.
    beyond = np.clip(np.maximum((left - xs) / max(left, 1), (xs - right) / max(roi.w - right, 1)),
                     0, 1)
    lip_rows = []
    for index_set, spread in ((regions.LIPS_OUTER_UPPER, -1.0), (regions.LIPS_INNER_UPPER, -0.3),
                              (regions.LIPS_INNER_LOWER, 0.3), (regions.LIPS_OUTER_LOWER, 1.0)):
        y = _contour_y(p[list(index_set)], xs)
        lip_rows.append(y + spread * thickness * np.sqrt(beyond))
    jaw = _contour_y(p[list(regions.JAW)], xs)
    lower_lip = lip_rows[3]
    jaw = np.maximum(jaw, lower_lip + 0.2 * width)
    h = roi.h - 1.0
    top = np.zeros_like(xs)
    rows = [
        top,
        0.5 * (top + lip_rows[0]),
        *lip_rows,
        0.5 * (lower_lip + jaw),
        jaw,
        jaw + 0.3 * (h - jaw),
        jaw + 0.55 * (h - jaw),
        jaw + 0.8 * (h - jaw),
        np.full_like(xs, h),
    ]
    ys = np.stack(rows)
    for r in range(1, ROWS - 1):  # keep rows strictly ordered inside the ROI
        ys[r] = np.clip(np.maximum(ys[r], ys[r - 1] + MIN_ROW_GAP), 0, h - (ROWS - 1 - r) * 0.5)
    points = np.round(np.stack([np.broadcast_to(xs, ys.shape), ys], axis=-1), 3)
    return MouthGrid(points=points, corner_cols=(3, 12), mouth_width=float(width),
                     center_x=float(0.5 * (left + right)))


def triangles() -> np.ndarray:
    """(N, 3) indices into the flattened grid, two per cell."""
    tris = []
    for r in range(ROWS - 1):
        for c in range(COLS - 1):
            a, b = r * COLS + c, r * COLS + c + 1
            d, e = (r + 1) * COLS + c, (r + 1) * COLS + c + 1
            tris.append((a, b, e))
            tris.append((a, e, d))
    return np.array(tris, dtype=np.int32)


def opening_polygon(points: np.ndarray, corner_cols: tuple[int, int]) -> np.ndarray:
    """Where the lips part: upper inner row left to right, lower inner row back (ROI pixels)."""
    c0, c1 = corner_cols
    upper = points[ROW_UPPER_INNER, c0:c1 + 1]
    lower = points[ROW_LOWER_INNER, c0:c1 + 1][::-1]
    return np.concatenate([upper, lower])
