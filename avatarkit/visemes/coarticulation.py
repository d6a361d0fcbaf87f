"""Cohen–Massaro coarticulation: timed phonemes -> blended viseme weights per video frame.

Every target segment exerts a *dominance* over time: a plateau over the segment and
Gaussian tails before it (anticipation) and after it (carry-over), truncated smoothly at
fixed bounds. A class's weight at time t is its share of all dominance at t. Lip closures
(MBP) and the lip-teeth contact (FV) additionally carry a floor around their midpoint, so
no blend can average a closure away, at any frame rate.

The same pure step function serves batch and streaming use: it takes the state and newly
known phonemes and returns only frames that later phonemes can no longer change, i.e. those
at least `lookahead_ms` before the end of the audio covered so far.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from avatarkit.errors import AvatarkitError
from avatarkit.visemes.classes import VISEME_CLASSES
from avatarkit.visemes.evolve import evolve
from avatarkit.visemes.phonemes import Alphabet, Segment, TimedPhoneme, to_segments

_CLASS_INDEX = {name: i for i, name in enumerate(VISEME_CLASSES)}
_REST = _CLASS_INDEX["Rest"]
_CLASS_NAMES = np.array(VISEME_CLASSES, dtype=object)


@dataclass(frozen=True)
class Dominance:
    """How strongly one viseme class asserts itself, and how far it reaches in time."""

    #: Height of the dominance plateau over the segment (relative to other classes).
    magnitude: float
    #: Gaussian width of the influence *before* the segment starts (anticipation), ms.
    anticipation_ms: float
    #: Gaussian width of the influence *after* the segment ends (carry-over), ms.
    carryover_ms: float
    #: Minimum weight at the segment's midpoint (0 = none); guarantees visible closures.
    floor: float = 0.0


#: Tuned on the espeak-ng corpus in `benchmarks/visemes_accuracy.py`. Rounding (U, O, WQ)
#: anticipates furthest, as lip protrusion does in speech; closures are strong and narrow.
DEFAULT_DOMINANCE: Mapping[str, Dominance] = {
    "Rest": Dominance(1.0, 25.0, 30.0),
    "AI": Dominance(1.0, 32.0, 24.0),
    "E": Dominance(0.95, 32.0, 24.0),
    "U": Dominance(1.0, 50.0, 28.0),
    "O": Dominance(1.0, 45.0, 28.0),
    "MBP": Dominance(1.1, 28.0, 20.0, floor=0.92),
    "FV": Dominance(1.05, 28.0, 20.0, floor=0.85),
    "L": Dominance(0.95, 25.0, 20.0),
    "WQ": Dominance(1.05, 50.0, 28.0),
    "R": Dominance(1.0, 32.0, 24.0),
    "CH": Dominance(1.0, 28.0, 20.0),
    "TH": Dominance(1.0, 25.0, 20.0),
}

#: Manner-dependent scale of dominance: /h/ and glottal stops borrow their neighbours' shape.
DEFAULT_MANNER_SCALE: Mapping[str, float] = {"weak": 0.3}


@dataclass(frozen=True)
class CoarticulationOptions:
    """Every knob of the blend, with the defaults the benchmarks were run with."""

    #: Output frame rate (frames per second).
    fps: float = 60.0
    #: Per-class dominance; classes missing here use `Rest`'s parameters.
    dominance: Mapping[str, Dominance] = field(default_factory=lambda: dict(DEFAULT_DOMINANCE))
    #: Dominance multiplier per phoneme manner (see `phoneme_tables.MANNERS`).
    manner_scale: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_MANNER_SCALE))
    #: Hard bound on how far before its onset a segment can influence the mouth, ms.
    max_anticipation_ms: float = 120.0
    #: Hard bound on how long after its end a segment can influence the mouth, ms.
    max_carryover_ms: float = 100.0
    #: Width of the final [1/4, 1/2, 1/4] smoothing kernel, ms (0 disables).
    smoothing_ms: float = 16.0
    #: Dominance of `Rest` everywhere, so silence and gaps fall back to the rest pose.
    background_rest: float = 0.02
    #: Weights below this are dropped from the sparse output (the rest is renormalised).
    min_weight: float = 0.02
    #: Phoneme alphabet of the input symbols.
    alphabet: Alphabet = "ipa"

    @property
    def lookahead_ms(self) -> float:
        """How far behind the newest known audio the streaming form must stay, ms."""
        return self.max_anticipation_ms + self.smoothing_ms / 2

    def checked(self) -> CoarticulationOptions:
        """Return self after validating the values a user can set."""
        if not (math.isfinite(self.fps) and 1 <= self.fps <= 1000):
            raise AvatarkitError(f"fps must be between 1 and 1000, got {self.fps}")
        unknown = set(self.dominance) - set(VISEME_CLASSES)
        if unknown:
            raise AvatarkitError(
                f"unknown viseme class {sorted(unknown)[0]!r} in dominance settings; "
                f"classes are {', '.join(VISEME_CLASSES)}"
            )
        return self


@dataclass(frozen=True)
class Frame:
    """Viseme weights (sparse, summing to 1) at one presentation time."""

    pts_ms: int
    weights: dict[str, float]

    def dominant(self) -> str:
        """The class with the largest weight."""
        return max(self.weights.items(), key=lambda kv: kv[1])[0]


@dataclass(frozen=True)
class CoarticulationState:
    """What the streaming blend remembers between calls (immutable)."""

    #: Segments that can still influence frames not yet emitted.
    segments: tuple[Segment, ...] = ()
    #: End of the audio covered by all phonemes received so far, ms.
    known_until_ms: float = 0.0
    #: Index of the next frame to emit.
    next_frame: int = 0
    #: Number of phonemes received so far (indexes segments back to phonemes).
    phonemes_seen: int = 0
    #: True once `final=True` was passed; later phonemes are an error.
    finished: bool = False


def coarticulate(
    phonemes: Sequence[TimedPhoneme], options: CoarticulationOptions | None = None
) -> list[Frame]:
    """Blend a whole utterance: one frame per 1/fps from 0 to the last phoneme's end."""
    frames, _ = coarticulate_step(CoarticulationState(), phonemes, options, final=True)
    return frames


def coarticulate_step(
    state: CoarticulationState,
    phonemes: Sequence[TimedPhoneme],
    options: CoarticulationOptions | None = None,
    *,
    final: bool = False,
) -> tuple[list[Frame], CoarticulationState]:
    """Streaming blend: add newly timed phonemes, return frames that are now final."""
    opts = (options or CoarticulationOptions()).checked()
    step = plan_step(state, phonemes, opts, final=final)
    rows = None
    if step.times is not None:
        rows = _sparse_rows(_blend(step.segments, step.times, opts), opts.min_weight)
    return finish_step(step, rows, opts)


@dataclass(frozen=True)
class PlannedStep:
    """One `coarticulate_step` before its blend: the frame times it must blend (None: no
    frame is final yet) over its segments, and how the state moves on."""

    state: CoarticulationState
    segments: tuple[Segment, ...]
    times: np.ndarray | None
    known_ms: float
    n_phonemes: int
    final: bool


def plan_step(
    state: CoarticulationState,
    phonemes: Sequence[TimedPhoneme],
    opts: CoarticulationOptions,
    *,
    final: bool = False,
) -> PlannedStep:
    """The bookkeeping half of `coarticulate_step` (segments, which frames are final)."""
    if state.finished and phonemes:
        raise AvatarkitError("coarticulation stream already finished; start a new state")
    new_segments = to_segments(phonemes, opts.alphabet, first_index=state.phonemes_seen)
    known = max([state.known_until_ms, *(p.end_ms for p in phonemes)])
    segments = state.segments + tuple(new_segments)
    step_ms = 1000.0 / opts.fps
    if final:
        last = int(math.floor(known / step_ms + 1e-9))
    else:
        last = int(math.floor((known - opts.lookahead_ms) / step_ms + 1e-9))
    first = state.next_frame
    times = None
    if last >= first:
        times = np.arange(first, last + 1, dtype=np.float64) * step_ms
    return PlannedStep(state, segments, times, known, len(phonemes), final)


def finish_step(
    step: PlannedStep, rows: Sequence[dict[str, float]] | None, opts: CoarticulationOptions
) -> tuple[list[Frame], CoarticulationState]:
    """The frames of a planned step from its blended weights (`_sparse_rows` of them), and
    the state after it."""
    state, times = step.state, step.times
    first = state.next_frame
    frames: list[Frame] = []
    if times is not None and rows is not None:
        frames = [Frame(int(round(t)), row) for t, row in zip(times.tolist(), rows, strict=True)]
        first += len(times)
    step_ms = 1000.0 / opts.fps
    horizon = first * step_ms - opts.max_carryover_ms - opts.smoothing_ms
    kept = tuple(s for s in step.segments if s.end_ms >= horizon)
    return frames, evolve(
        state,
        segments=kept,
        known_until_ms=step.known_ms,
        next_frame=first,
        phonemes_seen=state.phonemes_seen + step.n_phonemes,
        finished=step.final,
    )


def _taper(d: np.ndarray, tau: np.ndarray, bound: float) -> np.ndarray:
    """Gaussian fall-off with a smooth (C1) cut to zero at `bound` ms."""
    x = np.clip(d / bound, 0.0, 1.0)
    return np.exp(-((d / tau) ** 2)) * (1.0 - x**2) ** 2


def _dominance_matrix(
    segments: Sequence[Segment], times: np.ndarray, opts: CoarticulationOptions
) -> np.ndarray:
    """Per-class summed dominance, shape (len(times), n_classes)."""
    n_classes = len(VISEME_CLASSES)
    out = np.zeros((len(times), n_classes))
    out[:, _REST] = opts.background_rest
    if not segments or len(times) == 0:
        return out
    lo = times[0] - opts.max_carryover_ms
    hi = times[-1] + opts.max_anticipation_ms
    near = [s for s in segments if s.end_ms >= lo and s.start_ms <= hi]
    if not near:
        return out
    rest = opts.dominance.get("Rest", DEFAULT_DOMINANCE["Rest"])
    params = [opts.dominance.get(s.viseme, rest) for s in near]
    start = np.array([s.start_ms for s in near])
    end = np.array([s.end_ms for s in near])
    scale = [opts.manner_scale.get(s.manner, 1.0) for s in near]
    mag = np.array([p.magnitude * k for p, k in zip(params, scale, strict=True)])
    tau_a = np.array([p.anticipation_ms for p in params])
    tau_c = np.array([p.carryover_ms for p in params])
    onehot = np.zeros((len(near), n_classes))
    onehot[np.arange(len(near)), [_CLASS_INDEX[s.viseme] for s in near]] = 1.0
    t = times[:, None]
    before = np.clip(start[None, :] - t, 0.0, None)
    after = np.clip(t - end[None, :], 0.0, None)
    # one taper over the distance to the segment (at most one of before/after is non-zero),
    # with the anticipation or carry-over parameters where each applies
    ahead = before > 0
    dom = (
        _taper(before + after, np.where(ahead, tau_a[None, :], tau_c[None, :]),
               np.where(ahead, opts.max_anticipation_ms, opts.max_carryover_ms))
        * mag[None, :]
    )
    return out + dom @ onehot


def _floors(
    segments: Sequence[Segment], times: np.ndarray, opts: CoarticulationOptions
) -> np.ndarray:
    """Minimum weight per class: a trapezoid around each floored segment's midpoint."""
    out = np.zeros((len(times), len(VISEME_CLASSES)))
    half_frame = 500.0 / opts.fps
    for s in segments:
        dom = opts.dominance.get(s.viseme)
        if dom is None or dom.floor <= 0:
            continue
        if s.end_ms < times[0] - 200 or s.start_ms > times[-1] + 200:
            continue
        dur = s.end_ms - s.start_ms
        mid = (s.start_ms + s.end_ms) / 2
        # lips stay closed through most of a stop or nasal, not just at its midpoint
        hold = max(0.35 * dur, half_frame)
        ramp = 0.15 * dur + 20.0
        env = np.clip(1.0 - (np.abs(times - mid) - hold) / ramp, 0.0, 1.0)
        col = _CLASS_INDEX[s.viseme]
        out[:, col] = np.maximum(out[:, col], dom.floor * env)
    return out


_BLOCK = 256


def _blend(
    segments: Sequence[Segment], times: np.ndarray, opts: CoarticulationOptions
) -> np.ndarray:
    """Weights for each time, computed in blocks over only the segments in reach (linear)."""
    starts = [s.start_ms for s in segments]
    ends = list(itertools.accumulate((s.end_ms for s in segments), max))
    reach_before = opts.max_carryover_ms + opts.smoothing_ms + 250.0
    reach_after = opts.max_anticipation_ms + opts.smoothing_ms + 250.0
    out = []
    for i in range(0, len(times), _BLOCK):
        block = times[i : i + _BLOCK]
        lo = bisect.bisect_left(ends, block[0] - reach_before)
        hi = bisect.bisect_right(starts, block[-1] + reach_after)
        out.append(_blend_block(segments[lo:hi], block, opts))
    return np.concatenate(out) if out else np.zeros((0, len(VISEME_CLASSES)))


def _blend_block(
    segments: Sequence[Segment], times: np.ndarray, opts: CoarticulationOptions
) -> np.ndarray:
    """Normalised, smoothed, floored weights for each time (rows sum to 1)."""

    def normalised(ts: np.ndarray) -> np.ndarray:
        dom = _dominance_matrix(segments, ts, opts)
        return dom / dom.sum(axis=1, keepdims=True)

    if opts.smoothing_ms > 0:
        # the three taps in one call (a short chunk's cost is numpy's per-call overhead)
        h = opts.smoothing_ms / 2
        n = len(times)
        taps = normalised(np.concatenate([times - h, times, times + h]))
        w = 0.25 * taps[:n] + 0.5 * taps[n:2 * n] + 0.25 * taps[2 * n:]
    else:
        w = normalised(times)
    floors = _floors(segments, times, opts)
    binding = floors > w
    if binding.any():
        raised = np.where(binding, floors, 0.0)
        fixed = raised.sum(axis=1, keepdims=True)
        scale_fixed = np.where(fixed > 1.0, 1.0 / np.maximum(fixed, 1e-9), 1.0)
        raised *= scale_fixed
        fixed = raised.sum(axis=1, keepdims=True)
        free = np.where(binding, 0.0, w)
        free_sum = free.sum(axis=1, keepdims=True)
        free *= np.where(free_sum > 0, (1.0 - fixed) / np.maximum(free_sum, 1e-12), 0.0)
        w = np.where(binding.any(axis=1, keepdims=True), raised + free, w)
    return np.clip(w, 0.0, 1.0)


def _sparse_rows(weights: np.ndarray, min_weight: float) -> list[dict[str, float]]:
    """Per row: drop tiny weights, renormalise and round to 3 decimals that still sum to 1."""
    w = np.where(weights >= min_weight, weights, 0.0)
    empty = w.sum(axis=1) <= 0
    w[empty, np.argmax(weights[empty], axis=1)] = 1.0
    w = np.round(w / w.sum(axis=1, keepdims=True), 3)
    top = np.argmax(w, axis=1)
    rows = np.arange(len(w))
    w[rows, top] = np.round(w[rows, top] + 1.0 - w.sum(axis=1), 3)
    # the kept (row, class) pairs in order, then one dict per row from its run of them
    kept_rows, kept_cols = np.nonzero(w > 0)
    names = _CLASS_NAMES[kept_cols].tolist()
    values = w[kept_rows, kept_cols].tolist()
    ends = np.searchsorted(kept_rows, np.arange(1, len(w) + 1)).tolist()
    pairs = list(zip(names, values, strict=True))  # sliced per row: half the cost of zips
    out = []
    start = 0
    for end in ends:
        out.append(dict(pairs[start:end]))
        start = end
    return out
