"""Viseme events: the bytes a client receives for a frame, built once per frame, bundled
through the pacer, and skipped (and counted) for a backlogged client."""

from __future__ import annotations

import asyncio
import json
import random
import socket

from avatarkit.tts.provider import SpeechChunk
from avatarkit.visemes.classes import VISEME_CLASSES
from avatarkit.visemes.coarticulation import Frame
from server import wire
from server.config import ServerConfig
from server.events import (
    AUDIO,
    FRAME,
    KIND,
    PATCH,
    PTS,
    UID,
    VISEME,
    audio_events,
    bundle_visemes,
    event,
    viseme_events,
    viseme_frames,
)
from server.fanout import Client, Fanout
from server.metrics import Metrics


def _header(data: bytes) -> tuple[int, int]:
    """(header length, payload length) of the unmasked server frame `data` starts with."""
    if data[1] == 126:
        return 4, int.from_bytes(data[2:4], "big")
    return 2, data[1]


def _payload(frame: bytes) -> bytes:
    """The payload of one unmasked server text frame."""
    assert frame[0] == 0x81  # FIN, text
    start, n = _header(frame)
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
        start, n = _header(data)
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


async def test_a_backlogged_client_skips_each_bundled_and_patch_frame_and_counts_them() -> None:
    """A real socket whose peer never reads: past `viseme_drop_bytes` of backlog the client
    gets the audio only, and the metric counts every frame skipped (a bundle holds several)."""
    ours, peer = socket.socketpair()
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    transport, _ = await asyncio.get_running_loop().create_connection(asyncio.Protocol,
                                                                      sock=ours)
    try:
        config = ServerConfig(viseme_drop_bytes=16 * 1024, max_client_backlog_bytes=1 << 20)
        metrics = Metrics()
        fanout = Fanout(config, metrics)
        client = Client(ws=None, transport=transport)  # type: ignore[arg-type]
        fanout.clients.append(client)
        transport.write(bytes(64 * 1024))  # the kernel takes a few kB; the rest waits
        before = client.backlog()
        assert before > config.viseme_drop_bytes
        frames = [Frame(k * 33, {"AI": 1.0}) for k in range(3)]
        bundle = bundle_visemes(viseme_events(1, frames)[0], 100.0)
        audio = audio_events(1, SpeechChunk(bytes(3200), 16000, 0.0), 100.0)
        assert len(bundle) == 1 and len(audio) == 1
        fanout.broadcast(audio + bundle + [event(PATCH, 1, 0.0, b"AKMP" + bytes(40))])
        assert metrics.viseme_frames_dropped == 4  # three visemes in one bundle, one patch
        assert client.backlog() == before + len(audio[0][FRAME])  # the audio only
    finally:
        transport.abort()
        peer.close()
