"""The mouth shapes are real: the face landmarker must see them on composites of real photos."""

from __future__ import annotations

import colorsys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from avatarkit.face import regions
from avatarkit.face.landmarks import detect_faces, landmarks
from avatarkit.mouth import mesh
from avatarkit.mouth.assets import make_mouth_assets
from avatarkit.mouth.sprites import composite
from avatarkit.visemes.classes import VISEME_CLASSES

ROOT = Path(__file__).resolve().parents[1]
PORTRAITS = {
    "hero": ROOT / "examples" / "hero.jpg",  # smiling, upper teeth visible
    "hopper": ROOT / "tests" / "data" / "hopper.jpg",  # closed mouth, glasses
    "biden": ROOT / "tests" / "data" / "biden.jpg",  # closed smile, head tilted
    "obama": ROOT / "tests" / "data" / "obama.jpg",  # wide toothy smile
}


def _photo(path: Path) -> np.ndarray:
    return np.array(Image.open(path).convert("RGB"))


@pytest.fixture(scope="module", params=sorted(PORTRAITS))
def measured(request):
    """Assets plus re-detected lip opening and mouth width for every class composite."""
    rgb = _photo(PORTRAITS[request.param])
    face = detect_faces(rgb)[0]
    assets = make_mouth_assets(rgb, face)
    roi = assets.roi
    composites, opening, width = {}, {}, {}
    for name in VISEME_CLASSES:
        out = rgb.copy()
        out[roi.y:roi.y + roi.h, roi.x:roi.x + roi.w] = composite(roi.crop(rgb),
                                                                   assets.sprites[name])
        points = landmarks(out)
        assert points is not None, f"{request.param}/{name}: no face found on the composite"
        composites[name] = out
        opening[name] = regions.inner_lip_opening(points)
        width[name] = regions.mouth_width(points)
    return request.param, rgb, assets, composites, opening, width


def test_ai_opens_most(measured):
    name, _, _, _, opening, _ = measured
    widest = max(opening, key=opening.get)
    assert widest == "AI", f"{name}: {widest} opens more than AI: {opening}"


@pytest.mark.parametrize("cls", ["E", "O", "CH", "L", "TH"])
def test_open_classes_open_visibly(measured, cls):
    name, _, _, _, opening, width = measured
    assert opening[cls] >= opening["Rest"] + 0.04 * width["Rest"], (
        f"{name}/{cls}: opening {opening[cls]:.1f} px vs Rest {opening['Rest']:.1f} px")


def test_mbp_is_closed(measured):
    name, _, _, _, opening, width = measured
    assert opening["MBP"] <= 0.10 * width["Rest"], f"{name}: MBP opening {opening['MBP']:.1f}"
    assert opening["MBP"] <= max(0.5 * opening["Rest"], 0.04 * width["Rest"])


@pytest.mark.parametrize("cls", ["O", "U", "WQ"])
def test_rounded_classes_are_narrower(measured, cls):
    name, _, _, _, _, width = measured
    assert width[cls] <= 0.95 * width["Rest"], f"{name}/{cls}: {width[cls]:.1f} vs {width}"


def test_e_is_not_narrower(measured):
    name, _, _, _, _, width = measured
    assert width["E"] >= 0.99 * width["Rest"], f"{name}: E {width['E']:.1f} vs {width['Rest']}"


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def test_rest_is_the_photo(measured):
    name, rgb, assets, composites, _, _ = measured
    roi = assets.roi
    assert _psnr(roi.crop(composites["Rest"]), roi.crop(rgb)) >= 40.0, name


def _gradient_energy(img: np.ndarray, band: np.ndarray) -> float:
    g = img.astype(np.float64).mean(axis=2)
    gy, gx = np.gradient(g)
    return float(np.mean((gx**2 + gy**2)[band]))


def test_no_seam_along_the_mask_edge(measured):
    """Where the mask fades, the composite is no busier than the photo itself."""
    name, rgb, assets, composites, _, _ = measured
    roi = assets.roi
    band = (assets.mask > 20) & (assets.mask < 235)
    photo_energy = _gradient_energy(roi.crop(rgb), band)
    for cls, out in composites.items():
        energy = _gradient_energy(roi.crop(out), band)
        assert energy <= photo_energy * 1.10 + 1.0, (
            f"{name}/{cls}: gradient energy {energy:.1f} vs photo {photo_energy:.1f}")


def _fine_detail(img: np.ndarray) -> np.ndarray:
    """Per-pixel energy of what a 1 px Gaussian removes: thin lines, dots, aliasing."""
    g = img.astype(np.float32).mean(axis=2)
    return (g - cv2.GaussianBlur(g, (0, 0), 1.0)) ** 2


def _band_mean(values: np.ndarray, grid: np.ndarray, top: int, bottom: int,
               cols: range) -> float:
    """Mean of `values` between two grid rows (each column, rows interpolated along x)."""
    y0 = np.interp(cols, grid[top, :, 0], grid[top, :, 1])
    y1 = np.interp(cols, grid[bottom, :, 0], grid[bottom, :, 1])
    return float(np.mean(np.concatenate([values[int(round(a)):int(round(b)) + 1, c]
                                         for a, b, c in zip(y0, y1, cols, strict=True)])))


def test_chin_edge_stays_clean_when_the_jaw_drops(measured):
    """The jaw line and the shadow under it ride down with the jaw in AI. Squeezing them
    into one grid cell (as before) drew a thin dotted line along the chin: 2.5-7.7x the
    photo's fine detail between the jaw row and the next row; now 0.8-1.5."""
    name, rgb, assets, composites, _, _ = measured
    roi = assets.roi
    rows, cols = assets.meshdef["grid"]["rows"], assets.meshdef["grid"]["cols"]
    points = np.asarray(assets.meshdef["points"]).reshape(rows, cols, 2)
    moved = points + np.asarray(assets.meshdef["targets"]["AI"]).reshape(rows, cols, 2)
    c0, c1 = assets.meshdef["opening"]["cols"]
    span = range(int(points[mesh.ROW_JAW, c0, 0]), int(points[mesh.ROW_JAW, c1, 0]) + 1)
    photo = _band_mean(_fine_detail(roi.crop(rgb)), points, mesh.ROW_JAW, mesh.ROW_JAW + 1, span)
    ai = _band_mean(_fine_detail(roi.crop(composites["AI"])), moved, mesh.ROW_JAW,
                    mesh.ROW_JAW + 1, span)
    assert ai <= 1.8 * photo + 1.0, f"{name}: fine detail under the jaw {ai:.1f} vs {photo:.1f}"


def _hsv(rgb: np.ndarray) -> tuple[float, float, float]:
    return colorsys.rgb_to_hsv(*(np.asarray(rgb, float) / 255.0))


@pytest.mark.parametrize("name", ["hopper", "biden"])  # closed mouths: synthesised teeth
def test_synthesised_teeth_sit_in_the_photos_light(name):
    """Warm off-white teeth in the skin's light: hue near the skin's, much less saturated
    but not grey, brighter than the skin; darker towards the corners; gaps between teeth."""
    rgb = _photo(PORTRAITS[name])
    assets = make_mouth_assets(rgb, detect_faces(rgb)[0])
    doc = assets.meshdef
    rows, cols = doc["grid"]["rows"], doc["grid"]["cols"]
    points = np.asarray(doc["points"]).reshape(rows, cols, 2)
    moved = points + np.asarray(doc["targets"]["AI"]).reshape(rows, cols, 2)
    c0, c1 = doc["opening"]["cols"]
    mw = points[mesh.ROW_UPPER_INNER, c1, 0] - points[mesh.ROW_UPPER_INNER, c0, 0]
    cx = 0.5 * (moved[mesh.ROW_UPPER_INNER, c0, 0] + moved[mesh.ROW_UPPER_INNER, c1, 0])
    sprite = assets.sprites["AI"][..., :3].astype(float)

    def teeth(u0: float, u1: float) -> np.ndarray:
        """Pixels of the upper teeth between |u| = u0 and u1 (u: half mouth widths)."""
        out = []
        for x in range(int(cx - 0.5 * mw), int(cx + 0.5 * mw) + 1):
            if u0 <= abs(x - cx) / (0.5 * mw) < u1:
                top = np.interp(x, moved[mesh.ROW_UPPER_INNER, :, 0],
                                moved[mesh.ROW_UPPER_INNER, :, 1]) + 0.045 * mw
                out.append(sprite[int(round(top)):int(round(top + 0.05 * mw)) + 1, x])
        return np.concatenate(out)

    centre, corner = teeth(0.0, 0.35), teeth(0.65, 0.8)
    skin = assets.roi.crop(rgb)[
        int(points[mesh.ROW_LOWER_OUTER, 8, 1]) + 2:int(points[mesh.ROW_JAW, 8, 1]) - 2,
        int(cx - 0.3 * mw):int(cx + 0.3 * mw)].reshape(-1, 3).astype(float)
    th, ts, _ = _hsv(np.median(centre, axis=0))
    sh, ss, _ = _hsv(np.median(skin, axis=0))
    hue_diff = min(abs(th - sh), 1 - abs(th - sh)) * 360
    assert hue_diff <= 25, f"{name}: teeth hue {th * 360:.0f} vs skin {sh * 360:.0f}"
    assert 0.06 <= ts <= 0.6 * ss, f"{name}: teeth saturation {ts:.2f} (skin {ss:.2f})"
    luma = np.array([0.299, 0.587, 0.114])
    t_luma, s_luma = np.median(centre @ luma), np.median(skin @ luma)
    assert s_luma + 10 <= t_luma <= 250, f"{name}: teeth luma {t_luma:.0f}, skin {s_luma:.0f}"
    assert np.median(corner @ luma) <= 0.85 * np.median(centre @ luma), (
        f"{name}: corners {np.median(corner @ luma):.0f} vs centre {np.median(centre @ luma):.0f}")
    # Separate teeth: the centre row of the front teeth has several dark dips.
    y = int(round(np.interp(cx, moved[mesh.ROW_UPPER_INNER, :, 0],
                            moved[mesh.ROW_UPPER_INNER, :, 1]) + 0.07 * mw))
    row = sprite[y, int(cx - 0.35 * mw):int(cx + 0.35 * mw) + 1] @ luma
    dips = [i for i in range(1, len(row) - 1)
            if row[i] < row[i - 1] and row[i] <= row[i + 1] and row[i] < np.max(row) - 8]
    assert len(dips) >= 3, f"{name}: {len(dips)} gaps between the front teeth"
