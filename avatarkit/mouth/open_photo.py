"""Photos taken mid-word: how far the photo's own jaw is open, and where its lips really end.

A smile shows teeth between the lips with the jaw closed (upper and lower teeth touch); a
talking photo shows a dark cavity between them, because the jaw is open. Closing shapes
must close the two differently: over a smile the lips stretch over the teeth and meet in the
middle, but an open jaw closes by rising - the lower lip and the chin move up together, so
no lip is stretched to several times its height. The cavity's height between the lips,
measured here per grid column, is that jaw part.

On an open mouth the face mesh also puts the inner lip contours a pixel or two into the
teeth and the cavity; drawn through a closing shape, those pixels become a strip of teeth at
the lips' seam that a face detector (and a viewer) still reads as parted lips. The inner lip
rows are moved out to where the lip colour ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import numpy as np

from avatarkit.mouth import mesh
from avatarkit.mouth.interior import CAVITY_DARK, LUMA, MouthLook
from avatarkit.mouth.mesh import MouthGrid

DARK = CAVITY_DARK  # darker pixels between the lips are cavity (or tongue)
MIN_JAW = 0.03  # mouth widths of cavity at the centre below which the jaw counts as closed
UPPER_REACH = 0.45  # share of the upper lip's height its inner row may move out by
LOWER_REACH = 0.7  # the same for the lower lip (lower teeth hide much of it)
LIP_COLOUR = 45.0  # RGB distance from the lower lip's own colour beyond which it has ended


def _column(image: np.ndarray, x: float) -> np.ndarray:
    """The image's pixel column at x, averaged over 3 px (one stray pixel decides nothing)."""
    x0 = int(np.clip(round(x), 1, image.shape[1] - 2))
    return image[:, x0 - 1:x0 + 2].mean(axis=1)


def _cavity_columns(patch: np.ndarray, grid: MouthGrid, look: MouthLook,
                    ) -> Iterator[tuple[int, np.ndarray, np.ndarray, float, float]]:
    """Per grid column between the corners: (column, the pixel rows between its inner lip
    rows, which of them are dark enough to be cavity, the upper and the lower inner row)."""
    lum = patch.astype(np.float32) @ LUMA
    lip_lum = float(look.lip_rgb @ LUMA)
    c0, c1 = grid.corner_cols
    p = grid.points
    for c in range(c0 + 1, c1):
        top, bottom = p[mesh.ROW_UPPER_INNER, c, 1], p[mesh.ROW_LOWER_INNER, c, 1]
        ys = np.arange(int(np.ceil(top)), int(np.floor(bottom)) + 1)
        if len(ys):
            dark = _column(lum, p[mesh.ROW_UPPER_INNER, c, 0])[ys] < DARK * lip_lum
            yield c, ys, dark, float(top), float(bottom)


def _smoothed(out: np.ndarray, grid: MouthGrid) -> np.ndarray:
    c0, c1 = grid.corner_cols
    out[c0 + 1:c1] = np.convolve(out[c0:c1 + 1], [0.25, 0.5, 0.25], mode="valid")
    return out


def jaw_open(patch: np.ndarray, grid: MouthGrid, look: MouthLook) -> np.ndarray:
    """(COLS,) px of dark cavity between the inner lip rows per grid column; 0 when the
    photo's mouth is closed or smiling over touching teeth."""
    out = np.zeros(grid.points.shape[1])
    for c, _, dark, top, bottom in _cavity_columns(patch, grid, look):
        out[c] = min(float(np.sum(dark)), bottom - top)
    out = _smoothed(out, grid)
    # Judged at the middle of the mouth: a smile's dark corners beside the teeth are no jaw.
    c0, c1 = grid.corner_cols
    mid = (c0 + c1) // 2
    centre = float(np.median(out[mid - 1:mid + 3]))
    if centre < MIN_JAW * grid.mouth_width:
        return np.zeros(grid.points.shape[1])
    return out


def jaw_drop(patch: np.ndarray, grid: MouthGrid, look: MouthLook) -> np.ndarray:
    """(COLS,) px from the first cavity pixel below the upper inner lip row down to the lower
    inner lip row: the part of an open photo's opening that a closed jaw hides (with the
    jaw closed the upper teeth meet the lower lip). 0 where a column shows no cavity."""
    out = np.zeros(grid.points.shape[1])
    for c, ys, dark, _, bottom in _cavity_columns(patch, grid, look):
        first = np.flatnonzero(dark)
        if len(first):
            out[c] = bottom - ys[first[0]]
    return _smoothed(out, grid)


def _lip_edge(column: np.ndarray, inner: float, outer: float, reach: float) -> float:
    """px a lip's inner edge lies beyond the face mesh's inner lip row, at one column.

    On an open mouth the face mesh puts the inner lip rows over the teeth, the cavity and
    its rim next to the lips (they sit where a closed mouth has lip). Going from the lip's
    outer part towards the opening, the lip ends at the first pixel that is far from the
    lip's own colour there. `outer` is above `inner` for the upper lip, below for the lower."""
    height = abs(outer - inner)
    if height < 2.0:
        return 0.0
    step = 1 if outer > inner else -1  # from the inner row towards the outer one
    ys = np.arange(int(round(inner)), int(round(outer)) + step, step)
    ys = ys[(ys >= 0) & (ys < len(column))]
    ref_ys = ys[np.abs(ys - inner) >= 0.7 * height]
    if len(ref_ys) == 0:
        return 0.0
    ref = np.median(column[ref_ys], axis=0)
    y = int(ref_ys[0])
    while (y - step - inner) * step >= 0 and 0 <= y - step < len(column) \
            and np.linalg.norm(column[y - step] - ref) < LIP_COLOUR:
        y -= step
    return float(np.clip(abs(y - 0.5 * step - inner), 0.0, reach * height))


def inner_lip_edges(patch: np.ndarray, grid: MouthGrid, look: MouthLook) -> MouthGrid:
    """The grid with its inner lip rows moved out, over the teeth and cavity pixels the face
    mesh left inside the lips, to where the lip colour starts (never inwards)."""
    img = patch.astype(np.float32)
    p = grid.points
    c0, c1 = grid.corner_cols
    up, down = np.zeros(p.shape[1]), np.zeros(p.shape[1])  # px each row moves out
    for c in range(c0 + 1, c1):
        col = _column(img, p[mesh.ROW_UPPER_INNER, c, 0])
        up[c] = _lip_edge(col, p[mesh.ROW_UPPER_INNER, c, 1], p[mesh.ROW_UPPER_OUTER, c, 1],
                          UPPER_REACH)
        down[c] = _lip_edge(col, p[mesh.ROW_LOWER_INNER, c, 1], p[mesh.ROW_LOWER_OUTER, c, 1],
                            LOWER_REACH)
    # An edge runs along the whole lip: a column where none was found takes its neighbours'
    # (a lip highlight or a tooth gap hides it there), and the row stays smooth.
    moved = p.copy()
    for row, outer, shift, reach in (
            (mesh.ROW_UPPER_INNER, mesh.ROW_UPPER_OUTER, up, UPPER_REACH),
            (mesh.ROW_LOWER_INNER, mesh.ROW_LOWER_OUTER, down, LOWER_REACH)):
        wide = np.maximum(np.maximum(shift, np.roll(shift, 1)), np.roll(shift, -1))
        smooth = np.convolve(wide, [0.25, 0.5, 0.25], mode="same")
        smooth[:c0 + 1] = smooth[c1:] = 0.0
        height = p[outer, :, 1] - p[row, :, 1]
        moved[row, :, 1] = p[row, :, 1] + np.sign(height) * np.minimum(smooth,
                                                                       reach * np.abs(height))
    return replace(grid, points=np.round(moved, 3))


def fit_open_mouth(patch: np.ndarray, grid: MouthGrid, look: MouthLook) -> MouthGrid:
    """The grid for this photo: unchanged for a closed or smiling mouth; for an open one,
    inner lip rows on the lips' real edges and the jaw's opening recorded."""
    jaw = jaw_open(patch, grid, look)
    if not np.any(jaw):
        return grid
    fitted = inner_lip_edges(patch, grid, look)
    return replace(fitted, jaw_open=jaw_open(patch, fitted, look),
                   jaw_drop=jaw_drop(patch, fitted, look))
