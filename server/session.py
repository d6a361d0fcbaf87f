"""One live session: a voice, a queue of utterances and the clients watching it.

    speak / pushed audio -> queue -> Producer (server/produce.py: speech -> events)
        -> Timeline (server/pacing.py: each event due on the session's playback clock)
        -> flush, every pacer tick -> Fanout (server/fanout.py: every client's socket)

This module is the state machine that ties them together: which utterance is producing,
which is playing, and what a command does to them - speak, barge-in (server/bargein.py),
close, a client joining mid-utterance. Events are serialised once, when they are produced
(server/events.py). Every method runs on the event loop.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from avatarkit.tts.provider import Provider
from avatarkit.visemes.stream import ramp_to_rest
from server import wire
from server.bargein import stop_ramp
from server.blend import BlendPool
from server.chunk_batch import ChunkBatch
from server.config import ServerConfig
from server.events import (
    CONTROL,
    END,
    FRAME,
    KIND,
    PATCH,
    PTS,
    START,
    VISEME,
    Event,
    bundle_visemes,
    event,
    event_frame,
    viseme_events,
)
from server.fanout import CLOSE_SESSION_ENDED, CLOSE_SLOW_CLIENT, Client, Fanout, send
from server.listen import Engine, VoiceChannel
from server.metrics import Metrics
from server.pacing import Timeline, Utterance, playback_ms, resume_point, trim
from server.produce import Produced, Producer

__all__ = ["CLOSE_SESSION_ENDED", "CLOSE_SLOW_CLIENT", "Client", "Session", "Utterance"]

log = logging.getLogger("avatarkit.server")


class Session:
    """A session's state machine; every method runs on the event loop."""

    def __init__(
        self,
        session_id: str,
        avatar_id: str,
        provider: Provider,
        provider_name: str,
        lang: str,
        config: ServerConfig,
        metrics: Metrics,
        executor: Executor,
        on_pending: Callable[[Session], None],
    ) -> None:
        self.id = session_id
        self.avatar_id = avatar_id
        self.provider = provider
        self.provider_name = provider_name
        self.lang = lang
        self.config = config
        self.metrics = metrics
        self.executor = executor
        self.sample_rate = int(provider.sample_rate)
        self.fanout = Fanout(config, metrics)
        self.timeline = Timeline(config.send_ahead_ms, lambda: on_pending(self))
        self.queue: deque[Utterance] = deque()
        self.producing: Utterance | None = None
        self.playing: Utterance | None = None
        self._producer = Producer(self)
        self._producing: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self.loop = asyncio.get_running_loop()
        self.last_active = self.loop.time()
        self.closed = False
        self._tick = config.tick_ms / 1000.0
        self._window = max(config.write_window_ms, config.tick_ms) / 1000.0
        #: Viseme frames this close travel as one pacer event (server/events.bundle_visemes).
        self._bundle_ms = max(0.0, config.write_window_ms - config.tick_ms)
        #: The process that blends phoneme-timed speech (server/blend.py); None: the loop.
        self.blend_pool: BlendPool | None = None
        #: Where character-aligned chunks wait to be blended with every session's at the
        #: pacer's tick (server/chunk_batch.py); None: each on its own.
        self.chunk_batch: ChunkBatch | None = None
        #: Variant C: the session's mouth-patch producer (server/lipsync.py), or None.
        self.lipsync: Any = None
        #: Where the acoustic front end of audio-only utterances runs (server/listen.py).
        self.listen_engine: Engine | None = None
        #: What earlier audio-driven turns learned about this session's voice channel.
        self.voice_channel = VoiceChannel()

    @property
    def clients(self) -> list[Client]:
        """The WebSockets watching this session (kept by its fan-out)."""
        return self.fanout.clients

    # ------------------------------------------------------------------ commands
    def busy(self) -> bool:
        return bool(self.queue or self.producing or self.playing or self.timeline)

    async def speak(self, text: str, barge_in: bool = False) -> int:
        """Queue an utterance (interrupting the current one with `barge_in`); its id."""
        if not getattr(self.provider, "speaks_text", True):
            raise wire.WireError(
                "no_voice", f"this session's provider ({self.provider_name}) has no text "
                "voice - push its audio instead (docs/protocol.md \"Pushing audio\")")
        # a speech-to-speech provider answers the text: its utterance is audio to listen to
        source_for = getattr(self.provider, "utterance_source", None)
        return await self.enqueue(text, source_for(text) if source_for else None, barge_in)

    async def enqueue(self, text: str, source: Any, barge_in: bool = False) -> int:
        """Queue an utterance whose speech is `provider.stream(text)`, or, with `source`,
        the audio-only chunks that source yields (listened to for visemes); its id."""
        self.last_active = self.loop.time()
        if self.closed:
            raise wire.WireError("not_found", "this session is closed")
        if barge_in:
            await self.interrupt("barge_in")
        elif len(self.queue) >= self.config.max_queued_utterances:
            raise wire.WireError(
                "queue_full",
                f"{len(self.queue)} utterances are already waiting (the limit is "
                f"{self.config.max_queued_utterances}) - wait, or speak with barge_in",
            )
        u = Utterance(next(self._ids), text, self.loop.time(), source=source)
        self.queue.append(u)
        if self._producing is None or self._producing.done():
            self._producing = asyncio.create_task(self._produce_all(), name=f"produce-{self.id}")
        return u.id

    async def interrupt(self, reason: str) -> bool:
        """Barge-in: cancel the provider, ramp the mouth to Rest, end what was started.

        Returns True when something was playing or waiting.
        """
        self.last_active = now = self.loop.time()
        if self._producing is not None and not self._producing.done():
            self._producing.cancel()  # closes the provider stream (its finally runs aclose)
        self._producing = None
        if self.lipsync is not None:
            self.lipsync.cancel()
        u = self.playing
        waiting = {id(x): x for x in (
            self.timeline.clear()
            + ([self.producing] if self.producing is not None else [])
            + list(self.queue)
        ) if x is not u and not x.ended}
        self.producing = None
        self.queue.clear()
        self.playing = None
        interrupted = bool(waiting)
        if u is not None and not u.ended:
            ramp, pos = stop_ramp(u, now, self.config.ramp_ms, self.config.viseme_fps)
            for ev in viseme_events(u.id, ramp)[0]:
                self.fanout.broadcast([ev])
            end = float(ramp[-1].pts_ms)
            self._end(u, pts_ms=end, reason=reason)
            self.timeline.free_at = now + max(0.0, end - pos) / 1000.0
            interrupted = True
        for q in sorted(waiting.values(), key=lambda x: x.id):
            self._end(q, pts_ms=0.0, reason=reason)
        return interrupted

    async def close(self, reason: str = "closed") -> None:
        """End every utterance and close every client (session deleted or expired)."""
        if self.closed:
            return
        self.closed = True
        await self.interrupt(reason)
        if self.lipsync is not None:
            await self.lipsync.close()
        await self.fanout.close_all()
        aclose = getattr(self.provider, "aclose", None)
        if aclose is not None:
            try:
                await aclose()
            except Exception:  # a provider's cleanup must not break shutdown
                log.exception("closing the provider of session %s failed", self.id)

    async def _produce_all(self) -> None:
        while self.queue:
            u = self.queue.popleft()
            self.producing = u
            try:
                await self._producer.produce(u)
            finally:
                if self.producing is u:
                    self.producing = None

    # ------------------------------------------------------------------ onto the timeline
    def begin(self, u: Utterance, may_start: float, sample_rate: int) -> None:
        """The first audio of `u` is here: start its clock and queue `utterance_start`."""
        if u.t0 is not None:
            return
        released = self.timeline.start(u, self.loop.time())
        self.metrics.first_audio.observe(max(0.0, released - may_start))
        self.timeline.put(u, [event(START, u.id, 0.0, wire.utterance_start(
            u.id, u.text, sample_rate).encode())])

    def put(self, u: Utterance, produced: Produced, audio_end_ms: float | None) -> None:
        """Produced events (and their shapes) of `u` onto the timeline; `audio_end_ms`: how
        far its audio now reaches."""
        events, shapes = produced
        self.timeline.put(u, bundle_visemes(events, self._bundle_ms))
        u.frames.extend(shapes)
        if audio_end_ms is not None:
            u.audio_end_ms = max(u.audio_end_ms, audio_end_ms)

    def push_patch(self, u: Utterance, pts_ms: float, data: bytes) -> bool:
        """Variant C hook: a binary mouth-patch frame of `u`, paced like a viseme frame (sent
        at its pts minus send-ahead); False when `u` is over."""
        if u.ended or u.t0 is None:
            return False
        self.timeline.put(u, [event(PATCH, u.id, pts_ms, data)])
        return True

    def push_end(self, u: Utterance) -> None:
        """`u` completed: `utterance_end` when its audio ends."""
        end = wire.utterance_end(u.id, interrupted=False, pts_ms=u.audio_end_ms,
                                 reason="completed").encode()
        self.timeline.put(u, [event(END, u.id, u.audio_end_ms, end)])
        u.end_pushed = True
        self.timeline.ends(u)

    def push_failure(self, u: Utterance, code: str, message: str) -> None:
        """After the audio that did arrive: `error`, the mouth back to Rest (when it moved),
        then `utterance_end {reason: error}` at the end of that ramp."""
        err = wire.error(code, message, utterance_id=u.id).encode()
        t0 = u.t0 if u.t0 is not None else max(self.loop.time(), self.timeline.free_at)
        due = t0 + u.audio_end_ms / 1000.0 - self.timeline.lead
        self.timeline.push(due, event(CONTROL, u.id, u.audio_end_ms, err), u)
        end_ms = u.audio_end_ms
        if u.frames and u.t0 is not None:  # cut off mid-word: ramp, as a barge-in does
            ramp = ramp_to_rest(dict(u.frames[-1][1]), u.audio_end_ms, self.config.ramp_ms,
                                self.config.viseme_fps)
            self.put(u, viseme_events(u.id, ramp), None)
            end_ms = float(ramp[-1].pts_ms)
        end = wire.utterance_end(u.id, interrupted=True, pts_ms=end_ms,
                                 reason="error").encode()
        self.timeline.push(t0 + end_ms / 1000.0 - self.timeline.lead,
                           event(END, u.id, end_ms, end), u)
        if u.t0 is not None:  # the clock is free once the ramp has played
            self.timeline.free_at = u.t0 + end_ms / 1000.0

    def _end(self, u: Utterance, *, pts_ms: float, reason: str) -> None:
        """Send an interrupted `utterance_end` now (barge-in) and count the outcome."""
        if u.ended:
            return
        data = wire.utterance_end(u.id, interrupted=True, pts_ms=pts_ms, reason=reason)
        self._count_end(u, reason)
        self.fanout.broadcast([event(END, u.id, pts_ms, data.encode())])

    def _count_end(self, u: Utterance, reason: str) -> None:
        u.ended = True
        u.sent.clear()
        close = getattr(u.source, "close", None)
        if close is not None:  # pushed audio still arriving for it is dropped
            close()
        outcome = {"completed": "completed", "error": "failed"}.get(reason, "interrupted")
        self.metrics.utterances[outcome] += 1

    # ------------------------------------------------------------------ sending
    def has_pending(self) -> bool:
        return bool(self.timeline)

    def timeline_pts(self) -> list[float]:
        """pts_ms of every event waiting on the timeline (tests)."""
        return self.timeline.pts()

    def flush(self) -> None:
        """Send every event due within the write window once the earliest is due by the next
        tick; called by the pacer and the producer. Synchronous (one socket write per
        client), so it never runs twice at once."""
        first = self.timeline.first_due()
        if first is None:
            return
        now = self.loop.time()
        if first > now + self._tick:  # a later tick writes it, with what follows it
            return
        self.metrics.send_lateness.observe(max(0.0, now - first))
        horizon = now + self._window
        batch: list[Event] = []
        for ev, u in self.timeline.pop_due(horizon):
            kind = ev[KIND]
            if kind == START:
                self.playing = u
            elif kind == END:
                if self.playing is u:
                    self.playing = None
                self._count_end(u, "completed" if u.end_pushed else "error")
            elif kind != CONTROL:
                u.sent.append(ev)
            batch.append(ev)
        if batch:
            self.fanout.broadcast(batch)
        playing = self.playing
        if playing is not None and len(playing.sent) > 64:
            trim(playing, playback_ms(playing, self.loop.time())
                 - 2 * self.config.audio_frame_ms - self._bundle_ms)

    # ------------------------------------------------------------------ clients
    def attach(self, c: Client) -> None:
        """Add a client: hello, then (mid-utterance) the resume point and what is buffered."""
        self.last_active = self.loop.time()
        cfg = self.config
        send(c, event(CONTROL, 0, 0.0, wire.hello(
            session_id=self.id, avatar_id=self.avatar_id, provider=self.provider_name,
            sample_rate=self.sample_rate, viseme_fps=cfg.viseme_fps,
            audio="json" if c.audio_json else "binary", send_ahead_ms=cfg.send_ahead_ms,
            **(self.lipsync.hello_fields() if self.lipsync is not None else {}),
        ).encode())[FRAME])
        u = self.playing
        if u is not None and not u.ended and u.t0 is not None:
            resume = resume_point(u, playback_ms(u, self.loop.time()))
            start = event(CONTROL, u.id, resume, wire.utterance_start(
                u.id, u.text, self.sample_rate, pts_ms=resume, resumed=True).encode())
            # audio from the resume point on; viseme bundles that reach it (their first
            # frames are the shape showing there)
            reach = resume - self._bundle_ms
            send(c, b"".join([start[FRAME]] + [
                event_frame(ev, c.audio_json) for ev in u.sent
                if ev[PTS] >= resume or (ev[KIND] == VISEME and ev[PTS] >= reach)]))
        self.clients.append(c)

    def detach(self, c: Client) -> None:
        c.closed = True
        if c in self.clients:
            self.clients.remove(c)
        self.last_active = self.loop.time()
