"""Photos taken mid-word (mouth open): Rest is the photo and MBP closes the lips, re-detected.

The talking photos are test portraits opened with their own AI sprite (no public-domain
talking portrait ships with the tests); benchmarks/open_mouth.py prints all cases, including
the toothy smiles where MBP does not close yet."""

from __future__ import annotations

import numpy as np
import pytest

from avatarkit.face import regions
from avatarkit.face.landmarks import detect_faces, landmarks
from avatarkit.mouth.assets import make_mouth_assets
from avatarkit.mouth.sprites import composite
from tests.idle_cases import DATA, load


def _with(rgb: np.ndarray, assets, name: str) -> np.ndarray:
    roi = assets.roi
    out = rgb.copy()
    out[roi.y:roi.y + roi.h, roi.x:roi.x + roi.w] = composite(roi.crop(rgb), assets.sprites[name])
    return out


def _opening(points: np.ndarray) -> float:
    return regions.inner_lip_opening(points) / regions.mouth_width(points)


@pytest.mark.parametrize("name", ["hopper", "biden"])
def test_open_photo_rest_is_the_photo_and_mbp_closes(name: str) -> None:
    rgb, face = load(DATA / f"{name}.jpg")
    talking = _with(rgb, make_mouth_assets(rgb, face), "AI")
    face = detect_faces(talking)[0]
    photo = _opening(face.points)
    assert photo > 0.25, photo  # really open
    assets = make_mouth_assets(talking, face)
    roi = assets.roi
    assert np.array_equal(assets.sprites["Rest"][..., :3], roi.crop(talking))
    measured = {k: _opening(landmarks(_with(talking, assets, k))) for k in ("Rest", "MBP", "AI")}
    assert abs(measured["Rest"] - photo) < 0.01, measured
    assert measured["MBP"] <= 0.10, measured
    assert measured["AI"] >= measured["Rest"], measured
