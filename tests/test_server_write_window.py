"""The pacer's write window: a session is written to at the last tick before its earliest
waiting event is due, and that write takes every event due within the window - so no
event leaves later than with one write per tick, and none earlier than the window."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from avatarkit.errors import AvatarkitError
from server.config import ServerConfig
from server.events import PTS, VISEME, event
from server.metrics import Metrics
from server.session import Session, Utterance


class _Voice:
    sample_rate = 16000


class _Clock:
    """Stands in for the loop's clock in `Session.flush`."""

    def __init__(self) -> None:
        self.now = 0.0

    def time(self) -> float:
        return self.now


async def _session(**config: float) -> tuple[Session, _Clock, list[list[float]]]:
    session = Session("s_test", "hero", _Voice(), "test", "en-us", ServerConfig(**config),
                      Metrics(), ThreadPoolExecutor(1), lambda s: None)
    clock = _Clock()
    session.loop = clock  # type: ignore[assignment]
    writes: list[list[float]] = []  # pts of each write's events
    session.fanout.broadcast = lambda events: writes.append([e[PTS] for e in events])
    return session, clock, writes


def _put_frames(session: Session, n: int, step_ms: float) -> Utterance:
    """`n` viseme events `step_ms` apart, the first due at loop time 1.0."""
    u = Utterance(1, "text", 0.0, t0=1.0 + session.timeline.lead)
    session.timeline.put(u, [event(VISEME, 1, i * step_ms, b"{}") for i in range(n)])
    return u


async def _run(tick_ms: float, window_ms: float) -> tuple[list[list[float]], list[float]]:
    """Tick through 2.2 s; each write's pts and how early/late (s) each event left."""
    session, clock, writes = await _session(tick_ms=tick_ms, write_window_ms=window_ms)
    _put_frames(session, 60, 33.0)
    sent_at: dict[float, float] = {}
    for k in range(int(2.2 / (tick_ms / 1000)) + 1):
        clock.now = 0.9 + k * tick_ms / 1000 + 0.0013  # ticks never fall on a due time
        before = len(writes)
        session.flush()
        for pts in (p for w in writes[before:] for p in w):
            sent_at[pts] = clock.now
    assert sorted(sent_at) == [i * 33.0 for i in range(60)]  # every event, once
    early = [1.0 + pts / 1000 - t for pts, t in sent_at.items()]
    return writes, early


async def test_a_write_takes_the_window_and_no_event_is_late() -> None:
    writes, early = await _run(40.0, 80.0)
    assert min(early) >= 0.0  # never after its due time
    assert max(early) <= 0.080 + 1e-9  # never more than the window early
    assert max(early) > 0.040  # some do leave more than one tick early...
    per_tick, early_tick = await _run(40.0, 40.0)
    assert min(early_tick) >= 0.0 and max(early_tick) <= 0.040 + 1e-9
    assert len(writes) <= 0.6 * len(per_tick)  # ...so there are far fewer writes


async def test_nothing_is_written_before_the_earliest_event_is_due_by_the_next_tick(
) -> None:
    session, clock, writes = await _session(tick_ms=40.0, write_window_ms=80.0)
    _put_frames(session, 10, 30.0)
    clock.now = 1.0 - 0.041  # the first event is due after the next tick
    session.flush()
    assert writes == []
    clock.now = 1.0 - 0.039  # now it is: the write takes what is due by now + 80 ms
    session.flush()
    assert writes == [[0.0, 30.0]]
    clock.now = 1.015  # the next (pts 60, due at 1.06) is not due by the next tick (1.055)
    session.flush()
    assert len(writes) == 1
    clock.now = 1.03  # now it is (1.07): what is due by 1.11 goes
    session.flush()
    assert writes[1] == [60.0, 90.0]


def test_the_window_is_at_least_a_tick() -> None:
    with pytest.raises(AvatarkitError, match="write_window_ms"):
        ServerConfig(tick_ms=40.0, write_window_ms=20.0).checked()
