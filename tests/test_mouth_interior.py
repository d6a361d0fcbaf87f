"""The mouth interior has structure: individual synthesised teeth, lower teeth on the open
vowel, a cavity that darkens towards the back, and a tongue on AI, L and TH - in the sprites
and in the mesh variant's interior layers. Measured on the rendered cells of real portraits
(the detector checks of the same shapes are in test_mouth_quality.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from avatarkit.face.landmarks import detect_faces
from avatarkit.mouth import mesh
from avatarkit.mouth.assets import LAYERS, make_mouth_assets
from avatarkit.mouth.interior import LUMA, polygon_alpha

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module", params=["hopper", "biden"])  # closed mouths: teeth synthesised
def assets(request):
    rgb = np.asarray(Image.open(DATA / f"{request.param}.jpg").convert("RGB"))
    return request.param, make_mouth_assets(rgb, detect_faces(rgb)[0])


def _opening(assets, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(inside-the-lips mask, moved grid points) of a class."""
    doc = assets.meshdef
    rows, cols = doc["grid"]["rows"], doc["grid"]["cols"]
    moved = (np.asarray(doc["points"]) + np.asarray(doc["targets"][name])).reshape(rows, cols, 2)
    roi = assets.roi
    inside = polygon_alpha(mesh.opening_polygon(moved, tuple(doc["opening"]["cols"])),
                           (roi.w, roi.h)) > 0.99
    return inside, moved


def _tongue(rgb: np.ndarray) -> np.ndarray:
    """Pixels of tongue colour: clearly red, neither dark cavity nor off-white teeth."""
    r, g, b = (rgb[..., i].astype(float) for i in range(3))
    lum = rgb.astype(float) @ LUMA
    return (r > 1.3 * g) & (r > 1.2 * b) & (lum > 60) & (lum < 170)


@pytest.mark.parametrize("name", ["AI", "L", "TH"])
def test_tongue_shows(assets, name) -> None:
    person, a = assets
    inside, _ = _opening(a, name)
    tongue = _tongue(a.sprites[name][..., :3]) & inside
    assert tongue.sum() >= 0.08 * inside.sum(), f"{person}/{name}: {tongue.sum()}/{inside.sum()}"


def test_teeth_are_individual(assets) -> None:
    """Along the middle of the synthesised upper teeth in E, brightness dips between teeth."""
    person, a = assets
    _, moved = _opening(a, "E")
    c0, c1 = a.meshdef["opening"]["cols"]
    x0, x1 = moved[mesh.ROW_UPPER_INNER, c0, 0], moved[mesh.ROW_UPPER_INNER, c1, 0]
    cx, half = 0.5 * (x0 + x1), 0.5 * (x1 - x0)
    xs = np.arange(int(cx - 0.6 * half), int(cx + 0.6 * half))
    top = np.interp(xs, moved[mesh.ROW_UPPER_INNER, :, 0], moved[mesh.ROW_UPPER_INNER, :, 1])
    lum = a.sprites["E"][..., :3].astype(float) @ LUMA
    line = np.array([lum[int(round(y + 2)), x] for x, y in zip(xs, top, strict=True)])
    dips = np.flatnonzero((line[1:-1] < line[:-2] - 1) & (line[1:-1] < line[2:] - 1))
    assert len(dips) >= 3, f"{person}: {len(dips)} gaps between teeth in {line.round()}"


def test_lower_teeth_and_cavity_depth_in_ai(assets) -> None:
    person, a = assets
    inside, moved = _opening(a, "AI")
    rgb = a.sprites["AI"][..., :3]
    lum = rgb.astype(float) @ LUMA
    c0, c1 = a.meshdef["opening"]["cols"]
    cx = 0.5 * (moved[mesh.ROW_LOWER_INNER, c0, 0] + moved[mesh.ROW_LOWER_INNER, c1, 0])
    lower = np.interp(cx, moved[mesh.ROW_LOWER_INNER, :, 0], moved[mesh.ROW_LOWER_INNER, :, 1])
    upper = np.interp(cx, moved[mesh.ROW_UPPER_INNER, :, 0], moved[mesh.ROW_UPPER_INNER, :, 1])
    x = int(round(cx))
    column = lum[int(upper):int(lower), x]
    bottom = rgb[int(lower) - 4:int(lower), x]
    # Lower teeth: just above the lower lip, pale (not tongue-red) and far above the cavity.
    teeth = ~_tongue(bottom[None])[0] & (bottom.astype(float) @ LUMA > column.min() + 60)
    assert teeth.any(), f"{person}: {column.round()}"
    # Depth: the back of the cavity (middle of the opening) is darker than near the corners.
    ys, xs = np.nonzero(inside)
    u = np.abs(xs - cx) / max(0.5 * (moved[mesh.ROW_LOWER_INNER, c1, 0]
                                      - moved[mesh.ROW_LOWER_INNER, c0, 0]), 1.0)
    mid_rows = (ys > upper + 0.3 * (lower - upper)) & (ys < upper + 0.6 * (lower - upper))
    dark = ~_tongue(rgb[ys, xs][None])[0] & (lum[ys, xs] < 100) & mid_rows
    centre, sides = lum[ys, xs][dark & (u < 0.3)], lum[ys, xs][dark & (u > 0.6)]
    assert len(centre) and len(sides) and centre.mean() < sides.mean(), person


def test_mesh_layers_carry_the_tongue_and_lower_teeth(assets) -> None:
    """The mesh variant's layers hold the same parts, and AI shows the lower teeth layer."""
    _, a = assets
    h = a.roi.h
    names = [name for name, *_ in LAYERS]
    meta = {layer["name"]: layer for layer in a.meshdef["interior_layers"]["layers"]}
    for part in ("tongue_low", "tongue_tip", "tongue_between", "lower_teeth"):
        cell = a.layers[names.index(part) * h:(names.index(part) + 1) * h]
        assert cell[..., 3].max() > 200, part
    assert "AI" in meta["lower_teeth"]["classes"] and "AI" in meta["tongue_low"]["classes"]
