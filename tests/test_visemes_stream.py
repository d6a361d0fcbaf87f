"""Streaming viseme frames equal the batch timeline; the barge-in ramp ends at Rest."""

from __future__ import annotations

import asyncio

import pytest

from avatarkit import visemes as _visemes  # noqa: F401  (before tts: import cycle)
from avatarkit.tts.espeak_voice import EspeakOptions, EspeakProvider
from avatarkit.tts.provider import SpeechChunk
from avatarkit.visemes import (
    AlignmentChunk,
    CharAlignment,
    CoarticulationOptions,
    espeak_lexicon,
    timeline_from_alignment,
    timeline_from_phonemes,
)
from avatarkit.visemes.stream import (
    VisemeStreamState,
    ramp_to_rest,
    stream_finish,
    stream_step,
    weights_at,
)

TEXT = "Hello there. My name is Bob, and I like pasta. Five big fish swam by!"


def _espeak_chunks(text: str) -> list[SpeechChunk]:
    async def collect() -> list[SpeechChunk]:
        return [c async for c in EspeakProvider(EspeakOptions()).stream(text)]

    return asyncio.run(collect())


def _run_stream(chunks, opts, lexicon=None):
    state = VisemeStreamState()
    frames = []
    released_after = []  # how far each release may reach: never past known audio - lookahead
    for chunk in chunks:
        out, state = stream_step(state, chunk, opts, lexicon)
        frames += out
        released_after.append((chunk.end_ms, out[-1].pts_ms if out else None))
    out, state = stream_finish(state, opts, lexicon)
    return frames + out, released_after, state


@pytest.mark.parametrize("fps", [60.0, 25.0])
def test_phoneme_stream_equals_batch(fps: float) -> None:
    chunks = _espeak_chunks(TEXT)
    assert len(chunks) == 3
    opts = CoarticulationOptions(fps=fps)
    frames, released, state = _run_stream(chunks, opts)
    phonemes = [p for c in chunks for p in c.phonemes]
    total = chunks[-1].end_ms
    batch = timeline_from_phonemes(phonemes, opts, duration_ms=total)
    assert [(f.pts_ms, f.weights) for f in frames] == [
        (f.pts_ms, f.weights) for f in batch.frames
    ]
    # frames cover the audio: one per 1/fps from 0 to the end
    assert frames[0].pts_ms == 0
    assert total - 1000 / fps <= frames[-1].pts_ms <= total
    # nothing released beyond what the audio received so far can decide
    for end_ms, last_pts in released:
        assert last_pts is None or last_pts <= end_ms - opts.lookahead_ms + 1
    assert state.last_frame == frames[-1]


def test_alignment_stream_equals_batch() -> None:
    """ElevenLabs-style chunks (chunk-relative times, a word cut across chunks)."""
    words = [("Hello", 0, 380), ("big", 430, 650), ("world", 700, 1150)]
    chars, starts, durs = [], [], []
    for i, (w, a, b) in enumerate(words):
        step = (b - a) / len(w)
        for k, ch in enumerate(w):
            chars.append(ch)
            starts.append(a + k * step)
            durs.append(step)
        if i + 1 < len(words):
            chars.append(" ")
            starts.append(b)
            durs.append(words[i + 1][1] - b)
    cut = chars.index("w") + 2  # "wo" | "rld"
    sr = 16000
    total_ms = 1300.0
    split_ms = starts[cut]
    parts = [(0, cut, 0.0, split_ms), (cut, len(chars), split_ms, total_ms)]
    chunks, align_chunks = [], []
    for lo, hi, t0, t1 in parts:
        al = CharAlignment(
            tuple(chars[lo:hi]), tuple(s - t0 for s in starts[lo:hi]), tuple(durs[lo:hi])
        )
        n = int(round((t1 - t0) * sr / 1000))
        chunk = SpeechChunk(b"\x00\x00" * n, sr, t0, alignment=AlignmentChunk(al))
        chunks.append(chunk)
        align_chunks.append(AlignmentChunk(al, audio_ms=chunk.duration_ms))
    opts = CoarticulationOptions(fps=60)
    lexicon = espeak_lexicon("en-us")
    frames, _, _ = _run_stream(chunks, opts, lexicon)
    batch = timeline_from_alignment(align_chunks, "en-us", opts, duration_ms=total_ms)
    assert [(f.pts_ms, f.weights) for f in frames] == [
        (f.pts_ms, f.weights) for f in batch.frames
    ]
    # "big" closes the lips (MBP) inside its span
    closed = [f.pts_ms for f in frames if f.weights.get("MBP", 0) > 0.8]
    assert closed and 400 <= closed[0] <= 520


def test_alignment_without_lexicon_is_an_error() -> None:
    al = AlignmentChunk(CharAlignment(("a",), (0.0,), (50.0,)))
    with pytest.raises(Exception, match="lexicon"):
        stream_step(VisemeStreamState(), SpeechChunk(b"\0\0" * 800, 16000, 0.0, alignment=al),
                    CoarticulationOptions())


@pytest.mark.parametrize("ramp_ms,fps", [(150, 60), (100, 60), (200, 25)])
def test_ramp_to_rest(ramp_ms: float, fps: float) -> None:
    start = {"AI": 0.7, "E": 0.25, "Rest": 0.05}
    frames = ramp_to_rest(start, 1234.4, ramp_ms, fps)
    assert frames[0].pts_ms == 1234
    assert frames[0].weights == start
    assert frames[-1].weights == {"Rest": 1.0}
    span = frames[-1].pts_ms - frames[0].pts_ms
    assert ramp_ms - 1 <= span <= ramp_ms + 1000 / fps
    rest = [f.weights.get("Rest", 0.0) for f in frames]
    assert rest == sorted(rest)  # monotone towards Rest
    for f in frames:
        assert abs(sum(f.weights.values()) - 1.0) < 1e-6
        assert all(0 < w <= 1 for w in f.weights.values())


def test_weights_at() -> None:
    chunks = _espeak_chunks("Hello.")
    frames, _, _ = _run_stream(chunks, CoarticulationOptions())
    assert weights_at(frames, -5) == {"Rest": 1.0}
    assert weights_at(frames, frames[10].pts_ms + 3) == frames[10].weights
