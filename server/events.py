"""Wire encoding of a session's timeline: every message serialised once, for every client.

An `Event` is one message on a session's timeline with its complete WebSocket frame, built
when the event is produced; sending it is one socket write per client, however many watch.
A mouth shape travels through the server in one form, `Shape`: produced frames become
`Shape`s (and their viseme events) here, once, wherever they came from (the viseme stream,
the blend worker or the audio listener).

Both are plain tuples of atoms, which the cyclic garbage collector stops tracking after its
first look: a server keeps ~100 live events per session, and as tracked objects (with their
heap entries and frames) they made its passes scan ~130k objects at 200 sessions, up to
90 ms with the loop held.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from avatarkit.tts.provider import SpeechChunk
from avatarkit.visemes.coarticulation import Frame
from server import wire

# event kinds
START, AUDIO, VISEME, END, CONTROL = range(5)
PATCH = 5  # a binary mouth-patch frame (variant C, server/lipsync.py)

#: (kind, utterance id, pts_ms, complete WebSocket frame, PCM (audio only), sample rate).
Event = tuple[int, int, float, bytes, "bytes | None", int]
# its fields (literal indices: a type checker knows each field's type)
KIND: Final = 0
UID: Final = 1
PTS: Final = 2
FRAME: Final = 3
PCM: Final = 4
RATE: Final = 5

#: A mouth shape: (pts_ms, ((viseme class, weight), ...)).
Shape = tuple[float, tuple[tuple[str, float], ...]]


def event(kind: int, uid: int, pts_ms: float, payload: bytes, pcm: bytes | None = None,
          sample_rate: int = 0) -> Event:
    """An event with its WebSocket frame (UTF-8 JSON for text events, binary for audio and
    patches), built once and shared by all clients."""
    return (kind, uid, pts_ms, wire.ws_frame(payload, binary=kind in (AUDIO, PATCH)), pcm,
            sample_rate)


def event_frame(ev: Event, audio_json: bool = False) -> bytes:
    """The bytes on the wire of `ev` for a client (the JSON/base64 audio form on request)."""
    if audio_json and ev[KIND] == AUDIO:
        pcm = ev[PCM]
        assert pcm is not None
        text = wire.encode_audio_json(ev[UID], ev[PTS], ev[RATE], pcm)
        return wire.ws_frame(text.encode(), binary=False)
    return ev[FRAME]


def viseme_events(uid: int, frames: Iterable[Frame]) -> tuple[list[Event], list[Shape]]:
    """Produced viseme frames -> their events and their shapes."""
    events: list[Event] = []
    shapes: list[Shape] = []
    head = f'{{"type":"viseme","utterance_id":{uid},"pts_ms":'
    body = wire.viseme_body
    frame = wire.ws_frame
    for f in frames:  # `wire.encode_viseme` and `event`, inline: 30 a second per session
        pts = f.pts_ms
        items = tuple(f.weights.items())
        text = f'{head}{int(pts)},"weights":{{{body(items)}}}}}'
        events.append((VISEME, uid, pts, frame(text.encode(), binary=False), None, 0))
        shapes.append((pts, items))
    return events, shapes


def bundle_visemes(events: list[Event], span_ms: float) -> list[Event]:
    """`events` with each run of consecutive viseme events whose pts lie within `span_ms` of
    the run's first as one event: its frames back to back, due with the first.

    The pacer's work is per event (heap, write loop, resume buffer), and visemes are three
    quarters of a session's events at 30 frames/s. A client gets the same messages; those
    after a bundle's first leave up to `span_ms` earlier than alone, ahead of the
    send-ahead they are buffered by anyway (server/session.py: `span_ms` is the write
    window minus a tick, so a frame leaves at most two windows less a tick before it is
    due)."""
    out: list[Event] = []
    run: list[Event] = []
    for ev in events:
        if ev[KIND] == VISEME:
            if run and ev[PTS] - run[0][PTS] > span_ms:
                out.append(_bundle(run))
                run = []
            run.append(ev)
            continue
        if run:
            out.append(_bundle(run))
            run = []
        out.append(ev)
    if run:
        out.append(_bundle(run))
    return out


def _bundle(run: list[Event]) -> Event:
    if len(run) == 1:
        return run[0]
    first = run[0]
    return (VISEME, first[UID], first[PTS], b"".join([ev[FRAME] for ev in run]), None, 0)


def viseme_frames(ev: Event) -> int:
    """How many viseme messages a viseme event holds (a bundle holds several)."""
    return ev[FRAME].count(b'"type":"viseme"')


def audio_events(uid: int, chunk: SpeechChunk, frame_ms: float) -> list[Event]:
    """A chunk's audio cut into frames of `frame_ms` (binary audio events)."""
    rate = chunk.sample_rate
    step = max(1, int(rate * frame_ms / 1000.0)) * 2
    pcm = chunk.pcm
    out = []
    for off in range(0, len(pcm) - len(pcm) % 2, step):
        piece = pcm[off:off + step]
        pts = chunk.start_ms + off / 2 / rate * 1000.0
        out.append(event(AUDIO, uid, pts, wire.encode_audio(uid, pts, rate, piece),
                         piece, rate))
    return out
