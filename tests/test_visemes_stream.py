"""Streaming viseme frames equal the batch timeline; the barge-in ramp ends at Rest."""

from __future__ import annotations

import asyncio

import pytest

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
from avatarkit.visemes.phonemes import TimedPhoneme
from avatarkit.visemes.stream import (
    VisemeStreamState,
    ramp_to_rest,
    stream_finish,
    stream_step,
    weights_at,
)
from server.produce import SLICE_MS, slices

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


# --- sentence ends under the server's slicing (server/session.py, server/blend.py) -------

SENTENCE_TEXTS = {
    "two": "I can do that today. Maybe tomorrow.",
    "three": "One. Two, three, four. Maybe tomorrow.",
    "pauses": "Wait... Let me think... Maybe tomorrow...",
}
_SYNTH: dict[str, list[SpeechChunk]] = {}


def _sentences(name: str) -> list[SpeechChunk]:
    if name not in _SYNTH:
        _SYNTH[name] = _espeak_chunks(SENTENCE_TEXTS[name])
    return _SYNTH[name]


def _longer_last_pause(chunks: list[SpeechChunk], extra_samples: int) -> list[SpeechChunk]:
    """The same speech with `extra_samples` more silence at the end, the last pause phoneme
    stretched to the new end exactly as espeak-ng times it (last phoneme ends at the audio
    end): the audio length decides the float rounding of every end the server computes."""
    *head, last = chunks
    pcm = last.pcm + b"\x00\x00" * extra_samples
    end = last.start_ms + len(pcm) / 2 / last.sample_rate * 1000.0
    p = last.phonemes[-1]
    phonemes = (*last.phonemes[:-1], TimedPhoneme(p.symbol, p.start_ms, end))
    return [*head, SpeechChunk(pcm, last.sample_rate, last.start_ms, phonemes, None, last.text)]


def _server_blend(chunks: list[SpeechChunk], opts, worker: bool):
    """What the server sends: each sentence cut by `slices`; on the loop every slice goes
    through `stream_step`, with the blend worker the first slice does and the rest of the
    sentence goes as one chunk (server/session.py `_produce`, server/blend.py `blend`)."""
    state, frames = VisemeStreamState(), []
    for chunk in chunks:
        pieces = slices(chunk, SLICE_MS)
        if worker and len(pieces) > 1:
            rest = SpeechChunk(chunk.pcm[len(pieces[0].pcm):], chunk.sample_rate,
                               pieces[1].start_ms,
                               tuple(p for x in pieces[1:] for p in x.phonemes), None, chunk.text)
            pieces = [pieces[0], rest]
        for piece in pieces:
            out, state = stream_step(state, piece, opts)
            frames += out
    out, state = stream_finish(state, opts)
    return frames + out, state


@pytest.mark.parametrize("fps", [30.0, 60.0])
@pytest.mark.parametrize("name", sorted(SENTENCE_TEXTS))
def test_server_slicing_equals_batch_at_the_last_sentence_end(name: str, fps: float) -> None:
    """Regression: the last slice's audio end (`piece.start + piece.duration`) can be one
    ulp past the chunk end the last phoneme ends at; the stream padded a zero-length pause
    there, and its Rest dominance changed the last 2-4 frames."""
    base = _sentences(name)
    assert len(base) == (3 if name != "two" else 2)
    opts = CoarticulationOptions(fps=fps)
    rounding_cases = 0
    for extra in range(80):
        chunks = _longer_last_pause(base, extra)
        phonemes = [p for c in chunks for p in c.phonemes]
        total = chunks[-1].end_ms
        batch = [(f.pts_ms, f.weights) for f in
                 timeline_from_phonemes(phonemes, opts, duration_ms=total).frames]
        for worker in (False, True):
            frames, state = _server_blend(chunks, opts, worker)
            rounding_cases += state.audio_end_ms != phonemes[-1].end_ms
            assert [(f.pts_ms, f.weights) for f in frames] == batch, (extra, worker)
        assert total - 1000 / fps <= batch[-1][0] <= total
    assert rounding_cases  # the float rounding this guards against did occur


def _aligned_sentences(sizes: tuple[int, ...], sr: int = 22050):
    """ElevenLabs-style chunks, one sentence each, chunk-relative times; each chunk's last
    character ends with its audio (the stream clock is the sum of the chunk lengths)."""
    sentences = ["Hello there.", "I like big boats.", "Maybe tomorrow"]  # speech to the end
    chunks, align_chunks, start = [], [], 0.0
    for text, n in zip(sentences, sizes, strict=True):
        dur = n / sr * 1000.0
        step = (dur - 60.0) / len(text)
        starts = tuple(30.0 + k * step for k in range(len(text)))
        durs = tuple(step for _ in text)
        durs = (*durs[:-1], dur - starts[-1])  # the last character ends with the audio
        al = CharAlignment(tuple(text), starts, durs)
        chunk = SpeechChunk(b"\x00\x00" * n, sr, start, alignment=AlignmentChunk(al))
        chunks.append(chunk)
        align_chunks.append(AlignmentChunk(al, audio_ms=chunk.duration_ms))
        start = chunk.end_ms
    return chunks, align_chunks, sum(sizes) / sr * 1000.0


@pytest.mark.parametrize("fps", [30.0, 60.0])
def test_alignment_stream_equals_batch_at_sentence_ends(fps: float) -> None:
    """The stream's audio end (a sum of chunk ends) and the batch's total length (samples /
    rate) differ by float rounding: no zero-length pause may come of it."""
    opts = CoarticulationOptions(fps=fps)
    lexicon = espeak_lexicon("en-us")
    rounding_cases = 0
    for last in range(17000, 17060, 3):
        chunks, align_chunks, total = _aligned_sentences((16000, 19000, last))
        frames, _, state = _run_stream(chunks, opts, lexicon)
        batch = timeline_from_alignment(align_chunks, "en-us", opts, duration_ms=total)
        rounding_cases += state.audio_end_ms != total
        assert [(f.pts_ms, f.weights) for f in frames] == [
            (f.pts_ms, f.weights) for f in batch.frames
        ], last
    assert rounding_cases
