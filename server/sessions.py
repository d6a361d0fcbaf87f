"""All sessions of a server: create/lookup/delete, the pacing tick and the idle-TTL sweep."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import secrets
from concurrent.futures import Executor

from server.blend import BlendPool, shared_pool
from server.chunk_batch import ChunkBatch
from server.config import ServerConfig
from server.listen import (
    Engine,
    ListenerFactory,
    ThreadEngine,
    WorkerEngine,
    default_listener_factory,
)
from server.metrics import Metrics
from server.providers import DEFAULT_PUSHED_RATE, ProviderFactory, PushedAudio, VoiceRequest
from server.session import Session
from server.wire import WireError

log = logging.getLogger("avatarkit.server")

#: Relayed chunks blended in one pass before the loop gets a turn: ~10 ms of work, and
#: past ~16 chunks a larger pass saves little (numpy's per-call cost is already shared).
BLEND_SLICE = 16


class SessionManager:
    """Owns every `Session`; one pacer task sends due events for all of them.

    One task ticking every `tick_ms` over the sessions that have events pending costs far
    less than a timer per session or per client, which is what lets a 2-core machine pace
    hundreds of sessions.
    """

    def __init__(self, config: ServerConfig, metrics: Metrics, factory: ProviderFactory,
                 executor: Executor, listener_factory: ListenerFactory | None = None) -> None:
        self.config = config
        listen = listener_factory or default_listener_factory
        self.listen_engine: Engine = (
            WorkerEngine(listen, config.listen_workers) if config.listen_workers > 0
            else ThreadEngine(listen, executor))
        self.metrics = metrics
        self.factory = factory
        self.executor = executor
        self.sessions: dict[str, Session] = {}
        self._pending: set[Session] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._blend: BlendPool | None = None
        self.chunk_batch = ChunkBatch()
        self._blend_due = asyncio.Event()  # set by the pacer after each tick's writes
        metrics.sessions = lambda: len(self.sessions)
        metrics.clients = lambda: sum(len(s.clients) for s in self.sessions.values())

    async def start(self) -> None:
        # Everything made so far (modules, app, avatars) lives as long as the server: move it
        # out of the cyclic collector's reach, so its full passes, which hold the loop, scan
        # only the sessions' own objects (a full pass over ~70k startup objects took tens of
        # ms: late events for every session).
        gc.freeze()
        # Full passes still scan every session's objects (~290 per relayed session: ~140 ms
        # with the loop held at 750 sessions) and they come with the churn, not with the
        # garbage: an utterance's objects outlive the young generations and count towards
        # the next full pass even when reference counting frees them. Little cyclic garbage
        # waits for a full pass (events are acyclic tuples; relayed sockets close without a
        # cycle, avatarkit/tts/sockets.close_quietly): ~500 objects a second at 750 relayed
        # sessions. So run one a hundredth as often as the default (third threshold 10):
        # at 750 relayed sessions ~1 a minute instead of one every ~8 s at 100
        # (benchmarks/serve.py, BENCH_GC).
        gc.set_threshold(700, 10, 1000)
        self._tasks = [
            asyncio.create_task(self._pace(), name="avatarkit-pacer"),
            asyncio.create_task(self._sweep(), name="avatarkit-idle-sweep"),
            asyncio.create_task(self._blend_chunks(), name="avatarkit-chunk-blend"),
        ]
        if self.config.blend_worker:
            self._blend = shared_pool()
            self._tasks.append(asyncio.create_task(self._blend.warm(), name="avatarkit-blend"))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        for s in list(self.sessions.values()):
            await s.close("closed")
        self.sessions.clear()
        if isinstance(self.listen_engine, WorkerEngine):
            self.listen_engine.shutdown()

    def create(self, avatar_id: str, provider_name: str, voice: VoiceRequest) -> Session:
        """A new session; raises WireError (limits) or AvatarkitError (provider request)."""
        if len(self.sessions) >= self.config.max_sessions:
            raise WireError(
                "too_many_sessions",
                f"the server already has {len(self.sessions)} sessions (the limit is "
                f"{self.config.max_sessions}) - close one (DELETE /session-2d/ID) or retry later",
            )
        # `audio` has no outside service to fake: never through the (injectable) factory
        provider = (PushedAudio(voice.sample_rate or DEFAULT_PUSHED_RATE)
                    if voice.provider == "audio" else self.factory(voice))
        session_id = self.config.session_id_prefix + secrets.token_urlsafe(9)
        session = Session(session_id, avatar_id, provider, provider_name, voice.lang,
                          self.config, self.metrics, self.executor, self._pending.add)
        session.blend_pool = self._blend
        session.chunk_batch = self.chunk_batch
        session.listen_engine = self.listen_engine
        if voice.provider in ("audio", "openai") and isinstance(self.listen_engine,
                                                                WorkerEngine):
            # its first turn should not wait for the workers to start and build a stream
            self.listen_engine.warm(provider.sample_rate, self.config.viseme_fps, voice.lang)
        attach = getattr(provider, "attach", None)
        if attach is not None:  # a provider that also speaks unasked (OpenAI Realtime)
            attach(session)
        self.sessions[session_id] = session
        self.metrics.sessions_created += 1
        return session

    def get(self, session_id: str) -> Session | None:
        return self.sessions.get(session_id)

    async def delete(self, session_id: str, reason: str = "closed") -> bool:
        session = self.sessions.pop(session_id, None)
        if session is None:
            return False
        self._pending.discard(session)
        await session.close(reason)
        return True

    async def _pace(self) -> None:
        loop = asyncio.get_running_loop()
        tick = self.config.tick_ms / 1000.0
        deadline = loop.time()
        while True:
            deadline += tick
            delay = deadline - loop.time()
            if delay < 0:  # overloaded: do not try to catch up with a burst of ticks
                deadline = loop.time()
                delay = 0
            await asyncio.sleep(delay)
            for session in list(self._pending):
                try:
                    session.flush()
                except Exception:
                    log.exception("session %s: sending failed", session.id)
                if not session.has_pending():
                    self._pending.discard(session)
            if self.chunk_batch:  # after the writes, which are due now
                self._blend_due.set()

    async def _blend_chunks(self) -> None:
        """After each tick's writes: blend the relayed chunks needed by the next tick (~1 s
        before they play), BLEND_SLICE at a time with the loop free in between, so that a
        tick with hundreds of sessions' chunks never holds the next tick's writes back."""
        loop = asyncio.get_running_loop()
        tick = self.config.tick_ms / 1000.0
        while True:
            await self._blend_due.wait()
            self._blend_due.clear()
            while True:
                try:
                    taken = self.chunk_batch.run(loop.time() + tick, BLEND_SLICE)
                except Exception:
                    log.exception("blending chunks failed")
                    break
                if taken < BLEND_SLICE:
                    break
                await asyncio.sleep(0)  # the loop's due callbacks (a tick's writes) first

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        ttl = self.config.session_idle_ttl_s
        interval = max(0.05, min(ttl / 4, 30.0))
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            for sid, s in list(self.sessions.items()):
                if not s.clients and not s.busy() and now - s.last_active > ttl:
                    log.info("session %s idle for %.0f s: closed", sid, now - s.last_active)
                    await self.delete(sid, "closed")
