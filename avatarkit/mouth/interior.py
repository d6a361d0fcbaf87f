"""What shows where the lips part: cavity, teeth and tongue, synthesised from the photo.

The upper teeth belong to the upper jaw, so they stay where the photo has them (its own teeth
when it shows them, synthesised ones otherwise: individual teeth narrowing towards the
corners, a gum line above them that shows when the upper lip rises, shaded by the photo's
side light); the lower teeth ride on the lower lip and show on the open vowel (AI) and E, CH;
the cavity is a dark shade of the person's own lip colour, darkest deep inside and towards
the back; the tongue lies low on AI and O, its tip shows under the upper teeth on L and
between the teeth on TH.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from avatarkit.mouth import mesh
from avatarkit.mouth.mesh import MouthGrid
from avatarkit.mouth.shapes import MouthShape, opening_profile

TONGUE_RGB = np.array([176.0, 82.0, 88.0])
TEETH_RGB = np.array([1.0, 0.95, 0.86])  # warm off-white (enamel over yellowish dentine)
SKIN_TINT = 0.18  # share of the skin's own colour cast the synthesised teeth take on
LOWER_TEETH_SHADE = np.array([0.90, 0.85, 0.80])  # in the lower lip's shadow, warmer
#: Tooth edges from the mouth centre to a corner, in half mouth widths: incisors wide,
#: teeth narrowing towards the corners as the dental arch turns away from the camera.
TOOTH_EDGES = np.array([0.0, 0.23, 0.42, 0.58, 0.72, 0.84, 0.94, 1.04, 1.2])
SHADOW_GAMMA = np.array([0.9, 1.0, 1.2])  # shade**gamma per channel: warm, not grey, shadows
LUMA = np.array([0.299, 0.587, 0.114])
CAVITY_DARK = 0.6  # of the lip luminance: darker pixels between the lips are the cavity
CAVITY_SHADE = np.array([0.42, 0.27, 0.27])  # of the lip colour: dark, red-brown
GUM = 0.03  # gum band above synthesised upper teeth, in mouth widths
GUM_SHADE = np.array([1.05, 0.78, 0.80])  # of the lip colour: pinker, a little lighter


@dataclass(frozen=True)
class MouthLook:
    """Colours and textures of this person's mouth, measured once from the photo."""

    lip_rgb: np.ndarray  # (3,) float
    teeth_rgb: np.ndarray  # (3,) float, for synthesised teeth
    photo_teeth: bool  # the photo shows the upper teeth between the lips
    light: float = 0.0  # side light across the mouth: + = brighter on the image right, -1..1


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
    luminance = img @ LUMA
    photo_teeth = False
    if gap.sum() >= max(6, 0.002 * w * h):
        gap_lum = np.percentile(luminance[gap], 75)
        lip_lum = float(lip_rgb @ LUMA)
        photo_teeth = bool(gap_lum > lip_lum + 25)
    # The skin right around the lips (above the upper lip, between the lower lip and the
    # jaw), not the whole ROI: a collar or the background would skew both colour and light.
    skin_px = band(1, mesh.ROW_UPPER_OUTER) | band(mesh.ROW_LOWER_OUTER, mesh.ROW_JAW)
    skin_px = skin_px if skin_px.sum() > 8 else np.ones((h, w), bool)
    skin_rgb = np.median(img[skin_px], axis=0)
    if photo_teeth:
        # The photo's own teeth: the brighter half of what shows between the lips.
        bright_gap = gap & (luminance >= np.percentile(luminance[gap], 50))
        teeth_rgb = np.median(img[bright_gap], axis=0)
    else:
        teeth_rgb = synth_teeth_rgb(skin_rgb)
    # The photo's light: the skin beside the mouth, image-left against image-right.
    xs = np.arange(w)[None, :]
    left_px = skin_px & (xs < p[mesh.ROW_UPPER_INNER, c0, 0])
    right_px = skin_px & (xs > p[mesh.ROW_UPPER_INNER, c1, 0])
    light = 0.0
    if left_px.sum() > 8 and right_px.sum() > 8:
        lo, hi = float(np.median(luminance[left_px])), float(np.median(luminance[right_px]))
        light = float(np.clip((hi - lo) / max(hi + lo, 1.0) * 2.0, -1.0, 1.0))
    return MouthLook(lip_rgb=lip_rgb, teeth_rgb=teeth_rgb, photo_teeth=photo_teeth, light=light)


def upper_teeth_height(patch: np.ndarray, upper: np.ndarray, look: MouthLook) -> np.ndarray:
    """(1, w) px from the upper inner lip (`upper`, (1, w)) down to the first cavity pixel:
    how much of an open photo's opening is its upper teeth (the rest is cavity, tongue and
    lower teeth, which must not be copied as upper teeth)."""
    h = patch.shape[0]
    ys = np.arange(h, dtype=np.float32)[:, None]
    dark = (patch.astype(np.float32) @ LUMA) < CAVITY_DARK * float(look.lip_rgb @ LUMA)
    below = dark & (ys >= upper)
    first = np.where(below.any(axis=0), below.argmax(axis=0), h).astype(np.float32)
    return np.maximum(first[None, :] - upper, 0.0)


def synth_teeth_rgb(skin_rgb: np.ndarray) -> np.ndarray:
    """Teeth for a photo that shows none: warm off-white in the photo's light.

    Brightness follows the skin's (the exposure and light of this photo: teeth brighter
    than the skin, never glowing in a dark photo); the hue takes a little of the skin's own
    cast, so the teeth sit in the same light instead of looking pasted in from another photo.
    """
    skin_rgb = np.asarray(skin_rgb, np.float64)
    skin_lum = float(skin_rgb @ LUMA)
    cast = skin_rgb / max(skin_lum, 1.0)  # the skin's colour at unit luminance
    tint = TEETH_RGB * (1.0 + SKIN_TINT * (cast - 1.0))
    bright = float(np.clip(0.45 * skin_lum + 125.0, 160.0, 235.0))
    return tint / float(tint @ LUMA) * bright


@dataclass(frozen=True)
class ToothRow:
    """Per pixel column of a row of synthesised teeth: shading and the tip outline."""

    shade: np.ndarray  # (w,) multiplicative brightness: per-tooth relief, gaps, corners
    tip_lift: np.ndarray  # (w,) px the biting edge rises near each tooth's sides


def tooth_row(xs: np.ndarray, cx: float, half: float, scale: float = 1.0) -> ToothRow:
    """Teeth laid out from the centre (`scale` < 1 for the narrower lower incisors)."""
    u = np.abs(xs - cx) / max(half, 1.0)
    edges = TOOTH_EDGES * scale
    pos = np.interp(u, edges, np.arange(len(edges)))  # tooth index + phase across it
    phase = pos % 1.0
    widths = np.diff(edges)[np.minimum(pos.astype(int), len(edges) - 2)] * half
    from_edge = np.minimum(phase, 1.0 - phase) * widths  # px to the nearest tooth edge
    relief = 1.0 - 0.07 * (2.0 * phase - 1.0) ** 2  # each tooth a little convex
    # A soft dark line between teeth; faint where teeth are only a few pixels wide, or the
    # row turns into a picket fence.
    # Only the front teeth (incisors, canines) show clear gaps; further back they blur.
    visible = np.clip((widths - 2.5) / 3.0, 0, 1) * np.clip(1.0 - u / 0.7, 0, 1)
    gap = 1.0 - 0.18 * visible * np.exp(-(from_edge / 0.6) ** 2)
    corner = 0.35 + 0.65 * opening_profile(u, 2.0)  # the arch turns into shadow
    lift = 0.9 * np.clip(1.0 - from_edge / np.maximum(0.3 * widths, 0.5), 0, 1) ** 2
    return ToothRow(shade=relief * gap * corner, tip_lift=lift * np.clip(widths / 4.0, 0, 1))


def shaded(rgb: np.ndarray, shade: np.ndarray) -> np.ndarray:
    """rgb (3,) times a shade map (..., ) with warm shadows: blue darkens first."""
    s = np.clip(shade, 1e-3, None)[..., None]
    return (rgb * s ** SHADOW_GAMMA).astype(np.float32)


Layers = dict[str, tuple[np.ndarray, np.ndarray]]


def render_interior(patch: np.ndarray, grid: MouthGrid, target: np.ndarray, shape: MouthShape,
                    look: MouthLook, layers: Layers | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(RGB float image, alpha) of the mouth interior for a target grid position.

    With `layers`, each painted part is also recorded there by name ("cavity_rim", "tongue_low",
    "tongue_tip", "lower_teeth", "upper_teeth", "tongue_between") as (RGB (h, w, 3), alpha
    (h, w)) over the whole ROI, before clipping to the opening: the mesh variant's layers.
    """
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
    # The upper teeth are fixed to the skull: laid out on the photo's mouth, whatever the
    # lips do (rounded lips cover the outer teeth rather than squeezing them).
    x0_s, x1_s = grid.points[mesh.ROW_UPPER_INNER, c0, 0], grid.points[mesh.ROW_UPPER_INNER, c1, 0]
    cx_s, half_s = 0.5 * (x0_s + x1_s), 0.5 * (x1_s - x0_s)
    prof_s = opening_profile((xs[0] - cx_s) / max(half_s, 1.0), 2.5)[None, :]

    # The photo's side light across the mouth (the far side of the arch in its shadow).
    side = 1.0 + 0.5 * look.light * np.clip((xs[0] - cx_t) / max(half_t, 1.0), -1, 1)[None, :]
    # Cavity: the lip colour in deep shadow, darker towards the middle of the opening and
    # towards the back (the throat, the middle of the mouth), lighter at the corners where
    # the cheeks' inside catches light.
    depth = np.clip(np.minimum(ys - up_t, lo_t - ys) / (0.08 * mw), 0, 1)
    back = opening_profile((xs[0] - cx_t) / max(half_t, 1.0), 2.0)[None, :]
    lip = look.lip_rgb.astype(np.float32)
    out = np.empty((h, w, 3), np.float32)
    out[:] = lip * CAVITY_SHADE
    out *= ((1.0 - 0.45 * depth) * (1.15 - 0.35 * back * depth) * side)[..., None]
    if layers is not None:  # the lighter rim above the lower lip, which moves with the jaw
        rim = 1.0 - np.clip((lo_t - ys) / (0.08 * mw), 0, 1)
        layers["cavity_rim"] = (np.broadcast_to(lip * CAVITY_SHADE, out.shape).astype(np.float32),
                                np.broadcast_to(rim, out.shape[:2]).astype(np.float32))

    def paint(layer_rgb: np.ndarray, layer_alpha: np.ndarray, name: str) -> None:
        a = np.clip(layer_alpha, 0, 1)[..., None]
        out[:] = out * (1 - a) + layer_rgb * a
        if layers is not None:
            layers[name] = (np.broadcast_to(layer_rgb, out.shape).astype(np.float32),
                            np.broadcast_to(a[..., 0], out.shape[:2]).astype(np.float32))

    tongue = (TONGUE_RGB * 0.55 + lip * 0.45).astype(np.float32)
    # Upper teeth: attached to the skull, so they stay at the photo's position.
    teeth_len = 0.12 * mw if not shape.teeth_fill else 0.5 * mw
    if shape.tongue == "tip_up":  # the raised tip shows under shorter-looking upper teeth
        teeth_len = 0.07 * mw
    teeth_bottom = up_s + teeth_len * np.sqrt(prof_s)
    if shape.tongue == "low":
        # The tongue lies on the floor of the mouth: its rounded back catches the light from
        # the opening, its sides and the groove down its middle fall into shadow.
        bottom = lo_t - 0.01 * mw
        reach = 0.12 * mw * prof
        top = bottom - reach
        across = np.clip(1.0 - np.abs(xs - cx_t) / max(0.8 * half_t, 1.0), 0, 1)
        ridge = np.clip(1.0 - np.abs(ys - (top + 0.35 * reach)) / np.maximum(0.5 * reach, 1.0),
                        0, 1)
        groove = 1.0 - 0.18 * np.exp(-((xs - cx_t) / max(0.05 * mw, 1.0)) ** 2)
        lit = (0.55 + 0.35 * ridge * np.sqrt(across)) * groove * side
        paint(tongue * lit[..., None], np.clip((ys - top) / 1.5, 0, 1) * (reach > 0.5),
              "tongue_low")
    elif shape.tongue == "tip_up":
        # Tip raised behind the upper teeth: it shows below their edge, rounded, lit on top.
        tip_y = np.minimum(teeth_bottom, lo_t - 0.04 * mw) + 0.02 * mw
        r = np.hypot((xs - cx_t) / (0.22 * mw), np.maximum(tip_y - ys, 0) / (0.05 * mw))
        lit = (0.95 - 0.3 * np.clip((ys - tip_y) / (0.08 * mw), 0, 1)) * side
        paint(tongue * lit[..., None], np.clip((1.0 - r) * 4, 0, 1), "tongue_tip")

    teeth_rgb = look.teeth_rgb.astype(np.float32)
    if shape.teeth_lower:
        row = tooth_row(xs[0], cx_t, half_t, scale=0.85)
        top = lo_t - 0.07 * mw * prof + row.tip_lift[None, :]
        # In the lower lip's shadow, lit from above: brighter at the biting edge.
        lit = 1.0 - 0.25 * np.clip((ys - top) / max(0.05 * mw, 1.0), 0, 1)
        # Only the front of the lower arch shows; towards the corners it falls behind the lip.
        a = np.clip(ys - top, 0, 1) * np.clip((prof - 0.7) / 0.15, 0, 1)
        paint(shaded(teeth_rgb * LOWER_TEETH_SHADE, row.shade[None, :] * lit * side), a,
              "lower_teeth")

    if look.photo_teeth:
        photo_gap = np.maximum(lo_s - up_s, 0)
        if np.any(grid.jaw_open):  # a photo mid-word: its upper teeth end at the cavity
            photo_gap = np.minimum(photo_gap, upper_teeth_height(patch, up_s, look))
        teeth_bottom = np.maximum(teeth_bottom if shape.teeth_fill else up_s, up_s + photo_gap)
        src_y = np.clip(ys, up_s + 0.5, np.maximum(up_s + photo_gap - 0.5, up_s + 0.5))
        teeth_img = cv2.remap(patch.astype(np.float32), xs, src_y.astype(np.float32),
                              cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        fade = np.clip((teeth_bottom - ys) / max(0.03 * mw, 1.0), 0, 1)
        paint(teeth_img, fade, "upper_teeth")
    else:
        row = tooth_row(xs[0], cx_s, half_s)
        bottom = teeth_bottom - row.tip_lift[None, :]
        # Shadow of the upper lip at the gum line, a slightly darker translucent biting edge.
        under_lip = np.clip((ys - up_t) / max(0.035 * mw, 1.0), 0, 1)
        height = np.maximum(bottom - up_s, 1.0)
        edge = np.clip((ys - (bottom - 0.22 * height)) / (0.22 * height), 0, 1)
        shade = (0.62 + 0.38 * np.sqrt(under_lip)) * (1.0 - 0.10 * edge) * row.shade[None, :]
        a = np.clip(bottom - ys, 0, 1) * (prof_s > 0.1)
        # The gum: a band above the teeth (where the photo's lip met them) that dips a little
        # between them (each crown is arched); it shows only when the upper lip rises.
        gum_bottom = up_s + 0.25 * GUM * mw * row.tip_lift[None, :] / 0.9
        gum = np.clip(gum_bottom - ys, 0, 1) * np.clip(ys - (up_s - GUM * mw), 0, 1) \
            * (prof_s > 0.1)
        a = np.maximum(a, gum)
        gum_rgb = (0.65 * lip * GUM_SHADE + 0.35 * teeth_rgb * GUM_SHADE).astype(np.float32)
        colour = np.where((gum > 0.5)[..., None] & (ys < gum_bottom)[..., None],
                          gum_rgb * (0.62 + 0.38 * np.sqrt(under_lip))[..., None],
                          shaded(teeth_rgb, shade * side))
        paint(colour, a, "upper_teeth")

    if shape.tongue == "between":
        # The tip between the teeth, over the upper teeth's edge, lit from the front.
        edge = np.minimum(teeth_bottom, lo_t - 0.03 * mw)
        r = np.hypot((xs - cx_t) / (0.22 * mw), (ys - edge) / (0.055 * mw))
        lit = (1.05 - 0.25 * np.clip((ys - edge) / (0.05 * mw), 0, 1)) * side
        paint(tongue * lit[..., None], np.clip((1.0 - r) * 4, 0, 1), "tongue_between")
    return np.clip(out, 0, 255), alpha
