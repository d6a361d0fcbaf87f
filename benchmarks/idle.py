"""The idle loop: quality figures of the example (from the decoded MP4 and re-detected
landmarks) and warp / encode time per frame at the example size, 1024 px and 2048 px.

    python benchmarks/idle.py

Issue 13 asks for peak roll speed <= 2.5x its mean and no eye-line roll step over 0.35 deg
outside blinks. Both are printed as detected and as planned (what the warp applies; the
track follows it exactly), next to the detector's own jitter: the roll it reads on the
photo merely shifted by sub-pixel steps spreads over 0.10-0.37 deg on the test portraits,
so single detected steps of 0.3-0.43 deg are the detector, while the planned steps are at
most 0.11 deg and the planned peak speed 1.5-2.0x the mean (3-10 s loops).

Floors asserted by tests/test_idle_loop.py; budget (issue 3): the whole build of the example,
idle loop included, under 3 s on the 2-core development machine (see benchmarks/build.py).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from avatarkit.face.landmarks import detect_faces  # noqa: E402
from avatarkit.idle import IdleOptions, make_idle_loop, read_frames, read_track  # noqa: E402
from avatarkit.idle import quality as q  # noqa: E402
from avatarkit.idle.encode import H264Writer  # noqa: E402
from avatarkit.mouth.roi import mouth_roi  # noqa: E402
from avatarkit.native_stderr import quiet_native_stderr  # noqa: E402

HERO = ROOT / "examples" / "hero.jpg"


def jitter(rgb: np.ndarray, reference: np.ndarray) -> float:
    """Max - min of the roll the detector reads on the photo shifted by 0..1 px in tenths:
    how much of a detected frame-to-frame step is the detector, not the head."""
    shifted = [cv2.warpAffine(rgb, np.float32([[1, 0, d], [0, 1, d / 2]]),
                              (rgb.shape[1], rgb.shape[0]), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE) for d in np.linspace(0, 1, 11)]
    angles = q.head_angles(q.redetect(shifted), reference)
    return float(np.nanmax(angles) - np.nanmin(angles))


def quality(workdir: Path, photo: Path = HERO, seconds: float = 4.0) -> None:
    rgb = np.asarray(Image.open(photo).convert("RGB"))
    face = detect_faces(rgb)[0]
    loop = make_idle_loop(rgb, face, mouth_roi(face, (rgb.shape[1], rgb.shape[0])),
                          IdleOptions(seconds=seconds))
    loop.write(workdir / "q")
    h, w = rgb.shape[:2]
    frames = np.stack([f[:h, :w] for f in read_frames(workdir / "q" / "idle.mp4")])
    neighbours, seam = q.frame_differences(frames)
    points = q.redetect(frames)
    curves = loop.curves
    blink = q.blink_stats(q.eye_openness(points), curves.blink)
    angles = q.head_angles(points, face.points)
    steps = np.abs(np.diff(np.append(angles, angles[0])))
    away = q.away_from_blinks(curves.blink)
    speed = q.roll_speed(angles, loop.options.fps, away)
    errors = q.track_errors(read_track(workdir / "q" / "track.json"), face.points, points)
    bg_mean, bg_p99 = q.background_motion(frames, loop.warper.alpha > 5, band_px=8) \
        if loop.warper.alpha is not None else (float("nan"), float("nan"))
    gaze = np.corrcoef(q.iris_offsets(points)[away, 0], curves.gaze[away, 0])[0, 1]
    brows = q.brow_heights(points)
    rise = brows[curves.brow > 0.9].mean() - brows[curves.brow == 0].mean()
    size = (workdir / "q" / "idle.mp4").stat().st_size
    print(f"{photo.name} idle loop ({loop.mode}, {loop.frames} frames, {size / 1024:.0f} KiB)")
    print(f"  seam MAD {seam:.3f}  <= neighbour median {np.median(neighbours):.3f}"
          f"  (max neighbour {neighbours.max():.3f})")
    print(f"  blinks at frames {np.flatnonzero(curves.blink >= 1).tolist()}:"
          f" EAR min {blink.min_ear:.3f} / open {blink.open_ear:.3f}"
          f" = {blink.min_ear / blink.open_ear:.2f}  (lowest away from blinks"
          f" {blink.min_elsewhere:.3f})")
    print(f"  head roll amplitude {(angles.max() - angles.min()) / 2:.2f} deg,"
          f" largest frame step {steps[q.clear_of_blinks(curves.blink)].max():.2f} deg outside"
          f" blinks ({steps.max():.2f} in all), residual to plan"
          f" {np.std(angles - curves.roll_deg):.2f} deg")
    planned = np.abs(np.diff(np.append(curves.roll_deg, curves.roll_deg[0])))
    print(f"  planned roll (what the warp applies; the track follows it exactly): peak speed"
          f" {planned.max() / planned.mean():.2f}x mean, largest frame step"
          f" {planned.max():.3f} deg")
    print(f"  detector jitter: roll detected on the photo moved by sub-pixel steps (no"
          f" rotation) spreads over {jitter(rgb, face.points):.2f} deg")
    print(f"  roll speed (low-passed detector) peak {speed.max():.2f} deg/s ="
          f" {speed.max() / speed.mean():.2f}x mean, at the seam {speed[-1]:.2f} deg/s,"
          f" frames under 10 % of mean {np.mean(speed < 0.1 * speed.mean()):.0%}")
    print(f"  gaze: detected iris x vs plan r {gaze:.2f};"
          f" brow rise {rise:.2f} px detected")
    print(f"  track error median {np.median(errors):.2f} px, max {errors.max():.2f} px")
    print(f"  background beyond 8 px of the person: mean change {bg_mean:.3f},"
          f" p99 {bg_p99:.0f} levels")


def speed(rgb: np.ndarray, label: str, workdir: Path) -> None:
    face = detect_faces(rgb)[0]
    t0 = time.perf_counter()
    loop = make_idle_loop(rgb, face, mouth_roi(face, (rgb.shape[1], rgb.shape[0])))
    plan = time.perf_counter() - t0
    t0 = time.perf_counter()
    frames = [loop.frame(i) for i in range(loop.frames)]
    warp = (time.perf_counter() - t0) / loop.frames
    h, w = rgb.shape[:2]
    t0 = time.perf_counter()
    with H264Writer(workdir / "s.mp4", (w, h), loop.options.fps, frames=loop.frames) as out:
        for f in frames:
            out.write(f)
    encode = (time.perf_counter() - t0) / loop.frames
    del frames
    t0 = time.perf_counter()
    loop.write(workdir / "w")
    total = time.perf_counter() - t0
    print(f"{label:<22}{plan * 1000:>9.0f}{warp * 1000:>10.1f}{encode * 1000:>10.1f}"
          f"{total:>12.2f}")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, quiet_native_stderr():
        workdir = Path(tmp)
        for photo in (HERO, *sorted((ROOT / "tests" / "data").glob("*.jpg"))):
            if photo.stem != "partial_face":
                quality(workdir, photo)
        quality(workdir, HERO, seconds=10.0)
        hero = Image.open(HERO).convert("RGB")
        print("\nper frame, ms (plan once per loop; write = warp and encode overlapped, s)")
        print(f"{'photo':<22}{'plan':>9}{'warp':>10}{'encode':>10}{'write 4 s':>12}")
        for side in (None, 1024, 2048):
            img = hero
            if side:
                scale = side / max(hero.size)
                img = hero.resize((round(hero.width * scale), round(hero.height * scale)),
                                  Image.LANCZOS)
            label = f"{'example' if side is None else f'{side} px'} ({img.width}x{img.height})"
            speed(np.asarray(img), label, workdir)


if __name__ == "__main__":
    main()
