"""The per-frame warp: a head that turns about the neck, shoulders that breathe, over a still
background.

Motion is a backward displacement field on a coarse grid (about 48 cells on the long side),
upsampled bilinearly and added to a precomputed base grid for one `cv2.remap` per frame.
Where the head weight is 1 (the whole face, the mouth ROI, the hair) the field is exactly
the head's affine map, and bilinear upsampling reproduces affine fields exactly, so the
face moves rigidly and the mouth track is exact. Weights fall off smoothly through the neck.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from avatarkit.face import regions
from avatarkit.face.landmarks import Face
from avatarkit.mouth.roi import Roi

GRID_CELLS = 48  # coarse grid cells along the long side of the image
PIVOT_BELOW_CHIN = 0.35  # neck pivot, in face heights below the chin
NECK_FALLOFF = 0.5  # head weight fades to 0 over this many face heights below the jaw


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


@dataclass(frozen=True)
class HeadRig:
    """Where the head is and how the motion spreads over the image (coarse grid)."""

    size: tuple[int, int]  # (w, h) of the photo
    grid: np.ndarray  # (gh, gw, 2) float32 full-resolution coordinates of the grid nodes
    pivot: np.ndarray  # (2,) neck pivot in photo pixels
    face_height: float  # forehead to chin, pixels
    head: np.ndarray  # (gh, gw) float32 head weight (1 = moves rigidly with the head)
    body: np.ndarray  # (gh, gw) float32 breathing weight (1 = rises fully with the shoulders)

    def head_affine(self, roll_deg: float, nod: float, breath: float) -> np.ndarray:
        """Forward 2x3 affine of the head: photo coordinates to frame coordinates.

        Roll turns about the pivot, nod compresses vertically about it (the chin dips
        towards the camera), breathing lifts everything above the shoulders."""
        t = np.radians(roll_deg)
        c, s = np.cos(t), np.sin(t)
        m = np.array([[c, -s * (1.0 - nod)], [s, c * (1.0 - nod)]])
        lift = np.array([0.0, -breath * self.face_height])
        offset = self.pivot - m @ self.pivot + lift
        return np.hstack([m, offset[:, None]])

    def field(self, roll_deg: float, nod: float, breath: float) -> np.ndarray:
        """Coarse backward displacement (gh, gw, 2): frame pixel -> offset to its photo pixel."""
        fwd = self.head_affine(roll_deg, nod, breath)
        inv = cv2.invertAffineTransform(fwd)
        g = self.grid
        head = g @ inv[:, :2].T.astype(np.float32) + inv[:, 2].astype(np.float32) - g
        body = np.zeros_like(g)
        body[..., 1] = breath * self.face_height * self.body
        w = self.head[..., None]
        return (w * head + (1.0 - w) * body).astype(np.float32)


def _grid(size: tuple[int, int]) -> np.ndarray:
    """Node coordinates such that cv2.resize(INTER_LINEAR) to `size` interpolates between them."""
    w, h = size
    cells = max(4, round(max(w, h) / GRID_CELLS))
    gw, gh = max(2, round(w / cells)), max(2, round(h / cells))
    xs = (np.arange(gw) + 0.5) * (w / gw) - 0.5
    ys = (np.arange(gh) + 0.5) * (h / gh) - 0.5
    gx, gy = np.meshgrid(xs, ys)
    return np.dstack([gx, gy]).astype(np.float32)


def _face_geometry(face: Face) -> tuple[np.ndarray, float, float, float]:
    p = face.points
    chin = p[regions.CHIN]
    x0, y0, x1, _ = face.bbox
    face_h = float(chin[1] - y0)
    return chin, face_h, float(x1 - x0), 0.5 * float(x0 + x1)


def body_rig(face: Face, roi: Roi, size: tuple[int, int]) -> HeadRig:
    """Rig for a person over a background: the head turns on the neck, the torso breathes.

    The head weight is 1 above the jaw line (and over the whole mouth ROI), then fades
    through the neck, and fades faster sideways so the shoulders barely turn."""
    w, h = size
    grid = _grid(size)
    chin, face_h, face_w, cx = _face_geometry(face)
    cell = float(grid[0, 1, 0] - grid[0, 0, 0]) if grid.shape[1] > 1 else 1.0
    y_a = max(chin[1] + 0.1 * face_h, roi.y + roi.h) + 1.5 * cell
    y_b = y_a + NECK_FALLOFF * face_h
    gx, gy = grid[..., 0], grid[..., 1]
    down = np.clip((gy - y_a) / (y_b - y_a), 0.0, None)
    side = np.clip(np.abs(gx - cx) - 0.35 * face_w, 0.0, None) / (0.6 * face_w)
    head = np.where(gy <= y_a, 1.0, 1.0 - _smoothstep(np.hypot(down, side)))
    # Breathing: above the shoulders everything rises fully, fading to nothing at the bottom
    # edge so the torso never pulls in pixels from below the frame.
    body = 1.0 - _smoothstep((gy - y_a) / max(h - 1 - y_a, 1.0))
    pivot = np.array([chin[0], chin[1] + PIVOT_BELOW_CHIN * face_h])
    return HeadRig(size, grid, pivot, face_h, head.astype(np.float32), body.astype(np.float32))


def head_only_rig(face: Face, size: tuple[int, int]) -> HeadRig:
    """Fallback rig without segmentation: a region around the head turns, fading smoothly to
    nothing before the image edges; no breathing (the torso is not known)."""
    w, h = size
    grid = _grid(size)
    chin, face_h, face_w, cx = _face_geometry(face)
    _, y0, _, _ = face.bbox
    cy = 0.5 * (y0 + chin[1])
    gx, gy = grid[..., 0], grid[..., 1]
    r = np.hypot((gx - cx) / (0.5 * face_w), (gy - cy) / (0.5 * face_h))
    head = 1.0 - _smoothstep((r - 1.25) / 0.9)
    # Zero from the outermost grid nodes on, so the frame's edge pixels never move.
    cell = float(grid[0, 1, 0] - grid[0, 0, 0])
    margin = 0.06 * max(w, h)
    dist = np.minimum.reduce([gx + 0.5, w - 0.5 - gx, gy + 0.5, h - 0.5 - gy])
    edge = (dist - cell) / margin
    head = head * _smoothstep(edge)
    pivot = np.array([chin[0], chin[1] + PIVOT_BELOW_CHIN * face_h])
    return HeadRig(size, grid, pivot, face_h, head.astype(np.float32),
                   np.zeros_like(head, dtype=np.float32))


class Warper:
    """Renders frames from a photo and coarse fields; everything per-photo is built once.

    With a person layer the photo is kept premultiplied by its alpha (so interpolation at
    the silhouette does not drag background colour along), and a frame is
    `person + plate * (1 - alpha)` in a few saturating uint8 operations."""

    def __init__(self, size: tuple[int, int], alpha: np.ndarray | None = None,
                 background: np.ndarray | None = None) -> None:
        w, h = size
        gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        self.size = size
        self.base = np.dstack([gx, gy])
        self.alpha = None if alpha is None else np.round(alpha * 255).astype(np.uint8)
        self.background = background
        self._plate = [] if background is None else cv2.split(background)
        # (photo, its premultiplied RGBA): holding the photo itself, not its id(), so a new
        # blinking frame can never be mistaken for a freed one that had the same address.
        self._layer: tuple[np.ndarray, np.ndarray] | None = None

    def full_map(self, coarse: np.ndarray) -> np.ndarray:
        """(h, w, 2) float32 sampling map from a coarse displacement field."""
        return cv2.add(self.base, cv2.resize(coarse, self.size, interpolation=cv2.INTER_LINEAR))

    def person(self, photo: np.ndarray) -> np.ndarray:
        """The photo as premultiplied RGBA; cached for the unblinking photo (most frames)."""
        if self._layer is not None and self._layer[0] is photo:
            return self._layer[1]
        a = self.alpha
        premult = cv2.multiply(photo, cv2.merge([a, a, a]), scale=1 / 255)
        layer = cv2.merge([*cv2.split(premult), a])
        self._layer = (photo, layer)
        return layer

    def render(self, photo: np.ndarray, coarse: np.ndarray) -> np.ndarray:
        """One frame: the (possibly blinking) photo moved by the field, over the still plate."""
        if not coarse.any():
            return photo
        m = self.full_map(coarse)
        if self.alpha is None:
            return cv2.remap(photo, m, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        moved = cv2.remap(self.person(photo), m, None, cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
        *person, alpha = cv2.split(moved)  # contiguous planes: cv2 runs fastest on those
        clear = cv2.bitwise_not(alpha)  # 255 - alpha
        return cv2.merge([cv2.add(p, cv2.multiply(b, clear, scale=1 / 255))
                          for p, b in zip(person, self._plate, strict=True)])


def sample_field(coarse: np.ndarray, size: tuple[int, int], points: np.ndarray) -> np.ndarray:
    """The upsampled field at arbitrary points, exactly as `Warper.full_map` would give it."""
    w, h = size
    gh, gw = coarse.shape[:2]
    u = np.clip((points[:, 0] + 0.5) * gw / w - 0.5, 0, gw - 1)
    v = np.clip((points[:, 1] + 0.5) * gh / h - 0.5, 0, gh - 1)
    u0 = np.minimum(np.floor(u).astype(int), gw - 2)
    v0 = np.minimum(np.floor(v).astype(int), gh - 2)
    fu, fv = (u - u0)[:, None], (v - v0)[:, None]
    c = coarse
    return ((1 - fu) * (1 - fv) * c[v0, u0] + fu * (1 - fv) * c[v0, u0 + 1]
            + (1 - fu) * fv * c[v0 + 1, u0] + fu * fv * c[v0 + 1, u0 + 1])


def forward_points(coarse: np.ndarray, size: tuple[int, int], points: np.ndarray) -> np.ndarray:
    """Where photo points land in the frame: solve q + field(q) = p by fixed-point iteration
    (the field is small and smooth, so a few steps reach sub-millipixel accuracy)."""
    q = points.astype(np.float64).copy()
    for _ in range(8):
        q = points - sample_field(coarse, size, q)
    return q
