"""Piecewise-affine mesh warp: the same drawing a GPU client does with the grid's triangles.

Vertices sit at `points + offsets`, texture coordinates at `points`. We rasterise triangle ids
once per target shape, then sample the source with one cv2.remap.
"""

from __future__ import annotations

import cv2
import numpy as np

from avatarkit.mouth.mesh import triangles

_TRIANGLES = triangles()


def warp_maps(points: np.ndarray, offsets: np.ndarray, size: tuple[int, int]) -> tuple[
        np.ndarray, np.ndarray]:
    """Sampling maps (map_x, map_y) for cv2.remap: target pixel -> source pixel.

    `points` and `offsets` are (N, 2) in pixels of an image of `size` (w, h). Pixels no
    triangle covers keep their own position.
    """
    w, h = size
    src = points.astype(np.float64)
    dst = src + offsets
    ids = np.full((h, w), -1, dtype=np.int32)
    affines = np.zeros((len(_TRIANGLES), 2, 3), dtype=np.float64)
    for k, tri in enumerate(_TRIANGLES):
        d = dst[tri]
        area = (d[1, 0] - d[0, 0]) * (d[2, 1] - d[0, 1]) - (d[2, 0] - d[0, 0]) * (d[1, 1] - d[0, 1])
        if abs(area) < 1e-6:
            continue
        affines[k] = cv2.getAffineTransform(d.astype(np.float32), src[tri].astype(np.float32))
        cv2.fillConvexPoly(ids, np.round(d * 16).astype(np.int32), int(k), lineType=cv2.LINE_8,
                           shift=4)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    covered = ids >= 0
    a = affines[np.where(covered, ids, 0)].astype(np.float32)
    map_x = np.where(covered, a[..., 0, 0] * xs + a[..., 0, 1] * ys + a[..., 0, 2], xs)
    map_y = np.where(covered, a[..., 1, 0] * xs + a[..., 1, 1] * ys + a[..., 1, 2], ys)
    return map_x.astype(np.float32), map_y.astype(np.float32)


def warp_image(image: np.ndarray, points: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The image drawn through the deformed mesh (bilinear, edges replicated)."""
    if not np.any(offsets):
        return image.copy()
    h, w = image.shape[:2]
    map_x, map_y = warp_maps(points, offsets, (w, h))
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
