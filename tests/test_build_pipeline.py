"""build_avatar: the manifest, skip/force, atomic output and every bad-input error."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from avatarkit.build import ASSET_STAGES, BuildOptions, IdleOptions, build_avatar, pipeline
from avatarkit.errors import AvatarkitError
from avatarkit.version import __version__
from avatarkit.visemes.classes import VISEME_CLASSES
from tests.photo_cases import (
    DATA,
    FAST,
    HERO,
    gradient,
    head_turned,
    hero,
    save,
    two_faces,
)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, object]:
    """The example built once for the whole module."""
    out = tmp_path_factory.mktemp("built")
    return out, build_avatar(HERO, out, FAST)


@pytest.fixture
def avatar_copy(built, tmp_path) -> Path:
    """A private copy of the built avatar under tmp_path/out (so tests may rebuild it)."""
    shutil.copytree(built[0] / "hero", tmp_path / "out" / "hero")
    return tmp_path / "out"


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def fail_late(ctx) -> list[str]:
    (ctx.folder / "half_written.bin").write_bytes(b"x" * 100)
    raise AvatarkitError("injected failure in a late stage")


# ---- the avatar folder and its manifest ---------------------------------------------------

def test_build_writes_the_manifest(built):
    out, result = built
    folder = out / "hero"
    assert result.status == "built" and result.output == str(folder) and result.error is None
    manifest = json.loads((folder / "avatar.json").read_text())
    on_disk = sorted(p.name for p in folder.iterdir())
    assert sorted(manifest["files"] + ["avatar.json"]) == on_disk
    assert sorted(Path(f).name for f in result.files) == on_disk
    for name in ("atlas.png", "atlas.json", "meshdef.json", "mask_mouth.png"):
        assert name in manifest["files"]
    assert manifest["classes"] == list(VISEME_CLASSES)
    assert manifest["tool"] == {"name": "avatarkit", "version": __version__}
    assert manifest["source"]["sha256"] == hashlib.sha256(HERO.read_bytes()).hexdigest()
    assert manifest["source"]["size"] == {"w": 320, "h": 400}
    assert manifest["frame"] == {"w": 320, "h": 400, "scale_from_source": 1.0}
    assert manifest["roi"] == json.loads((folder / "atlas.json").read_text())["roi"]
    points = np.array(manifest["landmarks"]["points"])
    assert points.shape == (478, 2)
    roi = manifest["roi"]  # the mouth corners lie inside the ROI
    for corner in points[[61, 291]]:
        assert roi["x"] < corner[0] < roi["x"] + roi["w"]
        assert roi["y"] < corner[1] < roi["y"] + roi["h"]
    assert manifest["face"]["index"] == 0 and manifest["face"]["faces_found"] == 1
    assert manifest["settings"]["idle"]["seconds"] == 3.0
    assert {"load", "detect", "mouth"} <= set(manifest["timings_s"])
    assert set(result.timings) >= {"load", "detect", "mouth", "manifest", "total"}
    assert re.fullmatch(r"[0-9a-f]{64}", manifest["build_hash"])


def test_no_temporary_folders_left(built):
    assert [p.name for p in built[0].iterdir()] == ["hero"]


# ---- skip / force ---------------------------------------------------------------------------

def test_unchanged_input_is_skipped(avatar_copy):
    before = snapshot(avatar_copy / "hero")
    result = build_avatar(HERO, avatar_copy, FAST)
    assert result.status == "skipped"
    assert "detect" not in result.timings  # no work beyond hashing the file
    assert snapshot(avatar_copy / "hero") == before


def test_force_rebuilds(avatar_copy):
    inode = (avatar_copy / "hero").stat().st_ino
    result = build_avatar(HERO, avatar_copy, replace(FAST, force=True))
    assert result.status == "built"
    assert (avatar_copy / "hero").stat().st_ino != inode  # a new folder was swapped in
    assert sorted(p.name for p in avatar_copy.iterdir()) == ["hero"]


def test_changed_settings_or_bytes_rebuild(avatar_copy, tmp_path):
    other_seed = replace(FAST, idle=IdleOptions(seconds=3.0, fps=24, seed=7))
    assert build_avatar(HERO, avatar_copy, other_seed).status == "built"
    assert build_avatar(HERO, avatar_copy, other_seed).status == "skipped"
    edited = save(hero(), tmp_path / "hero.jpg", quality=90)  # same picture, other bytes
    assert build_avatar(edited, avatar_copy, other_seed).status == "built"


def test_face_none_and_face_zero_share_a_hash():
    assert BuildOptions(face=None).hash_settings() == BuildOptions(face=0).hash_settings()
    assert BuildOptions(face=1).hash_settings() != BuildOptions(face=0).hash_settings()
    assert BuildOptions(force=True).hash_settings() == BuildOptions().hash_settings()


# ---- atomic output -----------------------------------------------------------------------------

def test_failed_build_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "ASSET_STAGES", ASSET_STAGES + [("late", fail_late)])
    out = tmp_path / "new" / "out"
    with pytest.raises(AvatarkitError, match="^injected failure in a late stage$"):
        build_avatar(HERO, out, FAST)
    assert list(tmp_path.iterdir()) == []  # not even the output folders it created


def test_failed_rebuild_keeps_the_previous_avatar(avatar_copy, monkeypatch):
    before = snapshot(avatar_copy / "hero")
    monkeypatch.setattr(pipeline, "ASSET_STAGES", ASSET_STAGES + [("late", fail_late)])
    with pytest.raises(AvatarkitError):
        build_avatar(HERO, avatar_copy, replace(FAST, force=True))
    assert snapshot(avatar_copy / "hero") == before
    assert [p.name for p in avatar_copy.iterdir()] == ["hero"]


def test_failure_while_writing_the_manifest(avatar_copy, monkeypatch):
    before = snapshot(avatar_copy / "hero")

    def broken_manifest(**kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pipeline, "make_manifest", broken_manifest)
    with pytest.raises(OSError):
        build_avatar(HERO, avatar_copy, replace(FAST, force=True))
    assert snapshot(avatar_copy / "hero") == before
    assert [p.name for p in avatar_copy.iterdir()] == ["hero"]


def test_interrupt_cleans_up(tmp_path, monkeypatch):
    def interrupted(ctx):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "ASSET_STAGES", [("late", interrupted)])
    (tmp_path / "out").mkdir()
    with pytest.raises(KeyboardInterrupt):
        build_avatar(HERO, tmp_path / "out", FAST)
    assert list((tmp_path / "out").iterdir()) == []


def test_refuses_to_replace_a_folder_that_is_not_an_avatar(tmp_path):
    (tmp_path / "hero").mkdir()
    (tmp_path / "hero" / "thesis.docx").write_bytes(b"years of work")
    message = (f"{tmp_path / 'hero'} exists and is not an avatar folder (no avatar.json); it "
               "would be replaced - choose another output folder with -o or remove it")
    with pytest.raises(AvatarkitError, match=f"^{re.escape(message)}$"):
        build_avatar(HERO, tmp_path, FAST)
    assert (tmp_path / "hero" / "thesis.docx").read_bytes() == b"years of work"


def test_an_output_that_is_a_file_is_said_to_be_one(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    message = (f"could not write to {tmp_path / 'notes.txt'}: {tmp_path / 'notes.txt'} is a "
               "file - the output (-o) must be a folder")
    with pytest.raises(AvatarkitError, match=f"^{re.escape(message)}$"):
        build_avatar(HERO, tmp_path / "notes.txt", FAST)
    assert (tmp_path / "notes.txt").read_text() == "mine"


# ---- bad input: one clear line, nothing written -------------------------------------------

def assert_refused(path: Path, out: Path, pattern: str, options: BuildOptions = FAST) -> None:
    with pytest.raises(AvatarkitError) as info:
        build_avatar(path, out, options)
    assert re.fullmatch(pattern, str(info.value)), str(info.value)
    assert "\n" not in str(info.value)
    assert not out.exists()


def test_no_face(tmp_path):
    assert_refused(gradient(tmp_path / "wall.jpg"), tmp_path / "out", re.escape(
        "wall.jpg: no face found - use a well-lit photo of one person looking into the camera "
        "(crop closer if the face is small in the frame)"))


def test_face_too_small(tmp_path):
    small = save(hero().resize((160, 200), Image.LANCZOS), tmp_path / "small.jpg", quality=95)
    assert_refused(small, tmp_path / "out",
                   r"small\.jpg: the face is only \d\d px wide; at least 64 px is needed - use "
                   r"a larger photo or crop closer to the face")


def test_face_too_small_after_our_downscale(tmp_path):
    """When --max-side made the face too small, the message says to raise it."""
    assert_refused(HERO, tmp_path / "out",
                   r"hero\.jpg: the face is only \d\d px wide after downscaling to --max-side "
                   r"256; at least 64 px is needed - raise --max-side or crop closer to the face",
                   replace(FAST, max_side=256))


def test_face_cut_off(tmp_path):
    assert_refused(DATA / "partial_face.jpg", tmp_path / "out", re.escape(
        "partial_face.jpg: the face is cut off by the image edge - use a photo that shows the "
        "whole face with some margin around it"))


def test_head_turned(tmp_path):
    assert_refused(head_turned(tmp_path / "turned.jpg"), tmp_path / "out",
                   r"turned\.jpg: the head is turned too far to the side \(yaw ratio 0\.\d\d, "
                   r"max 0\.65\) - use a photo that looks roughly into the camera")


@pytest.mark.parametrize("squeeze", [0.55, 0.4])
def test_head_turned_within_the_model_builds_with_a_warning(tmp_path, squeeze):
    """A ~27 and a ~32 degree turn (yaw ratio ~0.52 and ~0.62) build, warn, and their mouth
    shapes are real: the detector sees AI open widest and MBP closed on the sprites
    composited onto the photo."""
    from avatarkit.face import regions
    from avatarkit.face.landmarks import detect_faces, landmarks
    from avatarkit.mouth.assets import make_mouth_assets
    from avatarkit.mouth.sprites import composite

    photo = head_turned(tmp_path / "turned.jpg", squeeze=squeeze)
    result = build_avatar(photo, tmp_path / "out", FAST)
    assert result.status == "built", result.error
    assert any("head is turned to the side" in w for w in result.warnings), result.warnings
    rgb = np.asarray(Image.open(photo).convert("RGB"))
    face = detect_faces(rgb)[0]
    assert 0.45 < face.yaw_ratio <= 0.65
    assets = make_mouth_assets(rgb, face)
    roi = assets.roi
    opening = {}
    for name in ("Rest", "AI", "E", "O", "MBP"):
        out = rgb.copy()
        out[roi.y:roi.y + roi.h, roi.x:roi.x + roi.w] = composite(roi.crop(rgb),
                                                                   assets.sprites[name])
        points = landmarks(out)
        opening[name] = regions.inner_lip_opening(points) / regions.mouth_width(points)
    assert max(opening, key=opening.get) == "AI", opening
    assert opening["MBP"] <= 0.10, opening


# ---- several faces --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def two(tmp_path_factory) -> Path:
    return two_faces(tmp_path_factory.mktemp("two") / "two.jpg")


def test_two_faces_use_the_largest_and_warn(two, tmp_path):
    heard: list[str] = []
    result = build_avatar(two, tmp_path, FAST, on_warning=heard.append)
    message = ("two.jpg: 2 faces found; using the largest - pass --face N to pick another "
               "(0-1, largest first)")
    assert result.warnings == heard == [message]
    manifest = json.loads((tmp_path / "two" / "avatar.json").read_text())
    assert manifest["face"]["faces_found"] == 2 and manifest["roi"]["x"] < 320  # left copy


def test_face_option_picks_another(two, tmp_path):
    result = build_avatar(two, tmp_path, replace(FAST, face=1))
    assert result.warnings == []
    manifest = json.loads((tmp_path / "two" / "avatar.json").read_text())
    assert manifest["face"]["index"] == 1 and manifest["roi"]["x"] > 320  # right copy


def test_face_out_of_range(two, tmp_path):
    assert_refused(two, tmp_path / "out", re.escape(
        "two.jpg: --face 2 asked for, but only 2 faces found (0-1, largest first)"),
        replace(FAST, face=2))


@pytest.mark.parametrize("kwargs, message", [
    ({"max_side": 100}, "--max-side must be at least 256 (got 100)"),
    ({"face": -1}, "--face must be 0 or more (got -1); 0 is the largest"),
])
def test_bad_options(kwargs, message):
    with pytest.raises(AvatarkitError, match=f"^{re.escape(message)}$"):
        BuildOptions(**kwargs)
