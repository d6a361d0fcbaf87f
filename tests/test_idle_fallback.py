"""Bad inputs still give a sensible loop (head-only, with a warning); motion 0 and the seed
behave; other real portraits blink and keep the track on the mouth."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from avatarkit.build import BuildOptions, build_avatar
from avatarkit.errors import AvatarkitWarning
from avatarkit.idle import IdleOptions, make_idle_loop, segment
from avatarkit.idle import quality as q
from avatarkit.mouth.roi import mouth_roi
from tests.idle_cases import DATA, HERO, Built, build, load

SHORT = IdleOptions(seconds=3.0, fps=24)
CUT_AT_SHOULDERS = (70, 50, 230, 250)  # obama.jpg: the frame ends just under the chin


@pytest.fixture(scope="module")
def cut(tmp_path_factory: pytest.TempPathFactory) -> tuple[Built, list[str]]:
    rgb, face = load(DATA / "obama.jpg", CUT_AT_SHOULDERS)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        built = build(rgb, face, tmp_path_factory.mktemp("cut"), SHORT)
    return built, [str(w.message) for w in caught if issubclass(w.category, AvatarkitWarning)]


def test_cut_at_the_shoulders_falls_back_with_a_warning(cut: tuple[Built, list[str]]) -> None:
    built, caught = cut
    assert built.loop.mode == "head-only"
    assert any("cut off at the shoulders" in m for m in caught)
    assert built.loop.notes == caught


def test_fallback_loop_still_loops_moves_and_tracks(cut: tuple[Built, list[str]]) -> None:
    built, _ = cut
    neighbours, seam = q.frame_differences(built.frames)
    assert seam <= np.median(neighbours)
    points = q.redetect(built.frames)
    angles = q.head_angles(points, built.face.points)
    assert 0.5 <= (angles.max() - angles.min()) / 2 <= 2.5
    assert np.median(q.track_errors(built.track, built.face.points, points)) <= 1.5
    # Head-only: the image border stays put (nothing is pulled in from outside the frame).
    f = built.frames.astype(np.int16)
    change = np.abs(f - f[0]).mean(axis=(0, 3))
    x0, y0, x1, y1 = (int(v) for v in built.face.bbox)
    assert change[:, :2].mean() < 0.25 * change[y0:y1, x0:x1].mean()


@pytest.mark.parametrize("mask,reason", [
    (None, "segmentation failed"),
    ("full", "fills the frame"),
    ("empty", "missed the face"),
])
def test_segmentation_trouble_falls_back(monkeypatch: pytest.MonkeyPatch, mask: str | None,
                                         reason: str) -> None:
    rgb, face = load(HERO)

    def fake(image: np.ndarray) -> np.ndarray:
        if mask is None:
            raise RuntimeError("graph error")
        fill = 1.0 if mask == "full" else 0.0
        return np.full(image.shape[:2], fill, np.float32)

    monkeypatch.setattr(segment, "segment_person", fake)
    with pytest.warns(AvatarkitWarning, match=reason):
        loop = make_idle_loop(rgb, face, mouth_roi(face, (320, 400)), SHORT)
    assert loop.mode == "head-only"
    assert loop.frame(10).shape == rgb.shape


def test_motion_zero_is_the_photo_except_for_blinks() -> None:
    rgb, face = load(HERO)
    loop = make_idle_loop(rgb, face, mouth_roi(face, (320, 400)), IdleOptions(motion=0))
    blink = loop.curves.blink
    for i in (0, int(np.argmax(blink)) - 8, loop.frames - 1):
        assert np.array_equal(loop.frame(i), rgb)
    shut = loop.frame(int(np.argmax(blink)))
    changed = np.abs(shut.astype(int) - rgb).sum(-1) > 0
    ys, xs = np.nonzero(changed)
    x0, y0, x1, y1 = face.bbox
    assert changed.any() and y0 <= ys.min() and ys.max() <= (y0 + y1) / 2  # only the eyes


def test_same_seed_same_frames_other_seed_other_frames(tmp_path: Path) -> None:
    rgb, face = load(HERO)
    roi = mouth_roi(face, (320, 400))
    a = make_idle_loop(rgb, face, roi, IdleOptions(seed=11))
    b = make_idle_loop(rgb, face, roi, IdleOptions(seed=11))
    c = make_idle_loop(rgb, face, roi, IdleOptions(seed=12))
    for i in (0, 37, 80):
        assert np.array_equal(a.frame(i), b.frame(i))
    assert not np.array_equal(a.frame(37), c.frame(37))
    a.write(tmp_path / "a")
    b.write(tmp_path / "b")
    assert (tmp_path / "a/idle.mp4").read_bytes() == (tmp_path / "b/idle.mp4").read_bytes()


# obama3 smiles with narrowed eyes (open EAR ~0.21) and the detector reads a shut eye at
# ~0.1 at best, so half the open value is out of its reach; the frames show the lids shut.
# Its reading of the same shut lids also swings with the head pose: 0.108 on the still photo,
# 0.127-0.159 on three neighbouring loop frames at full closure (0.60-0.75 of open), so the
# floor for it is 0.7 (biden, whose detection is steady, keeps 0.5).
@pytest.mark.parametrize("name,closed", [("biden", 0.5), ("obama3", 0.7)])
def test_other_portraits_blink_and_track(tmp_path: Path, name: str, closed: float) -> None:
    rgb, face = load(DATA / f"{name}.jpg")
    built = build(rgb, face, tmp_path, SHORT)
    assert built.loop.mode == "parallax"
    points = q.redetect(built.frames)
    stats = q.blink_stats(q.eye_openness(points), built.loop.curves.blink)
    assert stats.min_ear < closed * stats.open_ear, stats
    assert stats.min_elsewhere > 0.8 * stats.open_ear, stats
    assert np.median(q.track_errors(built.track, built.face.points, points)) <= 1.5
    neighbours, seam = q.frame_differences(built.frames)
    assert seam <= np.median(neighbours)


def test_build_writes_and_lists_the_idle_files(tmp_path: Path) -> None:
    result = build_avatar(HERO, tmp_path, BuildOptions(idle=SHORT))
    manifest = json.loads((tmp_path / "hero" / "avatar.json").read_text())
    for name in ("idle.mp4", "idle_poster.png", "track.json"):
        assert name in manifest["files"]
        assert (tmp_path / "hero" / name).stat().st_size > 0
    assert manifest["idle"]["frames"] == 72 and manifest["idle"]["fps"] == 24
    assert manifest["idle"]["mode"] == "parallax" and manifest["idle"]["blink_frames"]
    assert "idle" in result.timings


def test_blink_frames_render_the_same_in_sequence_and_alone() -> None:
    """Regression: the person-layer cache once keyed on id(), so a new blink frame could
    reuse the previous one's layer when Python handed out the same address."""
    rgb, face = load(HERO)
    loop = make_idle_loop(rgb, face, mouth_roi(face, (320, 400)), SHORT)
    blinking = np.flatnonzero(loop.curves.blink > 0)
    in_sequence = [loop.frame(int(i)) for i in blinking]
    for i, frame in zip(blinking, in_sequence, strict=True):
        loop.warper._layer = None
        assert np.array_equal(frame, loop.frame(int(i)))
