"""Motion curves: per-frame head roll, nod, breathing and blink closure for one loop.

Every curve is a sum of sinusoids with a whole number of periods per loop, so frame N (one
past the last) equals frame 0 and the loop closes exactly. Blinks sit away from the seam.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatarkit.idle.options import IdleOptions

ROLL_DEG = 1.4  # peak head roll at motion 1 (the issue asks for about 1-2 degrees)
NOD = 0.012  # peak vertical foreshortening of the head at motion 1, as a scale change
BREATH = 0.012  # peak rise of the shoulders at motion 1, in face heights
BREATH_PERIOD_S = 4.0  # a calm breath
BLINK_MS = (140.0, 260.0)  # one blink, lid starts moving to lid fully open again
SEAM_MARGIN_S = 0.35  # no blink this close to the loop seam


@dataclass(frozen=True)
class MotionCurves:
    """Per-frame values of every motion in the loop."""

    roll_deg: np.ndarray  # head rotation about the neck pivot, degrees (+ = clockwise on screen)
    nod: np.ndarray  # vertical head compression about the pivot (0 = none, + = chin down)
    breath: np.ndarray  # shoulder rise in face heights (>= 0)
    blink: np.ndarray  # lid closure 0..1

    @property
    def frames(self) -> int:
        return len(self.blink)


def _periodic(rng: np.random.Generator, t: np.ndarray, harmonics: tuple[int, ...]) -> np.ndarray:
    """A smooth random curve with peak |value| 1 that repeats exactly once per loop."""
    phases = rng.uniform(0, 2 * np.pi, len(harmonics))

    def curve(x: np.ndarray) -> np.ndarray:
        pairs = zip(harmonics, phases, strict=True)
        return sum(np.sin(2 * np.pi * k * x + p) / k for k, p in pairs)

    # Peak from a fine sampling, so the scale does not depend on where the frames fall.
    peak = np.abs(curve(np.linspace(0, 1, 4096, endpoint=False))).max()
    return curve(t) / max(peak, 1e-9)


def blink_profile(duration_s: float, fps: int) -> np.ndarray:
    """Closure per frame of one blink: a quick close, a frame fully shut, a slower opening."""
    frames = max(3, round(duration_s * fps))
    closing = max(1, round(frames * 0.35))
    opening = max(1, frames - closing - 1)
    close = np.arange(1, closing + 1) / (closing + 1)
    opened = 1.0 - (np.arange(1, opening + 1) / (opening + 1)) ** 0.8
    return np.concatenate([close ** 0.7, [1.0], opened])


def blink_curve(frames: int, fps: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """Closure per frame for `count` blinks at random times, spaced out, clear of the seam."""
    curve = np.zeros(frames)
    if count == 0:
        return curve
    profiles = [blink_profile(rng.uniform(*BLINK_MS) / 1000.0, fps) for _ in range(count)]
    margin = round(SEAM_MARGIN_S * fps)
    # Split the loop into equal slots and jitter each blink inside its slot.
    slot = (frames - 2 * margin) / count
    for i, prof in enumerate(profiles):
        lo = margin + i * slot
        hi = margin + (i + 1) * slot - len(prof)
        start = int(round(rng.uniform(lo + 0.15 * slot, max(lo + 0.15 * slot, hi - 0.15 * slot))))
        start = int(np.clip(start, margin, frames - margin - len(prof)))
        curve[start:start + len(prof)] = np.maximum(curve[start:start + len(prof)], prof)
    return curve


def eased_phase(frames: int) -> np.ndarray:
    """Loop phase 0..1 per frame that slows to a standstill at the seam.

    t - sin(2 pi t) / (2 pi) has zero speed at t = 0 and 1: the head settles for a moment
    at the seam, so the frames either side of it are nearly identical and the encoder can
    make the last frame converge on the keyframe (see `encode.seam_params`)."""
    t = np.arange(frames) / frames
    return t - np.sin(2 * np.pi * t) / (2 * np.pi)


def motion_curves(options: IdleOptions) -> MotionCurves:
    """All motion curves of one loop, reproducible from the options' seed."""
    n = options.frames
    rng = np.random.default_rng(options.seed)
    t = eased_phase(n)
    roll = _periodic(rng, t, (1, 2, 3)) * ROLL_DEG * options.motion
    nod = _periodic(rng, t, (1, 2)) * NOD * options.motion
    breaths = max(1, round(options.seconds / BREATH_PERIOD_S))
    phase = rng.uniform(0, 2 * np.pi)
    breath = 0.5 - 0.5 * np.cos(2 * np.pi * breaths * t + phase)
    breath = breath * BREATH * options.motion
    blink = blink_curve(n, options.fps, options.blinks, rng)
    return MotionCurves(roll_deg=roll, nod=nod, breath=breath, blink=blink)
