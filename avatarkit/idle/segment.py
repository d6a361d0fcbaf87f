"""Person/background separation and the background plate the person moves over.

mediapipe's selfie segmentation (shipped in the pinned wheel) gives a soft person mask; a
guided filter snaps its edge to the photo's own edges (hair, collar). The plate is the photo
with the person's area filled from the surrounding background by pull-push diffusion, so the
strip the head uncovers when it moves shows background, not a smear or a hole.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import cv2
import numpy as np

from avatarkit.face import regions
from avatarkit.face.landmarks import Face

log = logging.getLogger(__name__)

MIN_FACE_COVERAGE = 0.6  # mean person alpha over the face; lower means segmentation failed
MIN_BACKGROUND = 0.10  # background share of the image below which the person fills the frame
_local = threading.local()


@dataclass(frozen=True)
class Layers:
    """The photo split for parallax: person alpha over a background plate."""

    alpha: np.ndarray  # (h, w) float32 0..1, person
    background: np.ndarray  # (h, w, 3) uint8: the photo, with the person's area filled


def segment_person(rgb: np.ndarray) -> np.ndarray:
    """Soft person mask (h, w) float32 in 0..1, edges refined against the photo."""
    seg = getattr(_local, "seg", None)
    if seg is None:
        import mediapipe as mp

        seg = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)
        _local.seg = seg
    mask = seg.process(np.ascontiguousarray(rgb)).segmentation_mask
    if mask is None:
        raise RuntimeError("selfie segmentation returned no mask")
    mask = np.clip(mask.astype(np.float32), 0.0, 1.0)
    radius = max(2, round(max(rgb.shape[:2]) / 160))
    guide = rgb.astype(np.float32) * np.float32(1 / 255)
    refined = cv2.ximgproc.guidedFilter(guide, mask, radius, 1e-3)
    refined = np.nan_to_num(refined, nan=0.0)
    # A steeper ramp keeps the edge soft (anti-aliased) but only a pixel or two wide.
    return np.clip((refined - 0.5) * 2.5 + 0.5, 0.0, 1.0).astype(np.float32)


def solid_person(alpha: np.ndarray, chin_y: float) -> np.ndarray:
    """The alpha with holes inside the body closed: only background that reaches the top
    edge, or a side edge above the chin, is real; the rest (badges, folds the model
    half-misses near the bottom) is person, else the plate would show through the torso."""
    h, w = alpha.shape
    count, labels = cv2.connectedComponents((alpha < 0.5).astype(np.uint8), connectivity=4)
    above = max(1, min(h, int(chin_y)))
    edge_labels = np.concatenate([labels[0], labels[:above, 0], labels[:above, w - 1]])
    real = np.zeros(count, bool)
    real[np.unique(edge_labels)] = True
    real[0] = False  # label 0 is the person itself
    background = real[labels].astype(np.uint8)
    near = cv2.dilate(background, np.ones((5, 5), np.uint8)) > 0
    return np.where(near, alpha, 1.0).astype(np.float32)


def fill_holes(rgb: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Fill the pixels where `known` is False from the known ones (pull-push diffusion).

    Cheap at any size (a pyramid of box averages), smooth, and exact where known.
    """
    weight = known.astype(np.float32)
    color = rgb.astype(np.float32) * weight[..., None]
    levels = [(color, weight)]
    while min(levels[-1][1].shape) > 2:
        c, w = levels[-1]
        size = (max(1, c.shape[1] // 2), max(1, c.shape[0] // 2))
        levels.append((cv2.resize(c, size, interpolation=cv2.INTER_AREA),
                       cv2.resize(w, size, interpolation=cv2.INTER_AREA)))
    c, w = levels[-1]
    filled = c / np.maximum(w, 1e-6)[..., None]
    for c, w in reversed(levels[:-1]):
        up = cv2.resize(filled, (c.shape[1], c.shape[0]), interpolation=cv2.INTER_LINEAR)
        own = c / np.maximum(w, 1e-6)[..., None]
        trust = np.clip(w, 0.0, 1.0)[..., None]
        filled = own * trust + up * (1.0 - trust)
    out = rgb.copy()
    out[~known] = np.clip(filled[~known] + 0.5, 0, 255).astype(np.uint8)
    return out


def person_layers(rgb: np.ndarray, face: Face) -> tuple[Layers | None, str]:
    """Split the photo for parallax, or say why it cannot be (then the head moves alone)."""
    h, w = rgb.shape[:2]
    try:
        alpha = segment_person(rgb)
    except Exception as exc:  # mediapipe failures surface as assorted exception types
        return None, f"person segmentation failed ({exc})"
    alpha = solid_person(alpha, float(face.points[regions.CHIN, 1]))
    oval = face.points[list(regions.FACE_OVAL)].astype(np.int32)
    face_mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(face_mask, [oval], 1)
    coverage = float(alpha[face_mask > 0].mean()) if face_mask.any() else 0.0
    if coverage < MIN_FACE_COVERAGE:
        return None, "person segmentation missed the face"
    background_share = float((alpha < 0.5).mean())
    if background_share < MIN_BACKGROUND:
        return None, "the person fills the frame, so there is no background to move against"
    # The plate is the photo wherever the person does not reach (a pixel of margin past
    # the faintest edge, so no ghost of the hair line stays behind) and is filled from that
    # clean background elsewhere; what the moving person uncovers then looks like wall.
    person = (alpha > 0.08).astype(np.uint8)
    known = cv2.dilate(person, np.ones((3, 3), np.uint8)) == 0
    if known.mean() < 0.02:
        return None, "the person fills the frame, so there is no background to move against"
    return Layers(alpha=alpha, background=fill_holes(rgb, known)), ""
