"""Measurements of an idle loop from what a viewer gets: decoded MP4 frames and landmarks
re-detected on them. Tests assert floors on these numbers; the benchmark prints them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from avatarkit.face import regions
from avatarkit.face.landmarks import landmarks
from avatarkit.idle.track import Track

# The whole mesh without irises: many points average out the detector's jitter, and the
# robust fit ignores the few that a blink moves.
RIGID = tuple(range(468))
# The points the track must follow: mouth corners and the lip centre (middle of 0 and 17).
MOUTH_POINTS = (regions.MOUTH_LEFT, regions.MOUTH_RIGHT)


def frame_differences(frames: np.ndarray) -> tuple[np.ndarray, float]:
    """Mean absolute difference of each neighbouring pair, and of last -> first (the seam)."""
    f = frames.astype(np.int16)
    neighbours = np.abs(np.diff(f, axis=0)).mean(axis=(1, 2, 3))
    seam = float(np.abs(f[-1] - f[0]).mean())
    return neighbours, seam


def redetect(frames: Sequence[np.ndarray]) -> np.ndarray:
    """(n, 478, 2) landmarks of every frame (NaN where no face was found)."""
    out = np.full((len(frames), 478, 2), np.nan, np.float32)
    for i, frame in enumerate(frames):
        p = landmarks(np.ascontiguousarray(frame))
        if p is not None:
            out[i] = p
    return out


def eye_openness(points: np.ndarray) -> np.ndarray:
    """Mean eye aspect ratio of both eyes, per frame."""
    return np.array([
        0.5 * (regions.eye_aspect_ratio(p, regions.EYE_IMAGE_LEFT)
               + regions.eye_aspect_ratio(p, regions.EYE_IMAGE_RIGHT))
        for p in points
    ])


def head_angles(points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Rotation in degrees of each frame's face against `reference` (a similarity fit of the
    rigid face points, so nod and breathing do not read as rotation)."""
    src = reference[list(RIGID)].astype(np.float32)
    angles = []
    for p in points:
        m, _ = cv2.estimateAffinePartial2D(src, p[list(RIGID)].astype(np.float32),
                                           method=cv2.LMEDS)
        angles.append(np.degrees(np.arctan2(m[1, 0], m[0, 0])) if m is not None else np.nan)
    return np.array(angles)


def smooth_roll(angles: np.ndarray, fps: float, valid: np.ndarray | None = None,
                cutoff_hz: float = 1.0) -> np.ndarray:
    """The detected roll of a loop without the detector's frame-to-frame jitter: frames not
    `valid` (blinks pull the eye points) are bridged by periodic interpolation, then the
    periodic signal is low-passed (head sway lives well below `cutoff_hz`)."""
    n = len(angles)
    x = np.arange(n)
    if valid is not None and not valid.all():
        good = np.flatnonzero(valid)
        angles = np.interp(x, good, angles[good], period=n)
    spectrum = np.fft.rfft(angles - angles.mean())
    spectrum[np.fft.rfftfreq(n, 1.0 / fps) > cutoff_hz] = 0
    return np.fft.irfft(spectrum, n) + angles.mean()


def roll_speed(angles: np.ndarray, fps: float, valid: np.ndarray | None = None) -> np.ndarray:
    """|roll speed| in degrees per second at each frame step of a loop (the last step runs
    across the seam into frame 0), from the low-passed detected roll."""
    smooth = smooth_roll(angles, fps, valid)
    return np.abs(np.diff(np.append(smooth, smooth[0]))) * fps


def away_from_blinks(blink: np.ndarray, guard: int = 2) -> np.ndarray:
    """Per frame: True where no blink is within `guard` frames (a closing lid pulls the
    detector's eye points and so its roll)."""
    return ~(np.convolve((blink > 0).astype(float), np.ones(2 * guard + 1), mode="same") > 0)


def clear_of_blinks(blink: np.ndarray, guard: int = 2) -> np.ndarray:
    """Per frame step i -> i+1 (around the loop): True where both frames are away from
    blinks."""
    away = away_from_blinks(blink, guard)
    return away & np.roll(away, -1)


def iris_offsets(points: np.ndarray) -> np.ndarray:
    """(frames, 2) mean position of both irises inside their eyes, relative to the middle of
    the eye corners, in eye widths (x right, y down): where the eyes look."""
    out = []
    for eye, iris in ((regions.EYE_IMAGE_LEFT, regions.IRIS_IMAGE_LEFT[0]),
                      (regions.EYE_IMAGE_RIGHT, regions.IRIS_IMAGE_RIGHT[0])):
        a, b = eye["corners"]
        mid = 0.5 * (points[:, a] + points[:, b])
        width = np.linalg.norm(points[:, a] - points[:, b], axis=-1)[:, None]
        out.append((points[:, iris] - mid) / width)
    return 0.5 * (out[0] + out[1])


def brow_heights(points: np.ndarray) -> np.ndarray:
    """Mean height of both brows above their upper lids, in pixels, per frame."""
    left = points[:, 159, 1] - points[:, list(regions.BROW_IMAGE_LEFT[:5]), 1].mean(-1)
    right = points[:, 386, 1] - points[:, list(regions.BROW_IMAGE_RIGHT[:5]), 1].mean(-1)
    return 0.5 * (left + right)


def mouth_points(points: np.ndarray) -> np.ndarray:
    """(…, 3, 2): left corner, right corner, lip centre."""
    top, bottom = points[..., regions.OUTER_LIP_TOP, :], points[..., regions.OUTER_LIP_BOTTOM, :]
    centre = 0.5 * (top + bottom)
    return np.stack([points[..., MOUTH_POINTS[0], :], points[..., MOUTH_POINTS[1], :], centre],
                    axis=-2)


def track_errors(track: Track, photo_points: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(frames, 3) distance in pixels between where the track puts the mouth corners and lip
    centre and where the detector finds them in each decoded frame."""
    ref = mouth_points(photo_points)
    predicted = np.stack([track.apply(i, ref) for i in range(len(points))])
    return np.linalg.norm(predicted - mouth_points(points), axis=-1)


def background_motion(frames: np.ndarray, person: np.ndarray, band_px: int) -> tuple[float, float]:
    """(largest mean, largest 99th percentile) absolute change against frame 0 over the pixels
    farther than `band_px` from the person: the background must not swim."""
    grow = 2 * band_px + 1
    near = cv2.dilate(person.astype(np.uint8), np.ones((grow, grow), np.uint8)) > 0
    far = ~near
    first = frames[0].astype(np.int16)
    means, p99 = [], []
    for f in frames[1:]:
        d = np.abs(f.astype(np.int16) - first)[far]
        means.append(float(d.mean()))
        p99.append(float(np.percentile(d, 99)))
    return max(means), max(p99)


@dataclass(frozen=True)
class BlinkStats:
    open_ear: float  # median eye aspect ratio away from blinks
    min_ear: float  # lowest during blinks
    min_elsewhere: float  # lowest away from blinks (must stay open)


def blink_stats(ear: np.ndarray, blink: np.ndarray, guard: int = 2) -> BlinkStats:
    """Eye openness during and away from the planned blinks (`blink` = closure per frame)."""
    during = blink > 0
    near = np.convolve(during.astype(float), np.ones(2 * guard + 1), mode="same") > 0
    away = ~near
    return BlinkStats(float(np.nanmedian(ear[away])), float(np.nanmin(ear[during])),
                      float(np.nanmin(ear[away])))
