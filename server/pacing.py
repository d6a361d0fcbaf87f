"""Pacing: when each event of a session is due, on the session's playback clock.

Timing only - no sockets, no providers, no waiting. An utterance's clock starts when its
first audio arrives (`t0`, the loop time its pts 0 plays), never before the previous
utterance's audio has ended (`Timeline.free_at`), so queued utterances play back to back.
Every event is then due `send_ahead` before it plays:

    due = t0 - send_ahead + pts_ms / 1000

The same clock tells a barge-in where playback is (server/bargein.py) and a client that
joins mid-utterance where to resume (`resume_point`).
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from server.events import AUDIO, END, KIND, PCM, PTS, RATE, Event, Shape

#: A slice of phoneme-timed speech after the first is made when its audio is due to be
#: sent within this, ms (server/produce.py).
PRODUCE_AHEAD_MS = 1000.0


@dataclass(eq=False)
class Utterance:
    """One speak command, from the queue to its `utterance_end`."""

    id: int
    text: str
    reason_started: float  # loop time it was requested
    #: Loop time of pts 0 on the session clock (None until the first audio arrives).
    t0: float | None = None
    #: Audio produced so far, ms.
    audio_end_ms: float = 0.0
    end_pushed: bool = False
    ended: bool = False
    #: Events already sent (for clients that join mid-utterance), oldest first.
    sent: deque[Event] = field(default_factory=deque)
    #: Shapes produced (for the barge-in ramp's starting shape), oldest first.
    frames: deque[Shape] = field(default_factory=deque)
    #: Where its speech comes from when not from the provider's `stream(text)`: an async
    #: iterable of audio-only chunks (server/listen.py: pushed audio, OpenAI Realtime).
    source: Any = None


class Timeline:
    """A session's events waiting to be sent, ordered by due time (loop seconds).

    Heap entries are (due, seq, event, utterance id): atoms only (see server/events.py)."""

    def __init__(self, send_ahead_ms: float, on_first: Callable[[], None]) -> None:
        self.lead = send_ahead_ms / 1000.0
        #: Loop time the playback clock is free: the last started utterance's audio ends.
        self.free_at = 0.0
        self._heap: list[tuple[float, int, Event, int]] = []
        self._utts: dict[int, Utterance] = {}  # utterances with events waiting, by id
        self._seq = itertools.count()
        self._on_first = on_first  # the timeline went from empty to pending

    def __bool__(self) -> bool:
        return bool(self._heap)

    def start(self, u: Utterance, now: float) -> float:
        """Start `u`'s clock (its first audio is here); the loop time its first events are
        released (now, or send-ahead before it plays when the previous one still plays)."""
        u.t0 = max(now, self.free_at)
        return max(now, u.t0 - self.lead)

    def ends(self, u: Utterance) -> float:
        """Loop time `u`'s audio produced so far ends; the clock is free from then."""
        assert u.t0 is not None
        self.free_at = u.t0 + u.audio_end_ms / 1000.0
        return self.free_at

    def due(self, u: Utterance, pts_ms: float) -> float:
        assert u.t0 is not None
        return u.t0 - self.lead + pts_ms / 1000.0

    def put(self, u: Utterance, events: list[Event]) -> None:
        """Events of `u` (its clock started), each due at its pts."""
        base = self.due(u, 0.0)
        for ev in events:
            self.push(base + ev[PTS] / 1000.0, ev, u)

    def push(self, due: float, ev: Event, u: Utterance) -> None:
        was_empty = not self._heap
        self._utts[u.id] = u
        heapq.heappush(self._heap, (due, next(self._seq), ev, u.id))
        if was_empty:
            self._on_first()

    def first_due(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def pop_due(self, horizon: float) -> Iterator[tuple[Event, Utterance]]:
        """Events due by `horizon`, in order, skipping those of utterances that ended (an
        utterance may end while the caller walks them)."""
        heap, utts = self._heap, self._utts
        while heap and heap[0][0] <= horizon:
            _, _, ev, uid = heapq.heappop(heap)
            u = utts.get(uid)
            if u is None or u.ended:
                continue
            if ev[KIND] == END:
                del utts[uid]
            yield ev, u

    def clear(self) -> list[Utterance]:
        """Drop every waiting event; the utterances they belonged to."""
        utts = list(self._utts.values())
        self._heap.clear()
        self._utts.clear()
        return utts

    def pts(self) -> list[float]:
        return [e[2][PTS] for e in self._heap]


def playback_ms(u: Utterance, now: float) -> float:
    """Where playback of `u` is at loop time `now`, ms (0 before it starts)."""
    assert u.t0 is not None
    return max(0.0, (now - u.t0) * 1000.0)


def resume_point(u: Utterance, pos_ms: float) -> float:
    """pts of the sent audio frame that plays at `pos_ms`: where a joining client resumes."""
    resume = 0.0
    for ev in u.sent:
        pcm = ev[PCM]
        if ev[KIND] == AUDIO and pcm is not None:
            resume = ev[PTS]
            if resume + len(pcm) / 2 / ev[RATE] * 1000.0 > pos_ms:
                break
    return resume


def trim(u: Utterance, keep_from_ms: float) -> None:
    """Forget sent events and shapes before `keep_from_ms` (a joining client never needs
    them; the barge-in ramp needs the shape shown at playback)."""
    sent = u.sent
    while sent and sent[0][PTS] < keep_from_ms:
        sent.popleft()
    frames = u.frames
    while len(frames) > 1 and frames[1][0] < keep_from_ms:
        frames.popleft()


def produce_wait(timeline: Timeline, u: Utterance, pts_ms: float, now: float) -> float:
    """Seconds until audio at `pts_ms` of `u` is due to be sent within PRODUCE_AHEAD_MS."""
    return max(0.0, timeline.due(u, pts_ms - PRODUCE_AHEAD_MS) - now)
