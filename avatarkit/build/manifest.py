"""`avatar.json`: the one file a client reads first. It names every file of the avatar and
records what made it (tool version, input hash, settings), so a rebuild can be skipped safely."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import numpy as np

from avatarkit.build.options import BuildOptions
from avatarkit.face.landmarks import Face
from avatarkit.face.photo import Photo
from avatarkit.mouth.roi import Roi
from avatarkit.version import __version__
from avatarkit.visemes.classes import VISEME_CLASSES

FORMAT = "avatarkit.avatar/1"
LANDMARK_MODEL = "mediapipe-face-mesh-478"


def build_hash(input_sha256: str, options: BuildOptions) -> str:
    """sha256 over the input bytes' hash, the output-changing settings and the tool version."""
    key = {"input": input_sha256, "settings": options.hash_settings(), "version": __version__}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def make_manifest(
    *,
    photo: Photo,
    face: Face,
    face_index: int,
    faces_found: int,
    roi: Roi,
    files: list[str],
    landmarks_used: dict[str, list[int]],
    options: BuildOptions,
    timings: dict[str, float],
    extra: dict[str, Any],
) -> dict[str, Any]:
    """The manifest document; `extra` holds sections that stages add (e.g. the idle loop's)."""
    w, h = photo.size
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "tool": {"name": "avatarkit", "version": __version__},
        "built_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "build_hash": build_hash(photo.sha256, options),
        "source": {
            "file": photo.path.name,
            "sha256": photo.sha256,
            "size": {"w": photo.source_size[0], "h": photo.source_size[1]},
            "normalised": photo.notes,
        },
        # All pixel coordinates in this folder (ROI, landmarks, track, video) are in this frame.
        "frame": {"w": w, "h": h, "scale_from_source": round(photo.scale, 6)},
        "classes": list(VISEME_CLASSES),
        "roi": roi.as_dict(),
        "files": sorted(files),
        "face": {
            "index": face_index,
            "faces_found": faces_found,
            "bbox": [round(v, 2) for v in face.bbox],
            "yaw_ratio": round(face.yaw_ratio, 4),
            "roll_deg": round(face.roll_deg, 3),
        },
        "landmarks": {
            "model": LANDMARK_MODEL,
            "regions": {name: list(map(int, idx)) for name, idx in landmarks_used.items()},
            "points": np.round(face.points.astype(np.float64), 2).tolist(),
        },
        "settings": options.hash_settings(),
        "timings_s": {name: round(t, 4) for name, t in timings.items()},
    }
    for key, value in extra.items():
        if key in manifest:
            raise ValueError(f"stage section {key!r} would overwrite a manifest field")
        manifest[key] = value
    return manifest
