"""Viseme events: the bytes a client receives for a frame, built once per frame."""

from __future__ import annotations

import json
import random

from avatarkit.tts.provider import SpeechChunk
from avatarkit.visemes.classes import VISEME_CLASSES
from avatarkit.visemes.coarticulation import Frame
from server import wire
from server.events import (
    AUDIO,
    FRAME,
    KIND,
    PTS,
    UID,
    VISEME,
    audio_events,
    bundle_visemes,
    viseme_events,
    viseme_frames,
)


def _payload(frame: bytes) -> bytes:
    """The payload of one unmasked server text frame."""
    assert frame[0] == 0x81  # FIN, text
    n = frame[1]
    if n == 126:
        n, start = int.from_bytes(frame[2:4], "big"), 4
    else:
        start = 2
    assert len(frame) == start + n
    return frame[start:]


def test_viseme_events_are_the_encoded_messages_and_their_shapes() -> None:
    rng = random.Random(5)
    frames = []
    for k in range(400):
        names = rng.sample([*VISEME_CLASSES, "Custom"], rng.randint(1, 6))
        values = [rng.choice([round(rng.random(), 3), 1.0, 0.5, rng.random(), 1e-4])
                  for _ in names]  # on the 0.001 grid and off it
        frames.append(Frame(k * 33 + rng.randint(0, 2), dict(zip(names, values, strict=True))))
    events, shapes = viseme_events(42, frames)
    assert len(events) == len(shapes) == len(frames)
    for f, ev, shape in zip(frames, events, shapes, strict=True):
        assert (ev[KIND], ev[UID], ev[PTS]) == (VISEME, 42, f.pts_ms)
        text = _payload(ev[FRAME]).decode()
        assert text == wire.encode_viseme(42, f.pts_ms, f.weights)
        msg = json.loads(text)
        assert msg == {"type": "viseme", "utterance_id": 42, "pts_ms": f.pts_ms,
                       "weights": {k: round(v, 3) for k, v in f.weights.items()}}
        assert list(msg["weights"]) == list(f.weights)  # the classes in the frame's order
        assert shape == (f.pts_ms, tuple(f.weights.items()))
    assert any(len(ev[FRAME]) > 127 for ev in events)  # both frame header lengths


def _frames(data: bytes) -> list[bytes]:
    """The unmasked server frames written back to back in `data`."""
    out = []
    while data:
        n, start = data[1], 2
        if n == 126:
            n, start = int.from_bytes(data[2:4], "big"), 4
        out.append(data[:start + n])
        data = data[start + n:]
    return out


def test_visemes_within_the_span_travel_as_one_event_with_the_same_messages() -> None:
    frames = [Frame(round(k * 1000 / 30), {"AI": 0.75, "Rest": 0.25}) for k in range(30)]
    visemes, _ = viseme_events(7, frames)
    audio = audio_events(7, SpeechChunk(bytes(2 * 16000), 16000, 0.0), 100.0)
    events = audio + visemes + audio[:1]
    bundled = bundle_visemes(events, 40.0)
    assert bundled[:10] == audio and bundled[-1] == audio[0]  # audio untouched, in place
    middle = bundled[10:-1]
    assert [ev[KIND] for ev in middle] == [VISEME] * 15  # pairs: 33 ms apart, span 40
    # the same messages in the same order, each bundle due with its first frame
    assert [f for ev in middle for f in _frames(ev[FRAME])] == [ev[FRAME] for ev in visemes]
    assert [ev[PTS] for ev in middle] == [ev[PTS] for ev in visemes[::2]]
    assert [viseme_frames(ev) for ev in middle] == [2] * 15
    assert {ev[UID] for ev in middle} == {7}
    # a wider span takes more frames; none leaves more than the span before its own pts
    for span in (0.0, 20.0, 50.0, 90.0):
        out = bundle_visemes(visemes, span)
        assert [f for ev in out for f in _frames(ev[FRAME])] == [ev[FRAME] for ev in visemes]
        sizes = [viseme_frames(ev) for ev in out]
        assert max(sizes) == int(span // (1000 / 30)) + 1
        k = 0
        for ev, n in zip(out, sizes, strict=True):
            assert visemes[k + n - 1][PTS] - ev[PTS] <= span
            k += n
    assert bundle_visemes(audio, 40.0) == audio and all(ev[KIND] == AUDIO for ev in audio)
