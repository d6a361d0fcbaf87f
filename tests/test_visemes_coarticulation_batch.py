"""The batched blend (many streams in one pass) gives exactly the frames of one at a time."""

from __future__ import annotations

import random

import numpy as np
import pytest

from avatarkit.tts.provider import TimedPhoneme
from avatarkit.visemes.coarticulation import (
    CoarticulationOptions,
    CoarticulationState,
    _blend,
    coarticulate_step,
)
from avatarkit.visemes.coarticulation_batch import blend_many, coarticulate_steps
from avatarkit.visemes.g2p import espeak_lexicon
from avatarkit.visemes.phonemes import to_segments
from avatarkit.visemes.stream import (
    VisemeStreamState,
    stream_finish,
    stream_step,
    stream_steps,
)
from tests.test_visemes_stream import _aligned_sentences

SYMBOLS = ["p", "b", "m", "f", "v", "a", "e", "i", "o", "u", "ʃ", "l", "r", "w", "θ", "t",
           "d", "k", "s", "h", "_", "aɪ", "oʊ", "ə", "n", "ˈɔː"]


def _stream(rng: random.Random, n: int) -> list[TimedPhoneme]:
    """Phonemes of random classes and lengths (closures, glides, pauses of 5-900 ms)."""
    t, out = 0.0, []
    for _ in range(n):
        d = rng.choice([rng.uniform(5, 40), rng.uniform(40, 200), rng.uniform(200, 900)])
        out.append(TimedPhoneme(rng.choice(SYMBOLS), t, t + d))
        t += d
    return out


@pytest.mark.parametrize(("fps", "smoothing"), [(30.0, 16.0), (60.0, 16.0), (7.0, 16.0),
                                                (30.0, 0.0)])
def test_blend_many_is_bit_identical_to_blend(fps: float, smoothing: float) -> None:
    rng = random.Random(fps + smoothing)
    opts = CoarticulationOptions(fps=fps, smoothing_ms=smoothing)
    jobs = []
    for _ in range(60):
        segments = to_segments(_stream(rng, rng.randint(0, 60)))
        a = rng.randint(0, 200)
        n = rng.choice([1, rng.randint(2, 40), rng.randint(250, 600)])  # one and many blocks
        jobs.append((segments, np.arange(a, a + n, dtype=np.float64) * (1000.0 / fps)))
    stacked = blend_many(jobs, opts)
    row = 0
    floored = 0
    for segments, times in jobs:
        want = _blend(segments, times, opts)
        got = stacked[row:row + len(times)]
        row += len(times)
        assert np.array_equal(got, want)  # every float, not just the rounded weights
        floored += bool((want > 0.8).any())
    assert row == len(stacked) and floored  # closures' floors were exercised


@pytest.mark.parametrize("fps", [30.0, 60.0])
def test_coarticulate_steps_equal_one_stream_at_a_time(fps: float) -> None:
    rng = random.Random(int(fps))
    opts = CoarticulationOptions(fps=fps)
    streams = [_stream(rng, rng.randint(1, 80)) for _ in range(24)]
    cuts = [sorted({0, len(s), *rng.sample(range(len(s) + 1), min(len(s), 8))})
            for s in streams]
    want = []
    for s, cut in zip(streams, cuts, strict=True):
        state, frames = CoarticulationState(), []
        for a, b in zip(cut, cut[1:], strict=False):
            out, state = coarticulate_step(state, s[a:b], opts)
            frames.append(out)
        frames.append(coarticulate_step(state, [], opts, final=True)[0])
        want.append(frames)
    states = [CoarticulationState() for _ in streams]
    got: list[list[list]] = [[] for _ in streams]
    for k in range(max(len(c) for c in cuts)):  # step k of every stream still going, at once
        live = [i for i, c in enumerate(cuts) if k < len(c)]
        steps = [(states[i], streams[i][cuts[i][k]:cuts[i][k + 1]], False)
                 if k + 1 < len(cuts[i]) else (states[i], [], True) for i in live]
        for i, (frames, state) in zip(live, coarticulate_steps(steps, opts), strict=True):
            got[i].append(frames)
            states[i] = state
    assert got == want
    assert sum(len(f) for frames in want for f in frames) > 1000


def test_stream_steps_equal_stream_step_for_aligned_chunks() -> None:
    """Character-aligned chunks (G2P on the way): several streams at different points."""
    opts = CoarticulationOptions(fps=30.0)
    lexicon = espeak_lexicon("en-us")
    streams = [_aligned_sentences(sizes)[0] for sizes in (
        (22050, 30000, 41000), (15000, 26000, 9000), (33000, 12000, 52000))]
    want = []
    for chunks in streams:
        state, frames = VisemeStreamState(), []
        for chunk in chunks:
            out, state = stream_step(state, chunk, opts, lexicon)
            frames.append((out, state))
        want.append(frames)
    states = [VisemeStreamState() for _ in streams]
    got: list[list] = [[] for _ in streams]
    for k in range(max(len(c) for c in streams)):
        live = [i for i, c in enumerate(streams) if k < len(c)]
        steps = [(states[i], streams[i][k], lexicon) for i in live]
        for i, (frames, state) in zip(live, stream_steps(steps, opts), strict=True):
            got[i].append((frames, state))
            states[i] = state
    assert got == want
    assert sum(len(f) for frames in want for f, _ in frames) > 50


def test_stream_steps_finish_equal_stream_finish() -> None:
    """A step without a chunk closes its stream as `stream_finish` does, in the same pass
    as other streams' chunks; aligned and phoneme-timed streams, mid-word and between."""
    opts = CoarticulationOptions(fps=30.0)
    lexicon = espeak_lexicon("en-us")
    aligned = [_aligned_sentences(sizes)[0] for sizes in (
        (22050, 30000, 41000), (15000, 26000, 9000), (33000, 12000, 52000))]
    rng = random.Random(7)
    timed = [_stream(rng, 25)]
    from avatarkit.tts.provider import SpeechChunk

    timed_chunks = [[SpeechChunk(b"\0\0" * 16000, 16000, 0.0, tuple(timed[0][:12])),
                     SpeechChunk(b"\0\0" * 16000, 16000, 1000.0, tuple(timed[0][12:]))]]
    streams = aligned + timed_chunks
    lexicons = [lexicon] * len(aligned) + [None]
    want = []
    for chunks, lex in zip(streams, lexicons, strict=True):
        state = VisemeStreamState()
        for chunk in chunks:
            state = stream_step(state, chunk, opts, lex)[1]
        want.append(stream_finish(state, opts, lex))
    # every stream's last step a finish, next to the other streams' chunks in one pass
    states = [VisemeStreamState() for _ in streams]
    got: dict[int, tuple] = {}
    longest = max(len(c) for c in streams)
    for k in range(longest + 1):
        live = [i for i, c in enumerate(streams) if k <= len(c)]
        steps = [(states[i], streams[i][k] if k < len(streams[i]) else None, lexicons[i])
                 for i in live]
        for i, step, out in zip(live, steps, stream_steps(steps, opts), strict=True):
            states[i] = out[1]
            if step[1] is None:
                got[i] = out
    assert [got[i] for i in range(len(streams))] == want
    assert all(frames for frames, _ in want)
    assert all(state.coarticulation.finished for _, state in want)
