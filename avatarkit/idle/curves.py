"""Motion curves: per-frame head roll, nod, breathing, blinks, gaze and brow for one loop.

Head motion is a sum of sinusoids with a whole number of periods per loop, so frame N (one
past the last) equals frame 0 and the loop closes exactly without ever stopping: the head
keeps flowing through the seam at an unremarkable speed. The phases are drawn until the
speed stays even (no rush in the middle) and the seam falls where the head moves slowly
but not at all still, so the last frame and the first differ by less than a typical step.
Blinks, gaze shifts and the brow's rise sit away from the seam.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatarkit.idle.options import MIN_BLINK_SPACING_S, IdleOptions

ROLL_DEG = 1.4  # peak head roll at motion 1 (the issue asks for about 1-2 degrees)
NOD = 0.012  # peak vertical foreshortening of the head at motion 1, as a scale change
BREATH = 0.012  # peak rise of the shoulders at motion 1, in face heights
BREATH_PERIOD_S = 4.0  # a calm breath
BLINK_MS = (140.0, 260.0)  # one blink, lid starts moving to lid fully open again
SEAM_MARGIN_S = 0.35  # no blink, gaze shift or brow movement this close to the loop seam
BLINK_EVERY_S = 2.8  # people at rest blink every 2-4 s; the automatic count follows this
# Head sway: frequencies (Hz) of the components, each rounded to whole periods per loop, and
# their relative amplitudes (falling, so the slow sway dominates and speed stays even).
SWAY_HZ = (0.22, 0.41, 0.63)
SWAY_AMPLITUDE = (1.0, 0.3, 0.3)
MAX_SPEED_RATIO = 1.75  # peak over mean roll speed that the phases must keep (issue: <= 2.5)
SEAM_SPEED = (0.2, 0.5)  # roll speed at the seam as a fraction of the mean speed
GAZE_SHIFT_EVERY_S = 1.1  # eyes at rest re-fixate about once a second
GAZE_AMPLITUDE = 0.45  # largest horizontal gaze offset, in iris radii
GAZE_VERTICAL = 0.3  # vertical gaze offsets relative to horizontal ones
GAZE_STEP = 0.6  # largest change of one saccade, relative to GAZE_AMPLITUDE
SACCADE_FRAMES = 2  # a saccade takes 30-80 ms: two frames at 25-30 fps
BROW_S = 1.4  # one faint brow raise: rise, hold briefly, fall


@dataclass(frozen=True)
class MotionCurves:
    """Per-frame values of every motion in the loop."""

    roll_deg: np.ndarray  # head rotation about the neck pivot, degrees (+ = clockwise on screen)
    nod: np.ndarray  # vertical head compression about the pivot (0 = none, + = chin down)
    breath: np.ndarray  # shoulder rise in face heights (>= 0)
    blink: np.ndarray  # lid closure 0..1
    gaze: np.ndarray = None  # (frames, 2) iris offset in iris radii (x right, y down)
    brow: np.ndarray = None  # brow raise 0..1 (scaled by motion)

    def __post_init__(self) -> None:
        n = len(self.blink)
        if self.gaze is None:
            object.__setattr__(self, "gaze", np.zeros((n, 2)))
        if self.brow is None:
            object.__setattr__(self, "brow", np.zeros(n))

    @property
    def frames(self) -> int:
        return len(self.blink)


def harmonics(seconds: float) -> tuple[int, ...]:
    """Whole periods per loop of the sway components: near SWAY_HZ, distinct, and with no
    common factor (a common factor would repeat the motion inside the loop)."""
    ks: list[int] = []
    for hz in SWAY_HZ:
        k = max(1, round(hz * seconds))
        while k in ks:
            k += 1
        ks.append(k)
    while np.gcd.reduce(ks) > 1:
        ks[1] += 1
    return tuple(ks)


def _sway(rng: np.random.Generator, frames: int, seconds: float,
          tries: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """A periodic sway with peak |value| 1 and even speed, and its speed, per frame.

    Phases are drawn until the peak speed is at most MAX_SPEED_RATIO times the mean and the
    speed at the seam is low but not zero (SEAM_SPEED); the best draw is kept otherwise."""
    ks = np.array(harmonics(seconds), dtype=float)
    amps = np.array(SWAY_AMPLITUDE[:len(ks)]) / ks  # speed of component k ~ k * amp
    fine = np.linspace(0, 1, 2048, endpoint=False)
    t = np.arange(frames) / frames

    def curve(x: np.ndarray, phases: np.ndarray) -> np.ndarray:
        return (amps[:, None] * np.sin(2 * np.pi * ks[:, None] * x[None] + phases[:, None])).sum(0)

    best, best_score = None, np.inf
    for _ in range(tries):
        phases = rng.uniform(0, 2 * np.pi, len(ks))
        arg = 2 * np.pi * ks[:, None] * fine[None] + phases[:, None]
        speed = np.abs((amps[:, None] * ks[:, None] * np.cos(arg)).sum(0))
        ratio = speed.max() / speed.mean()
        # The seam as the viewer gets it: the step from the last frame back to the first.
        steps = np.abs(np.diff(np.append(curve(t, phases), curve(t[:1], phases))))
        seam = steps[-1] / steps.mean()
        score = max(ratio - MAX_SPEED_RATIO, 0) + max(SEAM_SPEED[0] - seam, 0) \
            + max(seam - SEAM_SPEED[1], 0)
        if score < best_score:
            best, best_score = phases, score
        if score == 0:
            break
    peak = np.abs(curve(fine, best)).max()
    return curve(t, best) / peak, best


def blink_profile(duration_s: float, fps: int) -> np.ndarray:
    """Closure per frame of one blink: a quick close, a frame fully shut, a slower opening."""
    frames = max(3, round(duration_s * fps))
    closing = max(1, round(frames * 0.35))
    opening = max(1, frames - closing - 1)
    close = np.arange(1, closing + 1) / (closing + 1)
    opened = 1.0 - (np.arange(1, opening + 1) / (opening + 1)) ** 0.8
    return np.concatenate([close ** 0.7, [1.0], opened])


def auto_blinks(seconds: float, rng: np.random.Generator) -> int:
    """How many blinks a loop of this length gets by default: one every BLINK_EVERY_S on
    average, rounded up or down at random (a 4 s loop has one or two), at least one."""
    most = int(seconds // MIN_BLINK_SPACING_S)
    return int(np.clip(np.floor(seconds / BLINK_EVERY_S + rng.uniform()), 1, most))


def blink_curve(frames: int, fps: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """Closure per frame for `count` blinks at irregular times, clear of the seam.

    Start times are drawn at random (people do not blink on a beat) until every pair,
    counted around the loop, is at least MIN_BLINK_SPACING_S apart; if the loop is too
    crowded for that, the blinks fall back to jittered equal slots."""
    curve = np.zeros(frames)
    if count == 0:
        return curve
    profiles = [blink_profile(rng.uniform(*BLINK_MS) / 1000.0, fps) for _ in range(count)]
    margin = round(SEAM_MARGIN_S * fps)
    longest = max(len(p) for p in profiles)
    lo, hi = margin, frames - margin - longest
    spacing = MIN_BLINK_SPACING_S * fps
    starts = None
    for _ in range(200):
        cand = np.sort(rng.integers(lo, max(lo, hi) + 1, count))
        gaps = np.diff(np.append(cand, cand[0] + frames))
        if count == 1 or gaps.min() >= spacing:
            starts = cand
            break
    if starts is None:
        slot = (hi - lo) / count
        starts = np.array([int(round(lo + (i + rng.uniform(0.2, 0.8)) * slot))
                           for i in range(count)])
    for start, prof in zip(starts, profiles, strict=True):
        start = int(np.clip(start, margin, frames - margin - len(prof)))
        curve[start:start + len(prof)] = np.maximum(curve[start:start + len(prof)], prof)
    return curve


def gaze_curve(frames: int, fps: int, rng: np.random.Generator) -> np.ndarray:
    """(frames, 2) iris offset in iris radii: fixations joined by quick saccades.

    The eyes start and end looking into the camera (offset 0) so the seam has no saccade;
    between, they hold a few small, irregular fixations, as eyes at rest do."""
    out = np.zeros((frames, 2))
    margin = round(SEAM_MARGIN_S * fps)
    shifts = max(2, round(frames / fps / GAZE_SHIFT_EVERY_S))
    usable = frames - 2 * margin - SACCADE_FRAMES
    if usable < shifts * 4:
        return out
    # Shift times: sorted, at least a quarter second apart.
    for _ in range(100):
        times = np.sort(rng.integers(margin, margin + usable, shifts))
        if shifts == 1 or np.diff(times).min() >= 0.25 * fps:
            break
    else:
        times = np.linspace(margin, margin + usable - 1, shifts).astype(int)
    # Targets: alternate sides for the larger shifts, small corrections between; the last
    # returns to the camera. No shift exceeds GAZE_STEP (eyes at rest make small saccades).
    targets = []
    side = rng.choice([-1.0, 1.0])
    previous = np.zeros(2)
    for j in range(shifts - 1):
        big = j % 2 == 0
        x = side * rng.uniform(0.55, 1.0) if big else previous[0] + rng.uniform(-0.3, 0.3)
        side = -side if big else side
        target = np.array([x, rng.uniform(-1.0, 1.0) * GAZE_VERTICAL])
        target = previous + np.clip(target - previous, -GAZE_STEP, GAZE_STEP)
        limit = GAZE_STEP if j == shifts - 2 else 1.0  # the return to the camera is small too
        target = np.clip(target, -limit, limit)
        targets.append(target * GAZE_AMPLITUDE)
        previous = target
    targets.append(np.zeros(2))
    ease = (np.arange(1, SACCADE_FRAMES + 1) / SACCADE_FRAMES)[:, None]
    current = np.zeros(2)
    for start, target in zip(times, targets, strict=True):
        out[start:start + SACCADE_FRAMES] = current + ease * (target - current)
        out[start + SACCADE_FRAMES:] = target
        current = target
    return out


def brow_curve(frames: int, fps: int, rng: np.random.Generator) -> np.ndarray:
    """One faint brow raise per loop (two in long loops): a smooth rise and fall, 0..1."""
    out = np.zeros(frames)
    margin = round(SEAM_MARGIN_S * fps)
    length = round(BROW_S * fps)
    raises = 1 if frames / fps < 7 else 2
    slot = (frames - 2 * margin) / raises
    if slot < length:
        return out
    bump = np.sin(np.pi * np.arange(1, length + 1) / (length + 1)) ** 2
    for i in range(raises):
        start = int(margin + i * slot + rng.uniform(0, slot - length))
        out[start:start + length] = np.maximum(out[start:start + length], bump)
    return out


def motion_curves(options: IdleOptions) -> MotionCurves:
    """All motion curves of one loop, reproducible from the options' seed.

    Each curve draws from its own stream of the seed, so changing (say) the blink count
    leaves the head sway as it was."""
    n, fps = options.frames, options.fps
    seconds = n / fps

    def stream(k: int) -> np.random.Generator:
        return np.random.default_rng([options.seed, k])

    sway, _ = _sway(stream(1), n, seconds)
    roll = sway * ROLL_DEG * options.motion
    # The nod follows the sway's slowest component with its own phase, gently.
    nod_rng = stream(2)
    t = np.arange(n) / n
    k1 = harmonics(seconds)[0]
    # Its phase puts the seam near a turning point of the nod (slow there, not still).
    nod_phase = nod_rng.choice([0.5, 1.5]) * np.pi + nod_rng.uniform(-0.6, 0.6)
    nod = np.sin(2 * np.pi * k1 * t + nod_phase) * NOD * options.motion
    breaths = max(1, round(seconds / BREATH_PERIOD_S))
    # Breathing starts at the bottom of a breath: the shoulders rest at the seam.
    breath = (0.5 - 0.5 * np.cos(2 * np.pi * breaths * t)) * BREATH * options.motion
    blink_rng = stream(3)
    count = options.blinks if options.blinks is not None else auto_blinks(seconds, blink_rng)
    blink = blink_curve(n, fps, count, blink_rng)
    lively = min(1.0, options.motion)
    gaze = gaze_curve(n, fps, stream(4)) * lively
    brow = brow_curve(n, fps, stream(5)) * options.motion
    return MotionCurves(roll_deg=roll, nod=nod, breath=breath, blink=blink, gaze=gaze,
                        brow=brow)
