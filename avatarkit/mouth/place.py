"""Put a mouth patch into an idle frame: through the frame's track transform, blended through
the feathered mask. Every mouth variant ends here (sprites, and the ONNX ROI model too).

Only the frame's box around the transformed ROI is touched; outside it the frame is the idle
frame byte for byte, and where the alpha is zero so is the inside.
"""

from __future__ import annotations

import math

import cv2
import numpy as np


def frame_box(affine: np.ndarray, roi_size: tuple[int, int],
              frame_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the pixels of the frame a ROI-sized patch can reach through `affine`
    (2x3, ROI pixels -> frame pixels), clipped to the frame. Empty when x1 <= x0."""
    w, h = roi_size
    corners = np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]], np.float64)
    p = corners @ affine[:, :2].T + affine[:, 2]
    fw, fh = frame_size
    x0, y0 = max(0, math.floor(p[:, 0].min())), max(0, math.floor(p[:, 1].min()))
    x1, y1 = min(fw, math.ceil(p[:, 0].max()) + 1), min(fh, math.ceil(p[:, 1].max()) + 1)
    return x0, y0, x1, y1


def roi_to_frame(track_affine: np.ndarray, x: float, y: float) -> np.ndarray:
    """2x3 affine from pixels of a ROI at (x, y) of the photo to frame pixels, given the
    frame's track affine (photo -> frame)."""
    m = np.asarray(track_affine, np.float64).reshape(2, 3)
    out = m.copy()
    out[:, 2] += m[:, :2] @ (x, y)
    return out


def shifted(affine: np.ndarray, x0: int, y0: int) -> np.ndarray:
    """The same affine with its target origin moved to (x0, y0) (for working in a box)."""
    m = np.array(affine, np.float64)
    m[:, 2] -= (x0, y0)
    return m


def to_box(image: np.ndarray, affine: np.ndarray, box: tuple[int, int, int, int], *,
           fill_edge: bool = True, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """A ROI-local image (float32) resampled into the frame box through `affine`.

    `fill_edge` replicates the border (colour layers); otherwise outside is 0 (alpha)."""
    x0, y0, x1, y1 = box
    return cv2.warpAffine(np.asarray(image, np.float32), shifted(affine, x0, y0),
                          (x1 - x0, y1 - y0), flags=interpolation,
                          borderMode=cv2.BORDER_REPLICATE if fill_edge else cv2.BORDER_CONSTANT)


def blend_box(frame: np.ndarray, box: tuple[int, int, int, int], rgb: np.ndarray,
              alpha: np.ndarray) -> np.ndarray:
    """A copy of `frame` with the box replaced by `frame * (1 - alpha) + rgb * alpha`."""
    x0, y0, x1, y1 = box
    out = frame.copy()
    region = out[y0:y1, x0:x1].astype(np.float32)
    region += (np.asarray(rgb, np.float32) - region) * alpha[..., None]
    out[y0:y1, x0:x1] = (region + 0.5).astype(np.uint8)  # values stay within [0, 255]
    return out


def place_patch(frame: np.ndarray, patch: np.ndarray, alpha: np.ndarray,
                affine: np.ndarray) -> np.ndarray:
    """`frame` (H, W, 3 uint8) with a ROI-sized patch drawn into it.

    patch: (h, w, 3) RGB or (h, w, 4) RGBA (its alpha multiplies `alpha`), uint8 or float in
    0..255. alpha: (h, w) float in 0..1, usually the avatar's mask / 255 times an opacity.
    affine: 2x3 ROI-local -> frame pixels (`Avatar.roi_affine(index)`). Returns a new frame.
    """
    h, w = patch.shape[:2]
    box = frame_box(affine, (w, h), (frame.shape[1], frame.shape[0]))
    if box[2] <= box[0] or box[3] <= box[1]:
        return frame.copy()
    alpha = np.asarray(alpha, np.float32)
    if patch.shape[2] == 4:
        alpha = alpha * (patch[..., 3].astype(np.float32) / 255.0)
        patch = patch[..., :3]
    rgb = to_box(patch, affine, box)
    a = to_box(alpha, affine, box, fill_edge=False)
    return blend_box(frame, box, rgb, a)
