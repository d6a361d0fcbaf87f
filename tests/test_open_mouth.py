"""Photos taken mid-word (mouth open): Rest is the photo and MBP closes the lips, re-detected.

The talking photos are test portraits opened with their own AI sprite (no public-domain
talking portrait ships with the tests); benchmarks/open_mouth.py prints all cases."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from avatarkit.build import BuildOptions, build_avatar
from avatarkit.face import regions
from avatarkit.face.landmarks import detect_faces, landmarks
from avatarkit.mouth import seam
from avatarkit.mouth.assets import make_mouth_assets
from avatarkit.mouth.interior import LUMA, measure_look, polygon_alpha
from avatarkit.mouth.mesh import build_grid
from avatarkit.mouth.open_photo import fit_open_mouth
from avatarkit.mouth.roi import mouth_roi
from avatarkit.mouth.sprites import composite
from avatarkit.render.avatar import load_avatar
from avatarkit.render.variants import make_variant
from avatarkit.render.weights import weight_vector
from tests.idle_cases import DATA, HERO, load


def _with(rgb: np.ndarray, assets, name: str) -> np.ndarray:
    roi = assets.roi
    out = rgb.copy()
    out[roi.y:roi.y + roi.h, roi.x:roi.x + roi.w] = composite(roi.crop(rgb), assets.sprites[name])
    return out


def _opening(points: np.ndarray) -> float:
    return regions.inner_lip_opening(points) / regions.mouth_width(points)


def _opened(path):
    """A portrait taken mid-word: opened with its own AI shape, the face re-detected on it
    and its assets rebuilt. (photo, face, assets)"""
    rgb, face = load(path)
    talking = _with(rgb, make_mouth_assets(rgb, face), "AI")
    face = detect_faces(talking)[0]
    return talking, face, make_mouth_assets(talking, face)


@pytest.mark.parametrize("name", ["hopper", "biden"])
def test_open_photo_rest_is_the_photo_and_mbp_closes(name: str) -> None:
    talking, face, assets = _opened(DATA / f"{name}.jpg")
    photo = _opening(face.points)
    assert photo > 0.25, photo  # really open
    roi = assets.roi
    assert np.array_equal(assets.sprites["Rest"][..., :3], roi.crop(talking))
    measured = {k: _opening(landmarks(_with(talking, assets, k))) for k in ("Rest", "MBP", "AI")}
    assert abs(measured["Rest"] - photo) < 0.01, measured
    assert measured["MBP"] <= 0.10, measured
    assert measured["AI"] >= measured["Rest"] - 0.02, measured  # AI on an AI photo: the photo


@pytest.mark.parametrize("path", [HERO, DATA / "obama.jpg"], ids=["hero", "obama"])
def test_toothy_open_photo_closes_on_mbp(path) -> None:
    """Smiles opened to AI show upper teeth, a cavity and lower teeth: MBP raises the jaw and
    meets the lips over the teeth, with no teeth left between them for the detector to read
    as parted lips (this read 0.19 and 0.23 mouth widths when MBP stretched the lips over
    the whole opening)."""
    talking, face, assets = _opened(path)
    photo = _opening(face.points)
    assert photo > 0.3, photo
    assert np.array_equal(assets.sprites["Rest"][..., :3], assets.roi.crop(talking))
    measured = {k: _opening(landmarks(_with(talking, assets, k))) for k in ("Rest", "MBP", "O")}
    assert abs(measured["Rest"] - photo) < 0.01, measured
    assert measured["MBP"] <= 0.10, measured
    assert measured["O"] >= measured["Rest"], measured


@pytest.mark.parametrize("path", [HERO, DATA / "obama.jpg"], ids=["hero", "obama"])
def test_both_renderers_close_a_toothy_open_photo(path, tmp_path) -> None:
    """The avatar of a smile opened to AI, drawn with pure MBP by the sprite and the mesh
    variant on its idle frame: both close the lips (the mesh variant left the photo's teeth
    as light specks along the seam, read as 0.175 mouth widths apart on hero, until the
    squeezed triangles of the opening were drawn under the lips and the seam drawn over)."""
    talking, _, _ = _opened(path)
    Image.fromarray(talking).save(tmp_path / "talking.png")
    result = build_avatar(tmp_path / "talking.png", tmp_path / "out", BuildOptions())
    assert result.status == "built", result.error
    avatar = load_avatar(result.output)
    assert avatar.seam is not None
    frame = avatar.frames[0]
    mbp = weight_vector({"MBP": 1.0})
    for variant in ("sprites", "mesh"):
        drawn = make_variant(avatar, variant).draw(frame, 0, mbp)
        assert _opening(landmarks(drawn)) <= 0.10, variant
    # Closing, the mesh squeezes the photo's teeth into the narrowing gap: it is shaded, not
    # a bright line (p90 luminance there was 162-172 on hero, over the lips' 139).
    lips = float(avatar.seam.rgb @ LUMA) / seam.LIP_SHADE
    mesh = make_variant(avatar, "mesh")
    affine = avatar.roi_affine(0)
    for w in (0.8, 0.9):
        weights = weight_vector({"MBP": w, "Rest": 1 - w})
        drawn = mesh.draw(frame, 0, weights)
        gap = avatar.mesh.opening(avatar.mesh.offsets(weights)) @ affine[:, :2].T + affine[:, 2]
        inside = polygon_alpha(gap, avatar.size) > 0.3
        assert inside.sum() > 20
        assert np.percentile(drawn[inside].astype(np.float32) @ LUMA, 90) <= lips, w


@pytest.mark.parametrize("path", [HERO, DATA / "obama.jpg", DATA / "hopper.jpg",
                                  DATA / "biden.jpg", DATA / "obama3.jpg"],
                         ids=["hero", "obama", "hopper", "biden", "obama3"])
def test_jaw_counts_as_open_only_on_open_photos(path) -> None:
    """Closed mouths and smiles over touching teeth keep the face mesh's grid (their assets
    do not change); the same portraits opened to AI measure the cavity as the jaw's part."""
    rgb, face = load(path)

    def fitted(image: np.ndarray, f):
        roi = mouth_roi(f, (image.shape[1], image.shape[0]))
        patch = roi.crop(image)
        grid = build_grid(f, roi)
        return grid, fit_open_mouth(patch, grid, measure_look(patch, grid))

    grid, fit = fitted(rgb, face)
    assert fit is grid and not np.any(fit.jaw_open) and not np.any(fit.jaw_drop)
    talking = _with(rgb, make_mouth_assets(rgb, face), "AI")
    grid, fit = fitted(talking, detect_faces(talking)[0])
    c0, c1 = grid.corner_cols
    middle = fit.jaw_open[(c0 + c1) // 2 - 1:(c0 + c1) // 2 + 3]
    assert np.all(middle > 0.05 * grid.mouth_width), fit.jaw_open / grid.mouth_width
    assert np.all(fit.jaw_open <= fit.points[4, :, 1] - fit.points[3, :, 1] + 1e-6)
    # What a closed jaw hides: the cavity and the lower teeth below it, within the opening.
    drop = fit.jaw_drop[(c0 + c1) // 2 - 1:(c0 + c1) // 2 + 3]
    assert np.all(drop >= middle - 1e-6), (drop, middle)
    assert np.all(fit.jaw_drop <= fit.points[4, :, 1] - fit.points[3, :, 1] + 1e-6)


@pytest.mark.parametrize("path", [HERO, DATA / "obama.jpg"], ids=["hero", "obama"])
def test_ai_on_an_ai_open_photo_is_about_the_photo(path) -> None:
    """Opening shapes open from a closed jaw: on a photo already open to AI, AI reads about
    as open as the photo, and E (which opens less than AI) less. Adding each shape's whole
    opening on top of the photo's stretched AI to 0.8 mouth widths, which the detector read
    as 0.32 against the photo's 0.47 on obama, with E at 0.64."""
    talking, _, assets = _opened(path)
    measured = {k: _opening(landmarks(_with(talking, assets, k))) for k in ("Rest", "AI", "E")}
    assert measured["AI"] >= measured["Rest"] - 0.02, measured
    assert measured["AI"] <= measured["Rest"] + 0.2, measured
    assert measured["E"] < measured["AI"], measured


def test_rising_chin_keeps_the_shadow_under_it_thin() -> None:
    """On an open photo, shapes that open less raise the jaw. The chin and its shadow move up
    as a block and the neck under them shows: drawn through the grid alone, the thin dark
    shadow under hopper's chin (opened with AI) stretched into a dark band twice as tall
    (17-18 dark rows under the lower lip on E, U, WQ, R, CH, TH against the photo's 9; 7-9
    with the rigid chin)."""
    talking, face, assets = _opened(DATA / "hopper.jpg")
    roi = assets.roi
    patch = roi.crop(talking)
    grid = build_grid(face, roi)
    cx, mw = int(round(grid.center_x)), grid.mouth_width
    half = int(0.15 * mw)
    top = int(grid.points[6, :, 1].max())  # the photo's skin under the lower lip
    patch_lum = patch[top:, cx - half:cx + half + 1].astype(np.float64) @ LUMA

    def dark_rows(cell: np.ndarray, start: int) -> int:
        """Rows under the (moved) lower lip, mouth centre, darker than 0.4 x the neck."""
        lum = cell[start:, cx - half:cx + half + 1].astype(np.float64) @ LUMA
        return int(np.sum(lum.mean(axis=1) < 0.4 * np.median(patch_lum)))

    photo = dark_rows(patch, top)
    assert photo >= 5, photo  # the photo has a shadow under its chin
    for name in ("E", "U", "WQ", "R", "CH", "TH", "FV"):
        offsets = np.asarray(assets.meshdef["targets"][name]).reshape(grid.points.shape)
        start = int((grid.points[6, :, 1] + offsets[6, :, 1]).max())  # under its lower lip
        assert start < top - 2, (name, start, top)  # the jaw rose
        shown = dark_rows(composite(patch, assets.sprites[name]), start)
        assert shown <= 1.35 * photo, (name, shown, photo)
