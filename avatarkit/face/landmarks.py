"""Face landmarks from mediapipe's face mesh (478 points with irises), and checks on them.

The model ships inside the pinned mediapipe wheel, so detection works offline.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from avatarkit.errors import AvatarkitError
from avatarkit.face import regions

# Quiet mediapipe's C++ start-up chatter before it is imported.
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

MIN_FACE_WIDTH_PX = 64
# Head turn, as |left - right| / (left + right) of the cheek distances to the nose (about
# tan(yaw): 0.46 at ~25 degrees). Up to WARN the mouth model works as on a frontal face; up
# to MAX (~33 degrees) it still holds, with a warning: on real turned portraits every
# detector check of the shapes passes on a closed mouth at 0.74 and only MBP misses (0.11
# mouth widths apart) on an open toothy smile at 0.62; squeezed test portraits pass to 0.66
# (benchmarks/turns.py). Beyond, the far half of the mouth is too foreshortened to trust.
WARN_YAW_RATIO = 0.45
MAX_YAW_RATIO = 0.65
MAX_ROLL_DEG = 30.0

_lock = threading.Lock()
_meshes: dict[int, object] = {}


@dataclass(frozen=True)
class Face:
    """One detected face: 478 landmarks in pixel coordinates of the image it came from."""

    points: np.ndarray  # (478, 2) float32, x then y
    depth: np.ndarray  # (478,) relative z (smaller is closer to the camera)

    @cached_property
    def bbox(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) around the face outline."""
        oval = self.points[list(regions.FACE_OVAL)]
        x0, y0 = oval.min(axis=0)
        x1, y1 = oval.max(axis=0)
        return float(x0), float(y0), float(x1), float(y1)

    @property
    def width(self) -> float:
        x0, _, x1, _ = self.bbox
        return x1 - x0

    @property
    def yaw_ratio(self) -> float:
        """0 for a frontal face, towards 1 as the head turns to a profile."""
        nose = self.points[regions.NOSE_TIP, 0]
        left = nose - self.points[regions.CHEEK_LEFT, 0]
        right = self.points[regions.CHEEK_RIGHT, 0] - nose
        return float(abs(left - right) / max(left + right, 1e-6))

    @property
    def roll_deg(self) -> float:
        """Angle of the line between the eye corners, in degrees (0 = level)."""
        a = self.points[regions.EYE_IMAGE_LEFT["corners"][0]]
        b = self.points[regions.EYE_IMAGE_RIGHT["corners"][0]]
        return float(np.degrees(np.arctan2(b[1] - a[1], b[0] - a[0])))

    def scaled(self, factor: float) -> Face:
        """The same face in an image resized by `factor`."""
        return Face(self.points * np.float32(factor), self.depth * np.float32(factor))


def _mesh(max_faces: int):
    """One FaceMesh per thread and face count; creating one is cheap, sharing one is unsafe."""
    key = (threading.get_ident(), max_faces)
    mesh = _meshes.get(key)
    if mesh is None:
        import mediapipe as mp

        mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, refine_landmarks=True, max_num_faces=max_faces,
            min_detection_confidence=0.5,
        )
        with _lock:
            _meshes[key] = mesh
    return mesh


def detect_faces(rgb: np.ndarray, max_faces: int = 4) -> list[Face]:
    """All faces in an RGB uint8 image, largest first."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError("detect_faces expects an RGB uint8 image")
    h, w = rgb.shape[:2]
    result = _mesh(max_faces).process(np.ascontiguousarray(rgb))
    faces = []
    for found in result.multi_face_landmarks or ():
        xyz = np.array([(p.x, p.y, p.z) for p in found.landmark], dtype=np.float32)
        points = xyz[:, :2] * np.array([w, h], dtype=np.float32)
        faces.append(Face(points=points, depth=xyz[:, 2] * w))
    return sorted(faces, key=lambda f: f.width, reverse=True)


def landmarks(rgb: np.ndarray) -> np.ndarray | None:
    """The largest face's landmarks, or None: the measuring tool for tests and benchmarks."""
    faces = detect_faces(rgb, max_faces=1)
    return faces[0].points if faces else None


def check_usable(face: Face, image_size: tuple[int, int], name: str = "photo") -> list[str]:
    """Refuse faces the mouth model cannot work with, saying what would fix it; return
    warnings about faces it works with less well."""
    w, h = image_size
    x0, y0, x1, y1 = face.bbox
    if face.width < MIN_FACE_WIDTH_PX:
        raise AvatarkitError(
            f"{name}: the face is only {face.width:.0f} px wide; at least {MIN_FACE_WIDTH_PX} px "
            "is needed - use a larger photo or crop closer to the face"
        )
    margin = 0.02 * face.width
    jaw = face.points[list(regions.JAW) + list(regions.LIPS_ALL)]
    if (x0 < -margin or y0 < -margin or x1 > w + margin or jaw[:, 1].max() > h - 1
            or jaw[:, 0].min() < 0 or jaw[:, 0].max() > w - 1):
        raise AvatarkitError(
            f"{name}: the face is cut off by the image edge - use a photo that shows the whole "
            "face with some margin around it"
        )
    if face.yaw_ratio > MAX_YAW_RATIO:
        raise AvatarkitError(
            f"{name}: the head is turned too far to the side (yaw ratio {face.yaw_ratio:.2f}, "
            f"max {MAX_YAW_RATIO}) - use a photo that looks roughly into the camera"
        )
    if abs(face.roll_deg) > MAX_ROLL_DEG:
        raise AvatarkitError(
            f"{name}: the head is tilted {face.roll_deg:.0f} degrees; at most {MAX_ROLL_DEG:.0f} "
            "is supported - straighten the photo first"
        )
    if face.yaw_ratio > WARN_YAW_RATIO:
        return [f"{name}: the head is turned to the side (yaw ratio {face.yaw_ratio:.2f}, about "
                f"{np.degrees(np.arctan(face.yaw_ratio)):.0f} degrees); the mouth shapes are "
                "less exact than on a photo that looks into the camera"]
    return []
