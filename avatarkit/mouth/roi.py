"""The mouth region of interest: the rectangle the overlay may touch, from the lips to below
the chin (the jaw drops when the mouth opens), with room for the deformation to fade out."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from avatarkit.face import regions
from avatarkit.face.landmarks import Face


@dataclass(frozen=True)
class Roi:
    """Integer rectangle in photo pixels; width and height are even (video-friendly)."""

    x: int
    y: int
    w: int
    h: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def crop(self, image: np.ndarray) -> np.ndarray:
        return image[self.y:self.y + self.h, self.x:self.x + self.w]

    def to_local(self, points: np.ndarray) -> np.ndarray:
        """Photo coordinates to ROI coordinates."""
        return points - np.array([self.x, self.y], dtype=points.dtype)


def mouth_roi(face: Face, image_size: tuple[int, int]) -> Roi:
    """A rectangle around the mouth: cheeks beside it, nose base above, chin and jaw drop below."""
    p = face.points
    width = regions.mouth_width(p)
    left, right = p[regions.MOUTH_LEFT, 0], p[regions.MOUTH_RIGHT, 0]
    nose_base = p[regions.SUBNASALE, 1]
    chin = p[regions.CHIN, 1]
    x0 = left - 0.55 * width
    x1 = right + 0.55 * width
    y0 = nose_base - 0.2 * width
    y1 = chin + 0.75 * width
    img_w, img_h = image_size
    x0, y0 = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
    x1, y1 = min(img_w, int(np.ceil(x1))), min(img_h, int(np.ceil(y1)))
    w, h = (x1 - x0) // 2 * 2, (y1 - y0) // 2 * 2
    return Roi(x0, y0, w, h)
