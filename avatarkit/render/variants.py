"""The mouth variants: how a frame's mouth is drawn from viseme weights.

Every variant has one method, `draw(frame, frame_index, weights) -> frame`: `frame` is the
idle-loop frame for that output frame (read-only), `frame_index` the output frame's index
(the track wraps it around the loop), `weights` a vector in canonical class order. All
weight on `Rest` returns the idle frame unchanged, so idle and speech never pop.

- sprites: the atlas cells cross-faded by weight, with the live idle mouth standing in for
  the `Rest` cell (the contract says they are the same), placed through the track + mask.
- mesh: the offsets interpolated by weight and the *current idle frame* warped with the
  grid's triangles. The warp is done in frame coordinates (the mesh points are carried into
  the frame through the track affine, which is exact because an affine of a piecewise-affine
  map is piecewise affine), so the frame is resampled once and a still mesh is the identity.
  The interior texture shows inside the opening polygon, faded in as the lips part beyond
  their rest gap; the result is blended through the mask.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from avatarkit.errors import AvatarkitError
from avatarkit.mouth.interior import polygon_alpha
from avatarkit.mouth.place import blend_box, frame_box, place_patch, shifted, to_box
from avatarkit.mouth.seam import closing_shade, seam_alpha
from avatarkit.mouth.warp import warp_maps
from avatarkit.render.avatar import Avatar
from avatarkit.render.weights import REST
from avatarkit.visemes.classes import VISEME_CLASSES

#: Below this much non-Rest weight a frame is the idle frame.
MIN_SPEECH_WEIGHT = 1e-3
#: The interior is fully shown once the lip gap has grown by this fraction of the mouth width.
REVEAL_GAP = 0.05


@runtime_checkable
class MouthVariant(Protocol):
    """Draws the mouth for viseme weights into an idle frame."""

    name: str

    def draw(self, frame: np.ndarray, frame_index: int, weights: np.ndarray) -> np.ndarray:
        """A new RGB uint8 frame: `frame` with the mouth for `weights` drawn in."""
        ...


class SpriteVariant:
    """Variant A: atlas cells cross-faded by weight."""

    name = "sprites"

    def __init__(self, avatar: Avatar) -> None:
        self.avatar = avatar
        cells = np.stack([avatar.cells[c] for c in VISEME_CLASSES]).astype(np.float32)
        # Premultiplied: each cell's alpha is the mask, cut below the chin it shows.
        self.alphas = cells[..., 3] / 255.0
        self.cells = cells[..., :3] * self.alphas[..., None]

    def draw(self, frame: np.ndarray, frame_index: int, weights: np.ndarray) -> np.ndarray:
        speaking = 1.0 - float(weights[REST])
        if speaking < MIN_SPEECH_WEIGHT:
            return frame.copy()
        used = np.flatnonzero(weights > 1e-4)
        used = used[used != REST]
        w = weights[used].astype(np.float32)
        # The premultiplied sum over the frame (what the player's additive canvas pass does).
        alpha = np.tensordot(w, self.alphas[used], 1)
        colour = np.tensordot(w, self.cells[used], 1)
        patch = colour / np.maximum(alpha, 1e-6)[..., None]
        return place_patch(frame, patch, alpha, self.avatar.roi_affine(frame_index))


class MeshVariant:
    """Variant B: the live frame warped by interpolated mesh offsets, plus the interior."""

    name = "mesh"

    def __init__(self, avatar: Avatar) -> None:
        self.avatar = avatar
        self.mesh = avatar.mesh
        self.mask = avatar.mask.astype(np.float32) / 255.0
        self.interior_rgb = avatar.interior[..., :3].astype(np.float32)
        self.interior_alpha = avatar.interior[..., 3].astype(np.float32) / 255.0
        self.rest_gap = self.mesh.centre_gap(np.zeros_like(self.mesh.points))
        self.reveal_px = max(REVEAL_GAP * self.mesh.mouth_width, 1.0)
        self.layers = [(layer, layer.rgba[..., :3].astype(np.float32),
                        layer.rgba[..., 3].astype(np.float32) / 255.0)
                       for layer in avatar.interior_layers]

    def reveal(self, offsets: np.ndarray) -> float:
        """0..1: how much of the interior texture shows (0 at or below the rest gap)."""
        grown = self.mesh.centre_gap(offsets) - self.rest_gap
        return float(np.clip(grown / self.reveal_px, 0.0, 1.0))

    def draw(self, frame: np.ndarray, frame_index: int, weights: np.ndarray) -> np.ndarray:
        offsets = self.mesh.offsets(weights)
        if 1.0 - float(weights[REST]) < MIN_SPEECH_WEIGHT or np.abs(offsets).max() < 1e-3:
            return frame.copy()
        affine = self.avatar.roi_affine(frame_index)
        roi = self.avatar.roi
        box = frame_box(affine, (roi.w, roi.h), (frame.shape[1], frame.shape[0]))
        x0, y0, x1, y1 = box
        if x1 <= x0 or y1 <= y0:
            return frame.copy()
        local = shifted(affine, x0, y0)
        lin, t = local[:, :2], local[:, 2]
        map_x, map_y = warp_maps(self.mesh.points @ lin.T + t, offsets @ lin.T, (x1 - x0, y1 - y0))
        crop = frame[y0:y1, x0:x1]
        warped = cv2.remap(crop, map_x, map_y, cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        show = self.reveal(offsets)
        if show > 0:
            opening = self.mesh.opening(offsets) @ lin.T + t
            cover = polygon_alpha(opening, (x1 - x0, y1 - y0))
            interior = to_box(self.interior_rgb, affine, box)
            warped += (interior - warped) * (cover * to_box(
                self.interior_alpha, affine, box, fill_edge=False) * show)[..., None]
            jaw_maps = None  # the same for every jaw layer: made once per frame
            for layer, rgb, alpha in self.layers:
                amount = float(np.clip(np.dot(weights, layer.classes), 0.0, 1.0)) * show
                if amount <= 0:
                    continue
                if layer.jaw:
                    if jaw_maps is None:
                        jaw_maps = self._jaw_maps(offsets, local, warped.shape[:2])
                    sample = cv2.remap(np.dstack([rgb, alpha]), *jaw_maps, cv2.INTER_LINEAR,
                                       borderMode=cv2.BORDER_REPLICATE)
                    rgb, alpha = sample[..., :3], sample[..., 3]
                else:
                    rgb = to_box(rgb, affine, box)
                    alpha = to_box(alpha, affine, box, fill_edge=False)
                warped += (rgb - warped) * (cover * alpha * amount)[..., None]
        if self.avatar.seam is not None:
            self._shadow(warped, offsets, weights, affine, box)
        return blend_box(frame, box, warped, to_box(self.mask, affine, box, fill_edge=False))

    def _shadow(self, warped: np.ndarray, offsets: np.ndarray, weights: np.ndarray,
                affine: np.ndarray, box: tuple[int, int, int, int]) -> None:
        """Closing lips, in place: the narrowing opening shaded and the lip seam drawn
        (meshdef.seam; mouth/seam.py says why)."""
        seam, m, roi = self.avatar.seam, self.mesh, self.avatar.roi
        assert seam is not None
        c0, c1 = m.corner_cols
        moved = (m.points + offsets).reshape(m.rows, m.cols, 2)[:, c0:c1 + 1]
        photo = m.points.reshape(m.rows, m.cols, 2)[:, c0:c1 + 1]
        upper, lower = moved[m.upper_row], moved[m.lower_row]
        shade = closing_shade(photo[m.lower_row, :, 1] - photo[m.upper_row, :, 1],
                              lower[:, 1] - upper[:, 1], seam.shade_below,
                              seam.min_photo_gap_px) if seam.shade_below > 0 else None
        alpha = np.zeros((roi.h, roi.w), np.float32)
        if shade is not None and shade.max() > 0:
            across = np.interp(np.arange(roi.w), upper[:, 0], shade).astype(np.float32)
            alpha = polygon_alpha(m.opening(offsets), (roi.w, roi.h)) * across[None, :]
        amount = float(np.clip(np.dot(weights, seam.classes), 0.0, 1.0))
        if amount > 0:
            line = seam_alpha(upper, (roi.w, roi.h), seam.strength, seam.sigma_px) * amount
            alpha = 1.0 - (1.0 - alpha) * (1.0 - line)
        if alpha.max() > 0:
            a = to_box(alpha.astype(np.float32), affine, box, fill_edge=False)
            warped += (seam.rgb - warped) * a[..., None]

    def _jaw_maps(self, offsets: np.ndarray, local: np.ndarray,
                  shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Where a jaw layer is sampled for each box pixel: it moves with the deformed lower
        inner lip row (x from the undeformed columns, y less the row's dy, linear between
        columns)."""
        m = self.mesh
        c0, c1 = m.corner_cols
        row = slice(m.lower_row * m.cols + c0, m.lower_row * m.cols + c1 + 1)
        src_x, moved_x = m.points[row, 0], m.points[row, 0] + offsets[row, 0]
        inv = cv2.invertAffineTransform(local)
        ys, xs = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
        rx = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
        ry = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
        map_x = np.interp(rx, moved_x, src_x).astype(np.float32)
        map_y = np.clip(ry - np.interp(rx, moved_x, offsets[row, 1]), 0,
                        self.avatar.roi.h - 1).astype(np.float32)
        return map_x, map_y


VARIANTS: dict[str, Callable[[Avatar], MouthVariant]] = {
    "sprites": SpriteVariant,
    "mesh": MeshVariant,
}


def make_variant(avatar: Avatar, name: str) -> MouthVariant:
    """The variant called `name` (a key of VARIANTS) for this avatar."""
    factory = VARIANTS.get(name)
    if factory is None:
        raise AvatarkitError(f"unknown variant {name!r}; use one of {', '.join(VARIANTS)}")
    return factory(avatar)
