"""Many streams' coarticulation steps in one vectorised blend.

A live server relaying hundreds of character-aligned streams blends a ~0.6 s chunk per
stream every ~0.6 s: ~20 frames each, where `coarticulate_step`'s cost is numpy's
per-call overhead (~40 calls per chunk), not arithmetic. `coarticulate_steps` plans each
step as `coarticulate_step` does and blends every step's frames in one pass of array
operations over all (frame, segment) pairs.

The frames are bit-identical to `coarticulate_step`'s: every element is computed by the same
float operations in the same order, and the one reduction whose order numpy leaves to BLAS
(a block's dominance summed per class, `dom @ onehot`) is made per block with the very
shapes and values `_blend_block` gives it.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence

import numpy as np

from avatarkit.tts.provider import TimedPhoneme
from avatarkit.visemes.classes import VISEME_CLASSES
from avatarkit.visemes.coarticulation import (
    _BLOCK,
    _CLASS_INDEX,
    _REST,
    DEFAULT_DOMINANCE,
    CoarticulationOptions,
    CoarticulationState,
    Frame,
    PlannedStep,
    _sparse_rows,
    finish_step,
    plan_step,
)
from avatarkit.visemes.phonemes import Segment

#: One stream's step: its state, its new phonemes, and whether the stream ends with it.
Step = tuple[CoarticulationState, Sequence[TimedPhoneme], bool]


def coarticulate_steps(
    steps: Sequence[Step], options: CoarticulationOptions | None = None
) -> list[tuple[list[Frame], CoarticulationState]]:
    """`coarticulate_step` for each of `steps` (independent streams), blended together."""
    opts = (options or CoarticulationOptions()).checked()
    planned = [plan_step(state, phonemes, opts, final=final)
               for state, phonemes, final in steps]
    return finish_steps(planned, opts)


def finish_steps(
    planned: Sequence[PlannedStep], opts: CoarticulationOptions
) -> list[tuple[list[Frame], CoarticulationState]]:
    """Blend every planned step's frames at once; each step's frames and next state."""
    jobs = [(p.segments, p.times) for p in planned if p.times is not None]
    rows = _sparse_rows(blend_many(jobs, opts), opts.min_weight)  # row by row: stackable
    out = []
    row = 0
    for p in planned:
        mine = None
        if p.times is not None:
            mine = rows[row:row + len(p.times)]
            row += len(p.times)
        out.append(finish_step(p, mine, opts))
    return out


def blend_many(
    jobs: Sequence[tuple[Sequence[Segment], np.ndarray]], opts: CoarticulationOptions
) -> np.ndarray:
    """Weights of every job's times, stacked in job order: `_blend(segments, times, opts)`
    for each, computed together."""
    blocks: list[tuple[Sequence[Segment], np.ndarray]] = []
    for segments, times in jobs:  # the blocks and segments in reach, as `_blend` cuts them
        starts = [s.start_ms for s in segments]
        ends = list(itertools.accumulate((s.end_ms for s in segments), max))
        reach_before = opts.max_carryover_ms + opts.smoothing_ms + 250.0
        reach_after = opts.max_anticipation_ms + opts.smoothing_ms + 250.0
        for i in range(0, len(times), _BLOCK):
            block = times[i:i + _BLOCK]
            lo = bisect.bisect_left(ends, block[0] - reach_before)
            hi = bisect.bisect_right(starts, block[-1] + reach_after)
            blocks.append((segments[lo:hi], block))
    if not blocks:
        return np.zeros((0, len(VISEME_CLASSES)))
    return _blend_blocks(blocks, opts)


def _blend_blocks(
    blocks: Sequence[tuple[Sequence[Segment], np.ndarray]], opts: CoarticulationOptions
) -> np.ndarray:
    """`_blend_block` of every block, stacked."""
    n_classes = len(VISEME_CLASSES)
    smooth = opts.smoothing_ms > 0
    h = opts.smoothing_ms / 2
    rest = opts.dominance.get("Rest", DEFAULT_DOMINANCE["Rest"])
    n = np.array([len(times) for _, times in blocks], dtype=np.int64)
    centres = np.concatenate([times for _, times in blocks])
    # ---- dominance: every (tap time, segment in reach) pair of every block, in one array
    counts, sizes = [], []
    seg_start, seg_end, mag, tau_a, tau_c, cls = [], [], [], [], [], []
    for segments, times in blocks:
        first, last = float(times[0]), float(times[-1])
        lo = (first - h if smooth else first) - opts.max_carryover_ms
        hi = (last + h if smooth else last) + opts.max_anticipation_ms
        near = [s for s in segments if s.end_ms >= lo and s.start_ms <= hi]
        for s in near:
            p = opts.dominance.get(s.viseme, rest)
            seg_start.append(s.start_ms)
            seg_end.append(s.end_ms)
            mag.append(p.magnitude * opts.manner_scale.get(s.manner, 1.0))
            tau_a.append(p.anticipation_ms)
            tau_c.append(p.carryover_ms)
            cls.append(_CLASS_INDEX[s.viseme])
        counts.append(len(near))
        sizes.append(3 * len(times) if smooth else len(times))
    if smooth:  # each block's rows: its times - h, its times, its times + h
        within = np.arange(len(centres)) - np.repeat(np.cumsum(n) - n, n)
        block_row = np.repeat(np.cumsum(3 * n) - 3 * n, n)
        minus = block_row + within
        centre = minus + np.repeat(n, n)
        plus = centre + np.repeat(n, n)
        rows = np.empty(3 * len(centres))
        rows[minus] = centres - h
        rows[centre] = centres
        rows[plus] = centres + h
    else:
        rows = centres
    per_row = np.repeat(np.array(counts, dtype=np.int64), sizes)  # segments per tap row
    seg_first = np.cumsum(counts) - counts  # each block's first segment
    pair_first = np.cumsum(per_row) - per_row  # each row's first pair
    n_pairs = int(per_row.sum())
    seg = (np.repeat(np.repeat(seg_first, sizes), per_row)
           + np.arange(n_pairs) - np.repeat(pair_first, per_row))
    t = np.repeat(rows, per_row)
    start, end = np.array(seg_start)[seg], np.array(seg_end)[seg]
    before = np.clip(start - t, 0.0, None)
    after = np.clip(t - end, 0.0, None)
    ahead = before > 0
    d = before + after
    tau = np.where(ahead, np.array(tau_a)[seg], np.array(tau_c)[seg])
    bound = np.where(ahead, opts.max_anticipation_ms, opts.max_carryover_ms)
    x = np.clip(d / bound, 0.0, 1.0)
    dom = np.exp(-((d / tau) ** 2)) * (1.0 - x**2) ** 2 * np.array(mag)[seg]
    onehot = np.zeros((len(cls), n_classes))
    onehot[np.arange(len(cls)), cls] = 1.0
    summed = np.zeros((len(rows), n_classes))
    row = pair = k = 0
    for m, r in zip(counts, sizes, strict=True):  # per block: the sum `_blend_block` makes
        if m:
            summed[row:row + r] = dom[pair:pair + r * m].reshape(r, m) @ onehot[k:k + m]
        row, pair, k = row + r, pair + r * m, k + m
    summed[:, _REST] += opts.background_rest
    normalised = summed / summed.sum(axis=1, keepdims=True)
    if smooth:  # the three taps of each frame
        w = 0.25 * normalised[minus] + 0.5 * normalised[centre] + 0.25 * normalised[plus]
    else:
        w = normalised
    floors = _floors_many(blocks, opts, len(w))
    binding = floors > w
    if binding.any():  # row by row as `_blend_block` does (rows without a floor unchanged)
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


def _floors_many(
    blocks: Sequence[tuple[Sequence[Segment], np.ndarray]], opts: CoarticulationOptions,
    n_rows: int,
) -> np.ndarray:
    """`_floors` of every block, stacked: the largest floor envelope per frame and class."""
    n_classes = len(VISEME_CLASSES)
    out = np.zeros((n_rows, n_classes))
    half_frame = 500.0 / opts.fps
    frame_rows, mids, holds, ramps, levels, cols = [], [], [], [], [], []
    row = 0
    for segments, times in blocks:
        for s in segments:
            dom = opts.dominance.get(s.viseme)
            if dom is None or dom.floor <= 0:
                continue
            if s.end_ms < times[0] - 200 or s.start_ms > times[-1] + 200:
                continue
            dur = s.end_ms - s.start_ms
            frame_rows.append(range(row, row + len(times)))
            mids.append((s.start_ms + s.end_ms) / 2)
            holds.append(max(0.35 * dur, half_frame))
            ramps.append(0.15 * dur + 20.0)
            levels.append(dom.floor)
            cols.append(_CLASS_INDEX[s.viseme])
        row += len(times)
    if not frame_rows:
        return out
    times_all = np.concatenate([times for _, times in blocks])
    sizes = np.array([len(r) for r in frame_rows], dtype=np.int64)
    rows = np.concatenate([np.arange(r.start, r.stop) for r in frame_rows])
    mid, hold, ramp, level, col = (np.repeat(np.array(v), sizes)
                                   for v in (mids, holds, ramps, levels, cols))
    env = np.clip(1.0 - (np.abs(times_all[rows] - mid) - hold) / ramp, 0.0, 1.0)
    np.maximum.at(out.reshape(-1), rows * n_classes + col, level * env)
    return out
