"""Sprites over the moving head: at the idle loop's largest displacement, an open-mouth
sprite leaves no band where it fades out (the chin drops over the live frame's own neck
and collar instead of bringing the still photo's along)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avatarkit.build import BuildOptions, build_avatar
from avatarkit.mouth.place import frame_box, to_box
from avatarkit.render import Avatar, load_avatar, make_variant
from avatarkit.visemes.classes import VISEME_CLASSES

DATA = Path(__file__).parent / "data"
OPEN = ("AI", "E", "O", "L", "TH", "CH")


def _energy(img: np.ndarray, band: np.ndarray) -> float:
    g = img.astype(np.float64).mean(axis=2)
    gy, gx = np.gradient(g)
    return float(np.mean((gx**2 + gy**2)[band]))


def _largest_displacement(avatar: Avatar) -> int:
    identity = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    roi = avatar.roi
    moved = [np.abs(avatar.roi_affine(i) - avatar.roi_affine(0)).sum()
             + np.abs(avatar.roi_affine(i)[:, :2] - identity[:, :2]).sum() * roi.h
             for i in range(avatar.loop_frames)]
    return int(np.argmax(moved))


def _check(avatar: Avatar) -> None:
    i = _largest_displacement(avatar)
    frame = avatar.frames[i]
    m = avatar.roi_affine(i)
    roi = avatar.roi
    x0, y0, x1, y1 = box = frame_box(m, (roi.w, roi.h), (frame.shape[1], frame.shape[0]))
    mask = to_box(avatar.mask.astype(np.float32) / 255.0, m, box, fill_edge=False)
    band = (mask > 0.08) & (mask < 0.92)
    idle = _energy(frame[y0:y1, x0:x1], band)
    sprites = make_variant(avatar, "sprites")
    for name in OPEN:
        weights = np.zeros(len(VISEME_CLASSES))
        weights[VISEME_CLASSES.index(name)] = 1.0
        out = sprites.draw(frame, i, weights)
        energy = _energy(out[y0:y1, x0:x1], band)
        assert energy <= 1.10 * idle, f"{avatar.name}/{name} frame {i}: {energy:.1f} vs {idle:.1f}"
        # Below the chin the sprite has faded out: the frame's own neck and collar show.
        cell = to_box(avatar.cells[name][..., 3].astype(np.float32) / 255.0, m, box,
                      fill_edge=False)
        lower = np.zeros_like(band)
        lower[int(0.75 * (y1 - y0)):] = True
        gone = lower & (mask > 0.5) & (cell < 0.01)
        assert gone.sum() > 20, f"{avatar.name}/{name}: the sprite covers the collar"
        diff = np.abs(out[y0:y1, x0:x1].astype(int) - frame[y0:y1, x0:x1])[gone]
        assert diff.max() <= 3 and diff.mean() < 0.5, (
            f"{avatar.name}/{name}: {diff.max()} levels under the chin")


def test_open_sprites_leave_no_band_on_the_moving_head(hero: Avatar) -> None:
    _check(hero)


@pytest.mark.parametrize("name", ["biden", "obama3"])
def test_other_portraits(tmp_path: Path, name: str) -> None:
    result = build_avatar(DATA / f"{name}.jpg", tmp_path, BuildOptions())
    assert result.status == "built", result.error
    _check(load_avatar(result.output))
