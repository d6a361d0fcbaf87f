"""Contracts of the mouth files: mask, mesh, atlas, and sprites that agree with the mesh."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from avatarkit.face import regions
from avatarkit.face.landmarks import detect_faces
from avatarkit.mouth import mesh
from avatarkit.mouth.assets import make_mouth_assets
from avatarkit.mouth.atlas import unpack_atlas
from avatarkit.mouth.interior import polygon_alpha
from avatarkit.mouth.warp import warp_image
from avatarkit.visemes.classes import VISEME_CLASSES

HERO = Path(__file__).resolve().parents[1] / "examples" / "hero.jpg"


@pytest.fixture(scope="module")
def hero():
    rgb = np.array(Image.open(HERO).convert("RGB"))
    face = detect_faces(rgb)[0]
    return rgb, face, make_mouth_assets(rgb, face)


def test_mask_is_feathered_and_zero_on_the_border(hero):
    rgb, face, assets = hero
    mask, roi = assets.mask, assets.roi
    assert mask.shape == (roi.h, roi.w) and mask.dtype == np.uint8
    border = np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])
    assert border.max() == 0
    assert mask.max() == 255
    # The lips and the chin are fully covered.
    local = roi.to_local(face.points)
    for index in regions.LIPS_ALL + (regions.CHIN,):
        x, y = np.round(local[index]).astype(int)
        assert mask[y, x] >= 250, f"landmark {index} at ({x},{y}) is only {mask[y, x]}"
    # Soft edge: from the border inwards the alpha rises over several pixels, never jumps.
    row = mask[roi.h // 2].astype(int)
    assert np.abs(np.diff(row)).max() <= 80
    assert (row > 0).argmax() < (row == 255).argmax() - 3


def test_roi_contains_lips_and_chin_and_is_even(hero):
    rgb, face, assets = hero
    roi = assets.roi
    assert roi.w % 2 == 0 and roi.h % 2 == 0
    local = roi.to_local(face.points)
    for index in regions.LIPS_ALL + (regions.CHIN,):
        x, y = local[index]
        assert 0 < x < roi.w - 1 and 0 < y < roi.h - 1


def test_meshdef_contract(hero):
    _, _, assets = hero
    doc = assets.meshdef
    assert doc["grid"] == {"cols": 16, "rows": 12}
    assert doc["roi"] == assets.roi.as_dict()
    assert len(doc["points"]) == 16 * 12
    assert set(doc["targets"]) == set(VISEME_CLASSES)
    assert doc["interior"] == "mouth_interior.png"
    assert not np.any(doc["targets"]["Rest"])
    grid = np.array(doc["points"]).reshape(12, 16, 2)
    for name, offsets in doc["targets"].items():
        off = np.array(offsets).reshape(12, 16, 2)
        assert len(offsets) == 16 * 12
        border = np.concatenate([off[0], off[-1], off[:, 0], off[:, -1]])
        assert not np.any(border), f"{name} moves the ROI border"
        moved = grid + off
        assert np.all(np.diff(moved[..., 1], axis=0) >= -1e-6), f"{name}: rows fold over"
        assert np.all(np.diff(moved[..., 0], axis=1) > 0), f"{name}: columns fold over"
    # Every class but Rest moves the lips; AI drops the jaw further than anything else.
    jaw = {n: np.array(t).reshape(12, 16, 2)[mesh.ROW_JAW, :, 1].max()
           for n, t in doc["targets"].items()}
    assert max(jaw, key=jaw.get) == "AI"


def test_sprites_are_the_roi_through_the_mesh(hero):
    """Outside the lip opening, each sprite is exactly the mesh warp of the photo's ROI."""
    rgb, _, assets = hero
    patch = assets.roi.crop(rgb)
    doc = assets.meshdef
    points = np.array(doc["points"])
    cols = doc["opening"]["cols"]
    for name in VISEME_CLASSES:
        offsets = np.array(doc["targets"][name])
        warped = warp_image(patch, points, offsets)
        moved = (points + offsets).reshape(12, 16, 2)
        opening = polygon_alpha(mesh.opening_polygon(moved, tuple(cols)),
                                (assets.roi.w, assets.roi.h))
        outside = cv2.dilate((opening > 0).astype(np.uint8), np.ones((5, 5), np.uint8)) == 0
        diff = np.abs(warped.astype(int) - assets.sprites[name][..., :3].astype(int))[outside]
        assert diff.max() <= 1, f"{name}: sprite differs from the mesh warp by {diff.max()}"
        # Alpha: the mask, cut just below the chin the cell shows (the live frame's neck
        # shows under it); down to the chin it is the mask itself.
        alpha = assets.sprites[name][..., 3]
        assert (alpha <= assets.mask).all()
        chin = int(moved[mesh.ROW_JAW, :, 1].min())
        assert np.array_equal(alpha[:chin], assets.mask[:chin])
    assert np.array_equal(assets.sprites["Rest"][..., :3], patch)


def test_warp_moves_content_with_the_mesh():
    """A checkerboard warped by a uniform shift of the inner points moves by that shift."""
    size = 96
    ys, xs = np.mgrid[0:size, 0:size]
    board = (((xs // 8) + (ys // 8)) % 2 * 255).astype(np.uint8)
    image = np.dstack([board] * 3)
    gx, gy = np.meshgrid(np.linspace(0, size - 1, 16), np.linspace(0, size - 1, 12))
    points = np.stack([gx, gy], axis=-1).reshape(-1, 2)
    offsets = np.zeros_like(points)
    inner = np.zeros((12, 16), bool)
    inner[3:9, 4:12] = True
    offsets[inner.reshape(-1)] = (3.0, 2.0)
    out = warp_image(image, points, offsets)
    # Well inside the moved block, pixel (x, y) shows what the source had at (x-3, y-2).
    region = (slice(40, 50), slice(40, 60))
    shifted = np.roll(np.roll(image, 2, axis=0), 3, axis=1)
    assert np.abs(out[region].astype(int) - shifted[region].astype(int)).max() <= 1
    # Outside the moving cells the image is untouched.
    assert np.array_equal(out[:8], image[:8])


def test_written_files_follow_the_contract(hero, tmp_path):
    _, _, assets = hero
    names = assets.write(tmp_path)
    assert set(names) == {"atlas.png", "atlas.json", "meshdef.json", "mask_mouth.png",
                          "mouth_interior.png", "mouth_interior_layers.png"}
    meta = json.loads((tmp_path / "atlas.json").read_text())
    assert meta["grid"] == {"cols": 4, "rows": 4}
    assert meta["cell"] == {"w": assets.roi.w, "h": assets.roi.h}
    assert meta["classes"] == list(VISEME_CLASSES)
    assert meta["mask"] == "mask_mouth.png" and meta["roi"] == assets.roi.as_dict()
    atlas = np.array(Image.open(tmp_path / "atlas.png"))
    assert atlas.shape == (4 * assets.roi.h, 4 * assets.roi.w, 4)
    cells = unpack_atlas(atlas, meta)
    for name in VISEME_CLASSES:
        assert np.array_equal(cells[name], assets.sprites[name])
    # The four cells after the 12 classes are empty.
    assert atlas[3 * assets.roi.h:, assets.roi.w * 0:].max() == 0
    mask = Image.open(tmp_path / "mask_mouth.png")
    assert mask.mode == "L" and mask.size == (assets.roi.w, assets.roi.h)
    interior = np.array(Image.open(tmp_path / "mouth_interior.png"))
    assert interior.shape == (assets.roi.h, assets.roi.w, 4) and interior[..., 3].max() == 255
    # Interior layers: stacked ROI-sized cells, each with something in it, classes by name.
    spec = json.loads((tmp_path / "meshdef.json").read_text())["interior_layers"]
    layers = np.array(Image.open(tmp_path / spec["file"]))
    h = assets.roi.h
    assert layers.shape == (len(spec["layers"]) * h, assets.roi.w, 4)
    for i, layer in enumerate(spec["layers"]):
        assert layer["cell"] == i and layer["follows"] in ("skull", "jaw")
        assert set(layer["classes"]) <= set(VISEME_CLASSES) - {"Rest"} and layer["classes"]
        assert layers[i * h:(i + 1) * h, :, 3].max() > 128, layer["name"]
    by_name = {layer["name"]: layer for layer in spec["layers"]}
    assert by_name["lower_teeth"]["follows"] == "jaw" and "E" in by_name["lower_teeth"]["classes"]
