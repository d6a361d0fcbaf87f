"""Viseme events: the bytes a client receives for a frame, built once per frame."""

from __future__ import annotations

import json
import random

from avatarkit.visemes.classes import VISEME_CLASSES
from avatarkit.visemes.coarticulation import Frame
from server import wire
from server.events import FRAME, KIND, PTS, UID, VISEME, viseme_events


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
