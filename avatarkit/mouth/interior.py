"""What shows where the lips part: cavity, teeth and tongue, synthesised from the photo.

The upper teeth belong to the upper jaw, so they stay where the photo has them (its own teeth
when it shows them, synthesised ones otherwise); the lower teeth ride on the lower lip; the
cavity is a dark shade of the person's own lip colour, darkest deep inside.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from avatarkit.mouth import mesh
from avatarkit.mouth.mesh import MouthGrid
from avatarkit.mouth.shapes import MouthShape, opening_profile

TONGUE_RGB = np.array([176.0, 82.0, 88.0])
TEETH_RGB = np.array([1.0, 0.94, 0.84])
LOWER_TEETH_SHADE = np.array([0.80, 0.74, 0.68])  # in the lower lip's shadow, warmer
CAVITY_SHADE = np.array([0.42, 0.27, 0.27])  # of the lip colour: dark, red-brown


@dataclass(frozen=True)
class MouthLook:
    """Colours and textures of this person's mouth, measured once from the photo."""

    lip_rgb: np.ndarray  # (3,) float
    teeth_rgb: np.ndarray  # (3,) float, for synthesised teeth
    photo_teeth: bool  # the photo shows the upper teeth between the lips


def polygon_alpha(polygon: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of a polygon given in pixel coordinates."""
    w, h = size
    canvas = np.zeros((h, w), np.uint8)
    if len(polygon) >= 3:
        cv2.fillPoly(canvas, [np.round(polygon * 16).astype(np.int32)], 255,
                     lineType=cv2.LINE_AA, shift=4)
    return canvas.astype(np.float32) / 255.0


def row_curve(points: np.ndarray, row: int, cols: slice, w: int) -> np.ndarray:
    """The y of a grid row at every pixel column of the ROI (piecewise linear)."""
    xs, ys = points[row, cols, 0], points[row, cols, 1]
    return np.interp(np.arange(w), xs, ys)


def measure_look(patch: np.ndarray, grid: MouthGrid) -> MouthLook:
    """Lip colour, whether the photo shows teeth, and a teeth colour that fits its light."""
    h, w = patch.shape[:2]
    p = grid.points
    c0, c1 = grid.corner_cols
    cols = slice(c0, c1 + 1)

    def band(top: int, bottom: int) -> np.ndarray:
        return np.clip(polygon_alpha(np.concatenate(
            [p[top, cols], p[bottom, cols][::-1]]), (w, h)) - 0.5, 0, 1) > 0

    lips = band(mesh.ROW_UPPER_OUTER, mesh.ROW_UPPER_INNER) | band(mesh.ROW_LOWER_INNER,
                                                                   mesh.ROW_LOWER_OUTER)
    img = patch.astype(np.float32)
    lip_rgb = np.median(img[lips], axis=0) if lips.sum() > 4 else np.array([150.0, 80.0, 80.0])
    gap = band(mesh.ROW_UPPER_INNER, mesh.ROW_LOWER_INNER)
    luminance = img @ np.array([0.299, 0.587, 0.114])
    photo_teeth = False
    if gap.sum() >= max(6, 0.002 * w * h):
        gap_lum = np.percentile(luminance[gap], 75)
        lip_lum = float(lip_rgb @ np.array([0.299, 0.587, 0.114]))
        photo_teeth = bool(gap_lum > lip_lum + 25)
    # Synthesised teeth take their brightness from the skin around them, not from the
    # brightest thing in view (a white collar would make them glow).
    # A touch of the skin's own hue keeps them from looking cold next to warm skin.
    skin = float(np.median(luminance))
    bright = float(np.clip(0.5 * skin + 130, 170, 240))
    skin_rgb = np.median(img.reshape(-1, 3), axis=0)
    teeth_rgb = 0.72 * TEETH_RGB * bright + 0.28 * skin_rgb
    return MouthLook(lip_rgb=lip_rgb, teeth_rgb=teeth_rgb, photo_teeth=photo_teeth)


def _tooth_gaps(xs: np.ndarray, cx: float, tooth_w: float) -> np.ndarray:
    """Multiplicative shading with thin darker lines between teeth, per pixel column."""
    phase = np.abs(((xs - cx) / tooth_w + 0.5) % 1.0 - 0.5) * tooth_w  # px from a tooth edge
    return 0.88 + 0.12 * np.clip(phase / 0.9, 0, 1)


def render_interior(patch: np.ndarray, grid: MouthGrid, target: np.ndarray, shape: MouthShape,
                    look: MouthLook) -> tuple[np.ndarray, np.ndarray]:
    """(RGB float image, alpha) of the mouth interior for a target grid position."""
    h, w = patch.shape[:2]
    c0, c1 = grid.corner_cols
    cols = slice(c0, c1 + 1)
    mw = grid.mouth_width
    alpha = polygon_alpha(mesh.opening_polygon(target, grid.corner_cols), (w, h))
    if alpha.max() == 0:
        return np.zeros((h, w, 3), np.float32), alpha

    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    up_t = row_curve(target, mesh.ROW_UPPER_INNER, cols, w)[None, :]
    lo_t = row_curve(target, mesh.ROW_LOWER_INNER, cols, w)[None, :]
    up_s = row_curve(grid.points, mesh.ROW_UPPER_INNER, cols, w)[None, :]
    lo_s = row_curve(grid.points, mesh.ROW_LOWER_INNER, cols, w)[None, :]
    cx_t = 0.5 * (target[mesh.ROW_UPPER_INNER, c0, 0] + target[mesh.ROW_UPPER_INNER, c1, 0])
    half_t = 0.5 * (target[mesh.ROW_UPPER_INNER, c1, 0] - target[mesh.ROW_UPPER_INNER, c0, 0])
    prof = opening_profile((xs[0] - cx_t) / max(half_t, 1.0), 2.5)[None, :]

    # Cavity: the lip colour in deep shadow, darker towards the middle of the opening.
    depth = np.clip(np.minimum(ys - up_t, lo_t - ys) / (0.08 * mw), 0, 1)
    lip = look.lip_rgb.astype(np.float32)
    out = np.empty((h, w, 3), np.float32)
    out[:] = lip * CAVITY_SHADE
    out *= (1.0 - 0.45 * depth)[..., None]

    def paint(layer_rgb: np.ndarray, layer_alpha: np.ndarray) -> None:
        a = np.clip(layer_alpha, 0, 1)[..., None]
        out[:] = out * (1 - a) + layer_rgb * a

    tongue = (TONGUE_RGB * 0.55 + lip * 0.45).astype(np.float32)
    if shape.tongue == "low":
        bottom = lo_t - 0.01 * mw
        reach = 0.09 * mw * prof
        paint(np.broadcast_to(tongue * 0.7, out.shape), np.clip((ys - (bottom - reach)) / 1.5, 0, 1)
              * (reach > 0.5))
    elif shape.tongue == "tip_up":
        tip_y = up_t + 0.10 * mw
        r = np.hypot((xs - cx_t) / (0.20 * mw), np.maximum(tip_y - ys, 0) / (0.06 * mw))
        paint(np.broadcast_to(tongue * 0.9, out.shape), np.clip((1.0 - r) * 4, 0, 1))

    teeth_rgb = look.teeth_rgb.astype(np.float32)
    gaps = _tooth_gaps(xs[0], cx_t, 0.115 * mw)[None, :, None]
    corner_shade = (0.55 + 0.45 * prof)[..., None]
    if shape.teeth_lower:
        top = lo_t - 0.05 * mw * prof
        a = np.clip(ys - top, 0, 1) * (prof > 0.15)
        paint((teeth_rgb * LOWER_TEETH_SHADE * gaps * corner_shade).astype(np.float32), a)

    # Upper teeth: attached to the skull, so they stay at the photo's position.
    teeth_len = 0.12 * mw if not shape.teeth_fill else 0.5 * mw
    teeth_bottom = up_s + teeth_len * np.sqrt(prof)
    if look.photo_teeth:
        photo_gap = np.maximum(lo_s - up_s, 0)
        teeth_bottom = np.maximum(teeth_bottom if shape.teeth_fill else up_s, up_s + photo_gap)
        src_y = np.clip(ys, up_s + 0.5, np.maximum(up_s + photo_gap - 0.5, up_s + 0.5))
        teeth_img = cv2.remap(patch.astype(np.float32), xs, src_y.astype(np.float32),
                              cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        fade = np.clip((teeth_bottom - ys) / max(0.03 * mw, 1.0), 0, 1)
        paint(teeth_img, fade)
    else:
        under_lip = np.clip((ys - up_t) / max(0.03 * mw, 1.0), 0, 1)
        shade = (0.72 + 0.28 * under_lip)[..., None]
        a = np.clip(teeth_bottom - ys, 0, 1) * (prof > 0.1)
        paint((teeth_rgb * gaps * corner_shade * shade).astype(np.float32), a)

    if shape.tongue == "between":
        edge = up_s + 0.10 * mw
        r = np.hypot((xs - cx_t) / (0.22 * mw), (ys - edge) / (0.055 * mw))
        paint(np.broadcast_to(tongue, out.shape), np.clip((1.0 - r) * 4, 0, 1))
    return np.clip(out, 0, 255), alpha
