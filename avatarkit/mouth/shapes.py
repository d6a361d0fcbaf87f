"""Per-viseme lip shapes as grid offsets: one small articulatory model for all 12 classes.

Every shape starts from what the photo shows (often a smile with the upper teeth visible):
the upper lip moves little (the upper jaw is fixed to the skull), the lower lip and chin
follow the jaw, closing shapes meet in the middle so the lips stretch over the teeth, and
rounded shapes pull the corners in and pout. On a photo taken mid-word the part of the
opening that is the open jaw (its cavity, `MouthGrid.jaw_open`) closes by the jaw rising with
the lower lip and chin instead, and an opening shape opens by its own amount from the
closed jaw (the photo's upper teeth), rising where the photo is open further. Sizes are
fractions of the mouth width, so the same table fits every face.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatarkit.mouth import mesh
from avatarkit.mouth.mesh import MouthGrid


@dataclass(frozen=True)
class MouthShape:
    """One viseme's articulation. Lengths are in mouth widths."""

    raise_upper: float = 0.0  # upper inner lip lifts (shows more upper teeth)
    open: float = 0.0  # added lip opening at the centre
    keep: float = 1.0  # share of the photo's own lip opening kept
    close: float = 0.0  # 1 = inner lips meet in the middle (lips over the teeth)
    width: float = 0.0  # relative change of the mouth width (negative = narrower)
    roundness: float = 3.0  # opening profile exponent: 2 = round, 4 = wide and flat
    pout: float = 0.0  # outer lip contours pushed out (protrusion seen from the front)
    teeth_upper: bool = True
    teeth_lower: bool = False
    tongue: str | None = None  # "low", "tip_up" (L), "between" (TH)
    teeth_fill: bool = False  # the opening is all teeth (FV, CH): no dark cavity


SHAPES: dict[str, MouthShape] = {
    "Rest": MouthShape(),
    "AI": MouthShape(raise_upper=0.04, open=0.36, width=-0.04, tongue="low", teeth_lower=True),
    "E": MouthShape(raise_upper=0.03, open=0.11, width=0.06, roundness=4.0, teeth_lower=True),
    "U": MouthShape(open=0.03, keep=0.5, width=-0.30, roundness=2.0, pout=0.05),
    "O": MouthShape(raise_upper=0.02, open=0.17, keep=0.9, width=-0.30, roundness=2.0,
                    pout=0.04, tongue="low"),
    "MBP": MouthShape(close=1.0, width=-0.02),
    "FV": MouthShape(raise_upper=0.03, keep=0.3, teeth_fill=True),
    "L": MouthShape(raise_upper=0.03, open=0.14, width=-0.03, tongue="tip_up"),
    "WQ": MouthShape(open=0.02, keep=0.4, width=-0.36, roundness=2.0, pout=0.06),
    "R": MouthShape(raise_upper=0.01, open=0.04, keep=0.8, width=-0.16, roundness=2.5,
                    pout=0.03, teeth_lower=True),
    "CH": MouthShape(raise_upper=0.02, open=0.08, width=-0.12, roundness=2.5, pout=0.04,
                     teeth_lower=True, teeth_fill=True),
    "TH": MouthShape(raise_upper=0.03, open=0.11, width=-0.02, tongue="between"),
}


#: Share of the distance from the jaw row to the ROI border that moves rigidly with the jaw.
JAW_RIGID = 0.26
#: Share of a closing jaw's rise the grid row under the jaw row takes (rows below stay).
RISE_NECK = 0.5


def opening_profile(u: np.ndarray, roundness: float) -> np.ndarray:
    """1 at the mouth centre, 0 at the corners; rounder for small exponents."""
    return (1.0 - np.clip(np.abs(u), 0, 1) ** roundness) ** (1.0 / roundness)


def _smooth_falloff(beyond: np.ndarray) -> np.ndarray:
    """1 at the mouth corner, 0 at the ROI border, smooth at both ends."""
    t = np.clip(1.0 - beyond, 0, 1)
    return t * t * (3 - 2 * t)


def shape_offsets(grid: MouthGrid, shape: MouthShape) -> np.ndarray:
    """(ROWS, COLS, 2) offsets in ROI pixels; the ROI border never moves."""
    pts = grid.points
    rows, cols = pts.shape[:2]
    mw, cx = grid.mouth_width, grid.center_x
    c0, c1 = grid.corner_cols
    xs = pts[mesh.ROW_UPPER_INNER, :, 0]
    u = (xs - cx) / (0.5 * mw)
    prof = opening_profile(u, shape.roundness)
    r3, r4 = pts[mesh.ROW_UPPER_INNER, :, 1], pts[mesh.ROW_LOWER_INNER, :, 1]
    gap = r4 - r3

    # Of an open photo's opening, the jaw part closes by the jaw rising (lower lip and chin
    # together); the rest - teeth showing between the lips - by the lips meeting over them.
    jaw_gap = np.minimum(grid.jaw_open, np.maximum(gap, 0.0))
    lips_gap = gap
    if shape.open > 0 and np.any(grid.jaw_drop):
        # An opening shape opens by its own amount from a closed jaw: of a photo mid-word it
        # keeps only what the lips show with the jaw closed (the upper teeth), so on a photo
        # already open as far it barely moves (adding its opening to the photo's over-stretched
        # the lips) and on one open further its jaw rises. The jaw is one rigid piece: its
        # drop is measured at the middle and follows the opening's profile to the corners.
        # Rest (the photo) and shapes that open nothing keep the photo's jaw.
        mid = (grid.corner_cols[0] + grid.corner_cols[1]) // 2
        drop = float(np.median(grid.jaw_drop[mid - 1:mid + 3]))
        jaw_gap = np.minimum(drop * opening_profile(u, 3.0), np.maximum(gap, 0.0))
        lips_gap = gap - jaw_gap
    upper = r3 + shape.close * 0.5 * (gap - jaw_gap) - shape.raise_upper * mw * prof
    new_gap = (1 - shape.close) * shape.keep * lips_gap + shape.open * mw * prof
    dy_ui = upper - r3
    dy_li = upper + new_gap - r4
    rise = np.clip(-dy_li, 0.0, jaw_gap)  # how far the jaw rises under each column
    centre = int(np.argmin(np.abs(u)))
    jaw = float(dy_li[centre]) if dy_li[centre] > 0 else -float(rise[centre])
    corner_drop = 0.25 * jaw * (1 - prof)
    dy_ui = dy_ui + corner_drop
    dy_li = dy_li + corner_drop
    dy_uo = np.where(dy_ui > 0, 0.35, 0.6) * dy_ui - shape.pout * mw * prof
    # A rising jaw carries the lower lip almost whole (pressed a little thicker); the rest of
    # a closing stretches the lower lip up over the teeth.
    dy_lo = np.where(dy_li > 0, dy_li, -0.9 * rise + 0.4 * (dy_li + rise)) \
        + shape.pout * mw * prof

    # Outside the mouth the lip rows carry the corner's motion, fading to the border.
    inside = (np.arange(cols) >= c0) & (np.arange(cols) <= c1)
    left_x, right_x = xs[c0], xs[c1]
    w = pts[0, -1, 0]
    beyond = np.where(xs < left_x, (left_x - xs) / max(left_x, 1e-6),
                      np.where(xs > right_x, (xs - right_x) / max(w - right_x, 1e-6), 0.0))
    fall = _smooth_falloff(beyond)

    def spread(values: np.ndarray) -> np.ndarray:
        corner = np.where(xs < cx, values[c0], values[c1])
        return np.where(inside, values, corner * fall)

    dy = np.zeros((rows, cols))
    dy[mesh.ROW_UPPER_OUTER] = spread(dy_uo)
    dy[mesh.ROW_UPPER_INNER] = spread(dy_ui)
    dy[mesh.ROW_LOWER_INNER] = spread(dy_li)
    dy[mesh.ROW_LOWER_OUTER] = spread(dy_lo)
    dy[1] = 0.3 * dy[mesh.ROW_UPPER_OUTER]
    # The jaw carries the chin and the skin below the lower lip; the neck takes up the rest.
    chin_span = np.clip(1.0 - np.abs(xs - cx) / (1.6 * mw), 0, 1)
    chin_fall = chin_span * chin_span * (3 - 2 * chin_span)
    if jaw > 0:
        for r in range(mesh.ROW_BELOW_LIP, rows - 1):
            dy[r] = np.maximum(jaw * _jaw_share(pts, r) * chin_fall, 0.0)
        dy[mesh.ROW_BELOW_LIP] = np.maximum(dy[mesh.ROW_BELOW_LIP], 0.8 * dy[mesh.ROW_LOWER_OUTER])
    elif jaw < 0:  # an open photo's jaw closing: the chin rises with it, the skin under it
        # stretches; the neck and collar further down stay (they do not move with the jaw).
        for r in range(mesh.ROW_BELOW_LIP, mesh.ROW_JAW + 2):
            share = 1.0 if r <= mesh.ROW_JAW else RISE_NECK
            dy[r] = np.minimum(jaw * share * chin_fall, 0.0)
        dy[mesh.ROW_BELOW_LIP] = np.minimum(dy[mesh.ROW_BELOW_LIP], 0.8 * dy[mesh.ROW_LOWER_OUTER])
    else:  # closing: the skin under the lower lip follows it a little
        dy[mesh.ROW_BELOW_LIP] = 0.4 * dy[mesh.ROW_LOWER_OUTER]

    # Width: lip rows scale about the mouth centre; neighbours follow partly.
    dx_inside = (xs - cx) * shape.width
    dx = np.zeros((rows, cols))
    for r, share in {1: 0.3, 2: 1.0, 3: 1.0, 4: 1.0, 5: 1.0, 6: 0.6, 7: 0.2}.items():
        dx[r] = share * spread(dx_inside)

    offsets = np.stack([dx, dy], axis=-1)
    offsets[0] = offsets[-1] = 0.0
    offsets[:, 0] = offsets[:, -1] = 0.0
    return _keep_rows_ordered(pts, offsets)


def _jaw_share(points: np.ndarray, row: int) -> np.ndarray:
    """How much of the jaw drop grid row `row` takes, per column.

    The chin and the jaw line move as one piece (the visible chin edge and the shadow
    under it lie a little below the jaw landmarks), and the neck takes up the drop evenly
    further down, fading to nothing at the ROI border. Squeezing the neck into the one grid
    cell under the jaw row (a 7x compression on the example) turned the jaw-line shadow into
    a thin dotted line.
    """
    if row <= mesh.ROW_JAW:
        return np.ones(points.shape[1])
    jaw = points[mesh.ROW_JAW, :, 1]
    bottom = points[-1, :, 1]
    t = np.clip((points[row, :, 1] - jaw) / np.maximum(bottom - jaw, 1e-6), 0, 1)
    return np.clip((1.0 - t) / (1.0 - JAW_RIGID), 0, 1)


def _keep_rows_ordered(points: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Clamp offsets so deformed rows stay in order (no folded triangles)."""
    moved = points + offsets
    for r in range(1, points.shape[0]):
        floor = moved[r - 1, :, 1] + (0.0 if r == mesh.ROW_LOWER_INNER else 0.2)
        moved[r, :, 1] = np.maximum(moved[r, :, 1], floor)
    for r in range(points.shape[0] - 2, 0, -1):
        moved[r, :, 1] = np.minimum(moved[r, :, 1], moved[r + 1, :, 1] - 0.2)
    moved[:, 1:, 0] = np.maximum(moved[:, 1:, 0], moved[:, :-1, 0] + 0.2)
    offsets = moved - points
    offsets[0] = offsets[-1] = 0.0
    offsets[:, 0] = offsets[:, -1] = 0.0
    return offsets


def all_offsets(grid: MouthGrid) -> dict[str, np.ndarray]:
    """Offsets for every canonical class, Rest all zeros; rounded as meshdef.json stores them,
    so sprites drawn from these equal what a client draws from the file."""
    return {name: np.round(shape_offsets(grid, shape), 3) for name, shape in SHAPES.items()}
