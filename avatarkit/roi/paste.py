"""Paste-back: the model's S x S patch into the frame without a visible box.

Wav2Lip's own inference pastes the whole resized patch as a hard rectangle, which users see as
a box around the mouth whose colour and sharpness differ from the face. Here (on the same
frame box, warp and blend as every other overlay: avatarkit/mouth/place.py):

- the patch goes back through the exact inverse of the crop transform (one warp, bicubic);
- its alpha is the avatar's feathered `mask_mouth.png` (placed by the same track affine as
  every other overlay) times a window that fades out inside the face box, so pixels the model
  never drew (below the box) are never used and the alpha is zero long before any edge;
- colour matching: per channel, the patch's mean and standard deviation in the mask's fade
  ring are mapped onto the frame's in the same ring (the std ratio bounded to [0.5, 2]), so a
  model that shifts tone or contrast blends in instead of showing a patch.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from avatarkit.mouth.place import blend_box, frame_box, roi_to_frame, shifted, to_box
from avatarkit.mouth.roi import Roi
from avatarkit.roi.faces import FaceBox, model_to_frame

BOX_FEATHER = 0.08  # of S: the box window fades over this much inside every box edge
RING = (0.05, 0.6)  # alpha range that counts as the blend ring for colour statistics
STD_RATIO = (0.5, 2.0)


@dataclass(frozen=True)
class PasteGeometry:
    """Everything about an avatar that paste-back needs, fixed per avatar and model size."""

    roi: Roi
    mask: np.ndarray  # (roi.h, roi.w) float32 alpha in [0, 1] (mask_mouth.png / 255)
    box: FaceBox
    size: int  # S
    box_window: np.ndarray  # (S, S) float32: 1 inside, fading to 0 at the box edges


def box_window(size: int) -> np.ndarray:
    """Smooth window over the S x S patch: 1 in the middle, 0 on the border."""
    ramp = np.clip((np.arange(size) + 0.5) / max(BOX_FEATHER * size, 1.0), 0.0, 1.0)
    edge = np.minimum(ramp, ramp[::-1])
    edge = edge * edge * (3 - 2 * edge)
    return np.outer(edge, edge).astype(np.float32)


def paste_geometry(roi: Roi, mask: np.ndarray, box: FaceBox, size: int) -> PasteGeometry:
    m = np.asarray(mask, dtype=np.float32)
    if m.max() > 1.0:
        m = m / 255.0
    return PasteGeometry(roi, m, box, size, box_window(size))


def colour_match(patch: np.ndarray, target: np.ndarray, ring: np.ndarray) -> np.ndarray:
    """Map patch statistics onto target's inside `ring` (bool), per channel; float arrays."""
    if ring.sum() < 16:
        return patch
    p, t = patch[ring], target[ring]
    mp, mt = p.mean(axis=0), t.mean(axis=0)
    ratio = np.clip(t.std(axis=0) / np.maximum(p.std(axis=0), 1e-3), *STD_RATIO)
    return (patch - mp) * ratio + mt


def paste_box(geom: PasteGeometry, track_affine: np.ndarray,
              shape: tuple[int, ...]) -> tuple[int, int, int, int] | None:
    """Frame box (x0, y0, x1, y1) the overlay can touch: the tracked ROI (None: off-frame)."""
    r = geom.roi
    box = frame_box(roi_to_frame(track_affine, r.x, r.y), (r.w, r.h), (shape[1], shape[0]))
    return box if box[2] > box[0] and box[3] > box[1] else None


def blend_alpha(geom: PasteGeometry, track_affine: np.ndarray,
                box: tuple[int, int, int, int]) -> np.ndarray:
    """(h, w) float32 alpha over the frame box: tracked mask x box window."""
    r = geom.roi
    mask = to_box(geom.mask, roi_to_frame(track_affine, r.x, r.y), box, fill_edge=False)
    window = to_box(geom.box_window, model_to_frame(geom.box, track_affine, geom.size), box,
                    fill_edge=False)
    return mask * window


def paste(frame_rgb: np.ndarray, patch_bgr: np.ndarray, track_affine: np.ndarray,
          geom: PasteGeometry, *, match_colour: bool = True) -> np.ndarray:
    """A copy of the RGB uint8 frame with the model patch ((3, S, S) BGR in [0, 1]) blended in:
    `mouth.place` with a bicubic warp of the patch and its colour matched to the frame."""
    box = paste_box(geom, track_affine, frame_rgb.shape)
    if box is None:
        return frame_rgb.copy()
    x0, y0, x1, y1 = box
    alpha = blend_alpha(geom, track_affine, box)
    patch_rgb = np.ascontiguousarray(patch_bgr[::-1].transpose(1, 2, 0)) * 255.0
    warped = to_box(patch_rgb, model_to_frame(geom.box, track_affine, geom.size), box,
                    interpolation=cv2.INTER_CUBIC)
    if match_colour:
        region = frame_rgb[y0:y1, x0:x1].astype(np.float32)
        warped = colour_match(warped, region, (alpha > RING[0]) & (alpha < RING[1]))
    return blend_box(frame_rgb, box, np.clip(warped, 0, 255), alpha)


def mouth_patch(frame_rgb: np.ndarray, patch_bgr: np.ndarray, track_affine: np.ndarray,
                geom: PasteGeometry, *, match_colour: bool = True) -> np.ndarray:
    """(roi.h, roi.w, 4) RGBA uint8 in photo-ROI coordinates, for clients that composite.

    The same contract as an atlas sprite: the client draws it at the ROI transformed by the
    frame's track affine, with its alpha. Colour is matched against `frame_rgb` (the idle
    frame the patch belongs to).
    """
    r = geom.roi
    # photo-ROI pixels <- model pixels: ROI-local = photo - (roi.x, roi.y)
    model_to_roi = shifted(cv2.invertAffineTransform(geom.box.to_model(geom.size)), r.x, r.y)
    patch_rgb = np.ascontiguousarray(patch_bgr[::-1].transpose(1, 2, 0)).astype(np.float32)
    warped = cv2.warpAffine(patch_rgb * 255.0, model_to_roi, (r.w, r.h), flags=cv2.INTER_CUBIC,
                            borderMode=cv2.BORDER_REPLICATE)
    window = cv2.warpAffine(geom.box_window, model_to_roi, (r.w, r.h), flags=cv2.INTER_LINEAR,
                            borderValue=0)
    alpha = geom.mask * window
    if match_colour:
        under = cv2.warpAffine(frame_rgb, roi_to_frame(track_affine, r.x, r.y), (r.w, r.h),
                               flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        warped = colour_match(warped, under, (alpha > RING[0]) & (alpha < RING[1]))
    rgba = np.dstack([np.clip(warped, 0, 255), alpha * 255.0])
    return np.clip(np.rint(rgba), 0, 255).astype(np.uint8)
