"""The idle loop's parts on synthetic inputs with known answers."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from PIL import Image

from avatarkit.errors import AvatarkitError
from avatarkit.face.landmarks import Face
from avatarkit.idle import IdleOptions, read_frames, read_track
from avatarkit.idle.curves import (
    SEAM_MARGIN_S,
    auto_blinks,
    blink_curve,
    harmonics,
    motion_curves,
)
from avatarkit.idle.encode import H264Writer, video_info
from avatarkit.idle.track import Track, fit_affine
from avatarkit.idle.warp import HeadRig, Warper, forward_points, sample_field
from avatarkit.mouth.roi import Roi
from tests.idle_cases import HERO


def checkerboard(w: int, h: int, cell: int = 8) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    board = (((xx // cell) + (yy // cell)) % 2 * 200 + 30).astype(np.uint8)
    return np.dstack([board, np.roll(board, 3, axis=1), board // 2])


def rig(size: tuple[int, int], head: np.ndarray | None = None) -> HeadRig:
    from avatarkit.idle.warp import _grid

    grid = _grid(size)
    weight = np.ones(grid.shape[:2], np.float32) if head is None else head
    return HeadRig(size, grid, np.array([size[0] / 2, size[1] * 0.8]), 100.0, weight,
                   np.ones_like(weight))


def test_rigid_head_region_is_exactly_the_affine() -> None:
    """Where the head weight is 1, the coarse-grid warp equals cv2.warpAffine of the head."""
    size = (160, 200)
    board = checkerboard(*size)
    r = rig(size)
    field = r.field(roll_deg=2.0, nod=0.01, breath=0.01)
    frame = Warper(size).render(board, field)
    expected = cv2.warpAffine(board, r.head_affine(2.0, 0.01, 0.01), size,
                              flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    inner = (slice(20, 180), slice(20, 140))
    diff = np.abs(frame[inner].astype(int) - expected[inner])
    assert diff.mean() < 0.2  # both sample at 1/32 px, so edges may differ by a few levels
    # The sampling map itself is the inverse affine to float precision.
    inv = cv2.invertAffineTransform(r.head_affine(2.0, 0.01, 0.01))
    yy, xx = np.mgrid[0:200, 0:160].astype(np.float32)
    exact = np.dstack([inv[0, 0] * xx + inv[0, 1] * yy + inv[0, 2],
                       inv[1, 0] * xx + inv[1, 1] * yy + inv[1, 2]])
    assert np.abs(Warper(size).full_map(field) - exact)[inner].max() < 1e-3


def test_forward_points_invert_the_backward_field() -> None:
    size = (160, 200)
    gh, gw = rig(size).grid.shape[:2]
    yy, xx = np.mgrid[0:gh, 0:gw]
    falloff = np.clip(1.2 - yy / gh, 0, 1).astype(np.float32)  # not affine: weights vary
    field = rig(size, falloff).field(1.5, 0.0, 0.02)
    pts = np.array([[30.0, 40.0], [80.0, 100.0], [120.5, 170.25]])
    q = forward_points(field, size, pts)
    assert np.allclose(q + sample_field(field, size, q), pts, atol=1e-3)
    assert np.abs(q - pts).max() > 0.5  # and they did move


def test_affine_fit_recovers_a_known_transform() -> None:
    m = np.array([[0.99, -0.03, 4.0], [0.03, 0.98, -2.0]])
    src = np.random.default_rng(1).uniform(0, 100, (12, 2))
    assert np.allclose(fit_affine(src, src @ m[:, :2].T + m[:, 2]), m)


def test_motion_curves_loop_and_respect_motion_scale() -> None:
    opts = IdleOptions(seed=3)
    c = motion_curves(opts)
    steps = np.abs(np.diff(c.roll_deg))
    assert abs(c.roll_deg[-1] - c.roll_deg[0]) <= np.median(steps)  # frame N == frame 0
    assert 1.0 < np.abs(c.roll_deg).max() <= 2.0
    still = motion_curves(IdleOptions(seed=3, motion=0))
    assert not still.roll_deg.any() and not still.breath.any() and not still.nod.any()
    assert np.array_equal(still.blink, c.blink)  # motion 0 still blinks
    lively = motion_curves(IdleOptions(seed=3, motion=2))
    assert np.allclose(lively.roll_deg, 2 * c.roll_deg)



@pytest.mark.parametrize("seconds", [3.0, 4.0, 5.0, 7.5, 10.0])
def test_head_flows_through_the_seam_at_an_even_speed(seconds: float) -> None:
    """Periodic, never still, peak speed within 2.5x the mean, and the seam step no larger
    than a typical one (but not zero: no standstill) for every loop length and seeds."""
    for seed in range(8):
        c = motion_curves(IdleOptions(seconds=seconds, seed=seed))
        steps = np.abs(np.diff(np.append(c.roll_deg, c.roll_deg[0])))
        assert steps.max() <= 2.5 * steps.mean(), (seed, steps.max() / steps.mean())
        assert 0.15 * steps.mean() <= steps[-1] <= np.median(steps), seed
        assert steps.max() * 25 / IdleOptions(seconds=seconds).fps < 5.0  # deg/s, calm


def test_long_loops_do_not_repeat_inside() -> None:
    for seconds in (3, 4, 6, 8, 10):
        ks = harmonics(seconds)
        assert len(set(ks)) == len(ks) and np.gcd.reduce(ks) == 1, ks


def test_automatic_blinks_as_people_blink() -> None:
    """One or two blinks per 4 s (both occur across seeds), about 3-4 in 10 s, irregular
    intervals, never near the seam and at least a second apart around the loop."""
    counts = {auto_blinks(4.0, np.random.default_rng(s)) for s in range(40)}
    assert counts == {1, 2}
    for seed in range(20):
        for seconds in (4.0, 10.0):
            opts = IdleOptions(seconds=seconds, seed=seed)
            c = motion_curves(opts)
            starts = np.flatnonzero(np.diff(np.append(0, (c.blink > 0).astype(int))) == 1)
            assert (1 if seconds == 4.0 else 3) <= len(starts) <= (2 if seconds == 4.0 else 4)
            gaps = np.diff(np.append(starts, starts[0] + opts.frames))
            assert gaps.min() >= opts.fps
            on = np.flatnonzero(c.blink > 0)
            assert on.min() >= SEAM_MARGIN_S * opts.fps - 1
            assert on.max() <= opts.frames - SEAM_MARGIN_S * opts.fps


@pytest.mark.parametrize("fps,count", [(24, 1), (25, 2), (30, 3)])
def test_blinks_are_natural_and_clear_of_the_seam(fps: int, count: int) -> None:
    frames = 4 * fps
    curve = blink_curve(frames, fps, count, np.random.default_rng(fps))
    shut = np.flatnonzero(curve >= 1.0)
    assert len(shut) == count, "each blink closes the lids fully"
    on = np.flatnonzero(curve > 0)
    runs = np.split(on, np.flatnonzero(np.diff(on) > 1) + 1)
    assert len(runs) == count
    for run in runs:
        assert 0.1 <= len(run) / fps <= 0.3
        assert run[0] >= SEAM_MARGIN_S * fps - 1 and run[-1] <= frames - SEAM_MARGIN_S * fps


def test_seed_reproduces_and_changes_the_motion() -> None:
    a, b = motion_curves(IdleOptions(seed=5)), motion_curves(IdleOptions(seed=5))
    c = motion_curves(IdleOptions(seed=6))
    assert np.array_equal(a.roll_deg, b.roll_deg) and np.array_equal(a.blink, b.blink)
    assert not np.allclose(a.roll_deg, c.roll_deg)


@pytest.mark.parametrize("kwargs,name", [
    ({"seconds": 2.5}, "--seconds"), ({"seconds": 10.5}, "--seconds"), ({"fps": 60}, "--fps"),
    ({"motion": 2.5}, "--motion"), ({"blinks": -1}, "--blinks"),
    ({"seconds": 3.0, "blinks": 4}, "--blinks"),
])
def test_options_out_of_range_say_which_option(kwargs: dict, name: str) -> None:
    with pytest.raises(AvatarkitError, match=name):
        IdleOptions(**kwargs)


def test_odd_sized_frames_are_padded_to_even(tmp_path) -> None:
    board = np.asarray(Image.open(HERO).convert("RGB"))[100:221, 80:241]  # 161 x 121
    with H264Writer(tmp_path / "odd.mp4", (161, 121), 24, frames=24) as writer:
        for i in range(24):
            writer.write(np.roll(board, i, axis=1))
    info = video_info(tmp_path / "odd.mp4")
    assert info["size"] == (162, 122) and info["codec"] == "h264"
    frames = list(read_frames(tmp_path / "odd.mp4"))
    assert len(frames) == 24
    assert np.abs(frames[0][:121, :161].astype(int) - board).mean() < 4


def test_encoder_failure_is_an_avatarkit_error(tmp_path) -> None:
    with pytest.raises(AvatarkitError, match="ffmpeg"):
        with H264Writer(tmp_path / "missing" / "x.mp4", (16, 16), 24, frames=2) as writer:
            writer.write(np.zeros((16, 16, 3), np.uint8))


def test_track_round_trip_and_bad_file(tmp_path) -> None:
    m = np.tile(np.array([[1.0, 0.0, 2.5], [0.0, 1.0, -1.0]]), (3, 1, 1))
    Track(25.0, Roi(10, 20, 40, 30), m).write(tmp_path / "track.json")
    back = read_track(tmp_path / "track.json")
    assert back.roi == Roi(10, 20, 40, 30) and back.frames == 3
    assert np.allclose(back.apply(4, np.array([[10.0, 20.0]])), [[12.5, 19.0]])  # wraps
    (tmp_path / "bad.json").write_text(json.dumps({"fps": 25}))
    with pytest.raises(AvatarkitError, match=r"bad.json is damaged \(no 'transforms' field\)"):
        read_track(tmp_path / "bad.json")
    with pytest.raises(AvatarkitError, match="could not read .*none.json: No such file"):
        read_track(tmp_path / "none.json")


def test_face_type_is_what_the_rig_reads() -> None:
    """Guard the one assumption the rigs make about Face: 478 points with a bbox."""
    pts = np.zeros((478, 2), np.float32)
    assert Face(pts, np.zeros(478, np.float32)).bbox == (0.0, 0.0, 0.0, 0.0)
