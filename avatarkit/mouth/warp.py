"""Piecewise-affine mesh warp: the same drawing a GPU client does with the grid's triangles.

Vertices sit at `points + offsets`, texture coordinates at `points`, two triangles per grid
cell; pixels no triangle covers keep their place. Triangle ids are rasterised once per target
shape, the per-triangle affines solved in one batched call and the source sampled with one
cv2.remap - fast enough to rebuild every frame (the mesh variant's preview, and the sprites
the build draws through the same warp).
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from avatarkit.mouth.mesh import triangles

_TRIANGLES = triangles()


@lru_cache(maxsize=8)
def _identity(w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    xs.setflags(write=False)
    ys.setflags(write=False)
    return xs, ys


def warp_maps(points: np.ndarray, offsets: np.ndarray, size: tuple[int, int]) -> tuple[
        np.ndarray, np.ndarray]:
    """(map_x, map_y) for cv2.remap over an image of `size` (w, h): target -> source pixel.

    `points` and `offsets` are (N, 2) in that image's pixels, row-major grid order."""
    w, h = size
    src = np.asarray(points, np.float64)
    d = (src + offsets)[_TRIANGLES]  # (T, 3, 2) drawn vertices
    x0, x1, x2 = d[:, 0, 0], d[:, 1, 0], d[:, 2, 0]
    y0, y1, y2 = d[:, 0, 1], d[:, 1, 1], d[:, 2, 1]
    det = x0 * (y1 - y2) + x1 * (y2 - y0) + x2 * (y0 - y1)
    ok = np.abs(det) > 1e-6  # degenerate (collapsed) triangles draw nothing
    det = np.where(ok, det, 1.0)
    # inverse of [[x y 1] per vertex] by its adjugate, then [x y 1] @ affine = source point
    inverse = np.stack([
        np.stack([y1 - y2, y2 - y0, y0 - y1], axis=1),
        np.stack([x2 - x1, x0 - x2, x1 - x0], axis=1),
        np.stack([x1 * y2 - x2 * y1, x2 * y0 - x0 * y2, x0 * y1 - x1 * y0], axis=1),
    ], axis=1) / det[:, None, None]
    affine = np.einsum("tij,tjk->tik", inverse, src[_TRIANGLES])  # (T, 3, 2)
    # Index 0 is the identity (pixels no triangle covers); triangle k is index k + 1.
    coef = np.zeros((len(_TRIANGLES) + 1, 6), np.float32)
    coef[0] = (1, 0, 0, 0, 1, 0)
    coef[1:] = affine.transpose(0, 2, 1).reshape(-1, 6)
    ids = np.zeros((h, w), np.int32)
    vertices = np.round(d * 16).astype(np.int32)
    for k in _drawing_order(src, det, ok):
        cv2.fillConvexPoly(ids, vertices[k], int(k) + 1, lineType=cv2.LINE_8, shift=4)
    xs, ys = _identity(w, h)
    c = coef[ids]  # (h, w, 6)
    map_x = c[..., 0] * xs + c[..., 1] * ys + c[..., 2]
    map_y = c[..., 3] * xs + c[..., 4] * ys + c[..., 5]
    return map_x, map_y


#: A triangle drawn at under this fraction of its source area has collapsed (lips meeting
#: over an opening): it is drawn first, so its neighbours cover the pixels they share.
COLLAPSED = 0.25


def _drawing_order(src: np.ndarray, det: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Triangle indices to rasterise, later ones winning shared pixels: collapsed triangles
    first, then the rest in grid order.

    A collapsed triangle maps a sliver to a tall stretch of the source: where closed lips
    meet over a photo's open mouth, the whole opening (teeth, cavity) squeezed into a
    fraction of a pixel. Rasterised last, its edge pixels showed that stretch's samples as
    light specks along the closed seam; drawn first, the lips on either side cover them."""
    s = src[_TRIANGLES]
    det_src = (s[:, 0, 0] * (s[:, 1, 1] - s[:, 2, 1]) + s[:, 1, 0] * (s[:, 2, 1] - s[:, 0, 1])
               + s[:, 2, 0] * (s[:, 0, 1] - s[:, 1, 1]))
    collapsed = np.abs(det) < COLLAPSED * np.abs(det_src)
    drawn = np.flatnonzero(ok)
    return np.concatenate([drawn[collapsed[drawn]], drawn[~collapsed[drawn]]])


def warp_image(image: np.ndarray, points: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The image drawn through the deformed mesh (bilinear, edges replicated)."""
    if not np.any(offsets):
        return image.copy()
    h, w = image.shape[:2]
    map_x, map_y = warp_maps(points, offsets, (w, h))
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
