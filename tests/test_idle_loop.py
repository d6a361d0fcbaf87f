"""The example's idle loop, measured from the decoded MP4 and re-detected landmarks."""

from __future__ import annotations

import json
import re
import subprocess

import cv2
import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from avatarkit.idle import IdleOptions
from avatarkit.idle import quality as q
from tests.idle_cases import HERO, Built, build, load

OPTIONS = IdleOptions()  # the defaults: 4 s at 25 fps, one blink, motion 1


@pytest.fixture(scope="module")
def hero(tmp_path_factory: pytest.TempPathFactory) -> Built:
    rgb, face = load(HERO)
    return build(rgb, face, tmp_path_factory.mktemp("hero"), OPTIONS)


@pytest.fixture(scope="module")
def points(hero: Built) -> np.ndarray:
    pts = q.redetect(hero.frames)
    assert not np.isnan(pts).any(), "the face must be found in every frame"
    return pts


def test_files_and_video_format(hero: Built) -> None:
    assert hero.names == ["idle.mp4", "idle_poster.png", "track.json"]
    h, w = hero.rgb.shape[:2]
    assert hero.frames.shape == (OPTIONS.frames, h + h % 2, w + w % 2, 3)
    probe = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(hero.folder / "idle.mp4"),
         "-vf", "showinfo", "-f", "null", "-"], capture_output=True, text=True, check=True,
    ).stderr
    assert re.search(r"Video: h264 \(High\).*yuv420p", probe)
    assert "25 fps" in probe
    keys = re.findall(r"n:\s*(\d+).*?iskey:(\d)", probe)
    assert keys[0] == ("0", "1"), "frame 0 must be a keyframe"
    data = (hero.folder / "idle.mp4").read_bytes()
    assert data.index(b"moov") < data.index(b"mdat"), "+faststart puts the index first"
    poster = np.asarray(Image.open(hero.folder / "idle_poster.png").convert("RGB"))
    assert poster.shape == hero.frames[0].shape
    assert np.abs(poster.astype(int) - hero.frames[0]).mean() < 3.0  # same frame, pre-codec


def test_track_json_document(hero: Built) -> None:
    doc = json.loads((hero.folder / "track.json").read_text())
    assert doc["fps"] == OPTIONS.fps and doc["frames"] == OPTIONS.frames
    assert doc["roi"] == hero.roi.as_dict()
    assert len(doc["transforms"]) == OPTIONS.frames
    assert all(len(m) == 6 for m in doc["transforms"])
    # The head turns: the transforms are not all the identity.
    assert np.ptp(np.asarray(doc["transforms"])[:, 1]) > 0.01


def test_seam_is_no_larger_than_a_neighbour_step(hero: Built) -> None:
    neighbours, seam = q.frame_differences(hero.frames)
    assert np.median(neighbours) > 0.05, "the loop must actually move"
    assert seam <= np.median(neighbours), (seam, np.median(neighbours))


def test_blink_closes_the_eyes_and_they_reopen(hero: Built, points: np.ndarray) -> None:
    blink = hero.loop.curves.blink
    stats = q.blink_stats(q.eye_openness(points), blink)
    assert stats.min_ear < 0.5 * stats.open_ear, stats
    assert stats.min_elsewhere > 0.8 * stats.open_ear, stats
    # One or two blinks of 100-300 ms each, clear of the seam.
    on = np.flatnonzero(blink > 0)
    runs = np.split(on, np.flatnonzero(np.diff(on) > 1) + 1)
    assert 1 <= len(runs) <= 2
    for run in runs:
        assert 0.1 <= len(run) / OPTIONS.fps <= 0.3
    assert on.min() > 0.25 * OPTIONS.fps and on.max() < OPTIONS.frames - 0.25 * OPTIONS.fps


def test_head_motion_amplitude_and_smoothness(hero: Built, points: np.ndarray) -> None:
    angles = q.head_angles(points, hero.face.points)
    amplitude = (angles.max() - angles.min()) / 2
    assert 0.5 <= amplitude <= 2.5, angles
    # No frame-to-frame jumps (the last step runs across the seam into frame 0).
    steps = np.abs(np.diff(np.append(angles, angles[0])))
    clear = q.clear_of_blinks(hero.loop.curves.blink)
    assert steps[clear].max() <= 0.35, steps
    assert np.abs(np.diff(angles)).max() < 0.6, "not even during blinks"
    # The measured rotation follows the planned smooth curve (up to a constant detector bias).
    residual = angles - hero.loop.curves.roll_deg
    assert np.std(residual) < 0.3


def test_head_flows_at_an_even_speed(hero: Built, points: np.ndarray) -> None:
    """No rest-then-rush: the detected roll (jitter low-passed) never stops and never races,
    and it moves across the seam as it does elsewhere instead of standing still there."""
    away = q.away_from_blinks(hero.loop.curves.blink)
    speed = q.roll_speed(q.head_angles(points, hero.face.points), OPTIONS.fps, away)
    assert speed.max() <= 2.5 * speed.mean(), (speed.max(), speed.mean())
    assert np.mean(speed < 0.1 * speed.mean()) < 0.1, "the head must not stand still"
    # The plan behind it (the detector's jitter at the seam is larger than the motion there):
    # the seam step is a slow one, not a stop.
    planned = np.abs(np.diff(np.append(hero.loop.curves.roll_deg, hero.loop.curves.roll_deg[0])))
    assert planned.max() <= 2.5 * planned.mean()
    assert 0.15 * planned.mean() <= planned[-1] <= np.median(planned)


def test_eyes_shift_gaze_and_brows_rise(hero: Built, points: np.ndarray) -> None:
    """The detector sees the irises move as planned and the brows lift, away from blinks."""
    curves = hero.loop.curves
    clear = q.away_from_blinks(curves.blink)
    looked = q.iris_offsets(points)[:, 0]
    assert np.ptp(curves.gaze[:, 0]) > 0.2 and curves.gaze[0].tolist() == [0.0, 0.0]
    assert np.corrcoef(looked[clear], curves.gaze[clear, 0])[0, 1] > 0.7
    heights = q.brow_heights(points)
    assert np.corrcoef(heights[clear], curves.brow[clear])[0, 1] > 0.5
    assert heights[curves.brow > 0.9].mean() - heights[curves.brow == 0].mean() > 0.5
    # Eye and brow movements, like blinks, keep away from the seam.
    assert not curves.brow[:5].any() and not curves.brow[-5:].any()
    assert not np.abs(curves.gaze[:5]).any() and not np.abs(curves.gaze[-5:]).any()


def test_track_follows_the_mouth(hero: Built, points: np.ndarray) -> None:
    errors = q.track_errors(hero.track, hero.face.points, points)
    assert np.median(errors) <= 1.5, np.median(errors)
    assert errors.max() <= 4.0


def test_mouth_stays_at_rest(hero: Built) -> None:
    """Undo each frame's track transform: the mouth region is the photo's, not re-shaped."""
    roi = hero.roi
    photo = roi.crop(hero.rgb).astype(np.int16)
    h, w = hero.frames.shape[1:3]
    worst = 0.0
    for i in range(0, len(hero.frames), 5):
        back = cv2.invertAffineTransform(hero.track.transforms[i])
        undone = cv2.warpAffine(hero.frames[i], back, (w, h), flags=cv2.INTER_LINEAR)
        worst = max(worst, float(np.abs(roi.crop(undone).astype(np.int16) - photo).mean()))
    assert worst < 4.0, worst


def test_background_stays_still(hero: Built) -> None:
    assert hero.loop.mode == "parallax"
    person = hero.loop.warper.alpha > 5
    mean, p99 = q.background_motion(hero.frames, person, band_px=8)
    assert mean < 0.3 and p99 <= 4, (mean, p99)


def test_person_moves_over_the_background(hero: Built) -> None:
    """Parallax: the hair edge moves while the wall beside it does not."""
    alpha = hero.loop.warper.alpha
    edge = cv2.morphologyEx((alpha > 128).astype(np.uint8), cv2.MORPH_GRADIENT,
                            np.ones((5, 5), np.uint8)) > 0
    head_rows = np.zeros_like(edge)
    head_rows[: int(hero.face.bbox[3])] = True
    f = hero.frames.astype(np.int16)
    change = np.abs(f - f[0]).max(axis=0).max(axis=-1)
    assert np.median(change[edge & head_rows]) > 10
