"""One live session: a voice, a playback clock, a queue of utterances and the clients
watching it.

    speak -> queue -> producer (provider stream -> viseme stream, off the loop)
          -> timeline (events keyed by due time on the session clock)
          -> pacer tick / flush -> every client's socket (pre-serialised bytes)

Every event is serialised once, when it is produced; sending it is one socket write per
client. The session's clock makes queued utterances play back to back, tells a barge-in
where playback is, and tells a reconnecting client where to resume.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from avatarkit.errors import AvatarkitError
from avatarkit.tts.provider import Provider, ProviderError, SpeechChunk
from avatarkit.visemes.coarticulation import CoarticulationOptions, Frame
from avatarkit.visemes.g2p import Lexicon, espeak_lexicon
from avatarkit.visemes.stream import (
    VisemeStreamState,
    ramp_to_rest,
    stream_finish,
    stream_step,
    weights_at,
)
from server import wire
from server.blend import BlendedFrame, BlendPool
from server.config import ServerConfig
from server.listen import Engine, Listener, is_audio_only
from server.metrics import Metrics

log = logging.getLogger("avatarkit.server")

# event kinds
START, AUDIO, VISEME, END, CONTROL = range(5)
PATCH = 5  # a binary mouth-patch frame (variant C, server/lipsync.py)
_TEXT = WSMsgType.TEXT

#: WebSocket close codes (docs/protocol.md "Close codes").
CLOSE_SESSION_ENDED = 4000
CLOSE_SLOW_CLIENT = 4008


#: One message of the session timeline, serialised once for every client:
#: (kind, utterance id, pts_ms, complete WebSocket frame, PCM (audio only), sample rate).
#: A plain tuple of atoms, which the cyclic garbage collector stops tracking after its first
#: look: a server keeps ~100 live events per session, and as tracked objects (with their
#: heap entries and frames) they made its passes scan ~130k objects at 200 sessions, up to
#: 90 ms with the loop held.
Event = tuple[int, int, float, bytes, "bytes | None", int]
KIND, UID, PTS, FRAME, PCM, RATE = range(6)


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


@dataclass(eq=False)
class Client:
    """One WebSocket watching a session."""

    ws: web.WebSocketResponse
    transport: Any  # asyncio.Transport of the connection
    audio_json: bool = False
    closed: bool = False

    def backlog(self) -> int:
        """Bytes written to this client that the kernel has not taken yet."""
        t = self.transport
        return t.get_write_buffer_size() if t is not None and not t.is_closing() else 0


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
    #: Frames produced (for the barge-in ramp's starting shape), as (pts_ms, weights
    #: items): tuples of atoms, untracked by the cyclic GC like events.
    frames: deque[tuple[float, tuple[tuple[str, float], ...]]] = field(default_factory=deque)
    #: Where its speech comes from when not from the provider's `stream(text)`: an async
    #: iterable of audio-only chunks (server/listen.py: pushed audio, OpenAI Realtime).
    source: Any = None


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
        self.sample_rate = int(provider.sample_rate)
        self.coart = CoarticulationOptions(fps=config.viseme_fps).checked()
        self.clients: list[Client] = []
        self.queue: deque[Utterance] = deque()
        self.producing: Utterance | None = None
        self.playing: Utterance | None = None
        self._producer: asyncio.Task[None] | None = None
        #: (due, seq, event, utterance id): atoms only (see `Event`).
        self._timeline: list[tuple[float, int, Event, int]] = []
        #: Utterances with events on the timeline, by id.
        self._utts: dict[int, Utterance] = {}
        self._seq = itertools.count()
        self._ids = itertools.count(1)
        self._executor = executor
        self._on_pending = on_pending
        self._lexicon: Lexicon | None = None
        self.loop = asyncio.get_running_loop()
        self.clock_free_at = 0.0
        self.last_active = self.loop.time()
        self.closed = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._drop_at = config.viseme_drop_bytes
        self._close_at = config.max_client_backlog_bytes
        self._lead = config.send_ahead_ms / 1000.0
        self._tick = config.tick_ms / 1000.0
        #: The process that blends phoneme-timed speech (server/blend.py); None: the loop.
        self.blend_pool: BlendPool | None = None
        #: Variant C: the session's mouth-patch producer (server/lipsync.py), or None.
        self.lipsync: Any = None
        #: Where the acoustic front end of audio-only utterances runs (server/listen.py).
        self.listen_engine: Engine | None = None

    # ------------------------------------------------------------------ commands
    def busy(self) -> bool:
        return bool(self.queue or self.producing or self.playing or self._timeline)

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
        if self._producer is None or self._producer.done():
            self._producer = asyncio.create_task(self._produce_all(), name=f"produce-{self.id}")
        return u.id

    async def interrupt(self, reason: str) -> bool:
        """Barge-in: cancel the provider, ramp the mouth to Rest, end what was started.

        Returns True when something was playing or waiting.
        """
        self.last_active = now = self.loop.time()
        if self._producer is not None and not self._producer.done():
            self._producer.cancel()  # closes the provider stream (its finally runs aclose)
        self._producer = None
        if self.lipsync is not None:
            self.lipsync.cancel()
        u = self.playing
        waiting = {id(x): x for x in (
            list(self._utts.values())
            + ([self.producing] if self.producing is not None else [])
            + list(self.queue)
        ) if x is not u and not x.ended}
        self._timeline.clear()
        self._utts.clear()
        self.producing = None
        self.queue.clear()
        self.playing = None
        interrupted = bool(waiting)
        if u is not None and not u.ended:
            assert u.t0 is not None
            pos = min(max(0.0, (now - u.t0) * 1000.0), u.audio_end_ms)
            shown = weights_at([Frame(p, dict(w)) for p, w in u.frames], pos)
            ramp = ramp_to_rest(shown, pos, self.config.ramp_ms, self.config.viseme_fps)
            for f in ramp:
                self._broadcast([_viseme_event(u.id, f)])
            end = float(ramp[-1].pts_ms)
            self._end(u, pts_ms=end, reason=reason)
            self.clock_free_at = now + max(0.0, end - pos) / 1000.0
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
        for c in list(self.clients):
            await self._close_client(c, CLOSE_SESSION_ENDED, b"session closed")
        self.clients.clear()
        aclose = getattr(self.provider, "aclose", None)
        if aclose is not None:
            try:
                await aclose()
            except Exception:  # a provider's cleanup must not break shutdown
                log.exception("closing the provider of session %s failed", self.id)

    # ------------------------------------------------------------------ production
    async def _produce_all(self) -> None:
        while self.queue:
            u = self.queue.popleft()
            self.producing = u
            try:
                await self._produce(u)
            finally:
                if self.producing is u:
                    self.producing = None

    def _lex(self) -> Lexicon:
        if self._lexicon is None:
            self._lexicon = espeak_lexicon(self.lang)
        return self._lexicon

    def _begin(self, u: Utterance, may_start: float, sample_rate: int) -> None:
        """The first audio of `u` is here: start its clock and queue `utterance_start`."""
        if u.t0 is not None:
            return
        now = self.loop.time()
        u.t0 = max(now, self.clock_free_at)
        released = max(now, u.t0 - self._lead)
        self.metrics.first_audio.observe(max(0.0, released - may_start))
        self._push(u.t0 - self._lead, event(START, u.id, 0.0, wire.utterance_start(
            u.id, u.text, sample_rate).encode()), u)

    def _push_listened(self, u: Utterance, piece: SpeechChunk | None,
                       frames: list[Frame]) -> None:
        """Audio and the viseme frames that cover it, from a `Listener`, onto the timeline."""
        events = [] if piece is None else _audio_events(u.id, piece, self.config.audio_frame_ms)
        events += [_viseme_event(u.id, f) for f in frames]
        self._push_all(u, events, frames)
        if piece is not None:
            if self.lipsync is not None:
                self.lipsync.on_audio(u, piece.pcm, piece.sample_rate)
            u.audio_end_ms = max(u.audio_end_ms, piece.end_ms)
        self.flush()

    async def _produce(self, u: Utterance) -> None:
        """Run the provider for one utterance, turning chunks into timeline events."""
        stream: AsyncIterator[SpeechChunk] = (
            self.provider.stream(u.text) if u.source is None else u.source.__aiter__())
        vstate = VisemeStreamState()
        listener: Listener | None = None
        may_start = max(u.reason_started, self.clock_free_at - self._lead)
        try:
            async for chunk in stream:
                if is_audio_only(chunk):  # audio (and transcript) only: listen for visemes
                    if listener is None:
                        if self.listen_engine is None:
                            raise AvatarkitError("this server cannot listen to audio")
                        listener = Listener(self.listen_engine, chunk.sample_rate,
                                            self.config.viseme_fps, self.lang,
                                            self.metrics.listen_delay.observe)
                    heard, heard_frames = await listener.step(
                        chunk, getattr(u.source, "arrived", None))
                    if heard is not None or heard_frames:
                        self._begin(u, may_start, listener.sample_rate)
                        self._push_listened(u, heard, heard_frames)
                    continue
                self._begin(u, may_start, chunk.sample_rate)
                if self.lipsync is not None:  # hands the audio over, never waits
                    self.lipsync.on_audio(u, chunk.pcm, chunk.sample_rate)
                if chunk.alignment is not None:
                    # G2P waits on the espeak-ng thread: never on the loop
                    events, frames, vstate = await self.loop.run_in_executor(
                        self._executor, _chunk_events, u.id, chunk, vstate, self.coart,
                        self._lex(), self.config.audio_frame_ms,
                    )
                    self._push_all(u, events, frames)
                    u.audio_end_ms = max(u.audio_end_ms, vstate.audio_end_ms)
                    self.flush()
                    continue
                # Phoneme-timed chunks (a whole sentence from espeak-ng): the first slice is
                # blended here at once (first audio and viseme leave together); the rest in
                # the blend worker process (server/blend.py), or without one here in slices
                # of ~1-2 ms of work with the loop free in between. A worker thread would
                # hold the GIL for up to 5 ms at every socket write of the loop (convoy
                # effect) - measured as 60 ms p99 lateness at 100 sessions.
                pieces = _slices(chunk, SLICE_MS)
                pool = self.blend_pool
                to_worker: tuple[SpeechChunk, list[SpeechChunk]] | None = None
                for i, piece in enumerate(pieces):
                    if i and pool is not None and pool.ready:
                        done = sum(len(x.pcm) for x in pieces[:i])  # bytes blended here
                        rest = SpeechChunk(
                            chunk.pcm[done:], chunk.sample_rate, piece.start_ms,
                            tuple(p for x in pieces[i:] for p in x.phonemes), None, chunk.text)
                        # only the audio stays here while it plays (few GC-tracked objects)
                        to_worker = rest, [SpeechChunk(x.pcm, x.sample_rate, x.start_ms)
                                           for x in pieces[i:]]
                        break
                    if i:  # the first slice leaves at once; the rest shortly before they are due
                        await self._until_needed(u, piece.start_ms)
                    events, frames, vstate = _chunk_events(
                        u.id, piece, vstate, self.coart, None, self.config.audio_frame_ms)
                    self._push_all(u, events, frames)
                    u.audio_end_ms = max(u.audio_end_ms, vstate.audio_end_ms)
                    self.flush()
                if to_worker is not None:
                    assert pool is not None
                    rest, audio = to_worker
                    del chunk, pieces, piece, to_worker
                    blended, vstate = await pool.blend(u.id, rest, vstate, self.coart)
                    del rest
                    await self._push_blended(u, audio, blended)
            if listener is not None:
                heard, heard_frames = await listener.finish()
                if heard is not None or heard_frames:
                    self._begin(u, may_start, listener.sample_rate)
                    self._push_listened(u, heard, heard_frames)
            if u.t0 is None:
                raise ProviderError("the voice returned no audio for this text", "empty_audio")
            if listener is None:  # (a listener's finish gave its last frames above)
                if vstate.aligned:
                    events, frames, vstate = await self.loop.run_in_executor(
                        self._executor, _finish_events, u.id, vstate, self.coart, self._lex())
                else:
                    events, frames, vstate = _finish_events(u.id, vstate, self.coart, None)
                self._push_all(u, events, frames)
            if self.lipsync is not None:  # its last mouth patches first, if they are in time
                await self.lipsync.drain(u, u.t0 + u.audio_end_ms / 1000.0 - self._lead)
            self._push_end(u, interrupted=False, reason="completed")
        except ProviderError as exc:
            self.metrics.provider_errors[exc.code] += 1
            code = exc.code if exc.code.startswith("provider_") else f"provider_{exc.code}"
            self._push_failure(u, code, self._redact(str(exc)))
        except AvatarkitError as exc:
            self._push_failure(u, "provider_error", self._redact(str(exc)))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("session %s: utterance %d failed", self.id, u.id)
            self.metrics.provider_errors["internal"] += 1
            self._push_failure(u, "internal", f"internal error: {type(exc).__name__}")
        finally:
            if listener is not None:
                listener.close()  # the front end's stream of an utterance cut short
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception:
                    log.debug("provider stream close failed", exc_info=True)
        if self.lipsync is not None and not u.end_pushed:  # a completed one was drained
            self.lipsync.on_end(u)
        self.flush()

    async def _until_needed(self, u: Utterance, pts_ms: float) -> None:
        """Wait until audio at `pts_ms` of `u` is due to be sent within PRODUCE_AHEAD_MS.

        A sentence from espeak-ng arrives whole, seconds of audio at once; blending it all at
        once would keep hundreds of events per session alive in the timeline, and the cyclic
        garbage collector's full passes over them stalled the loop for 50-200 ms at 100
        sessions. Events are still sent at the same due time."""
        assert u.t0 is not None
        wait = u.t0 - self._lead + (pts_ms - PRODUCE_AHEAD_MS) / 1000.0 - self.loop.time()
        await asyncio.sleep(max(0.0, wait))

    async def _push_blended(self, u: Utterance, pieces: list[SpeechChunk],
                            blended: list[BlendedFrame]) -> None:
        """Frames from the blend worker onto the timeline with their audio, a slice at a time
        shortly before it is due (few live events per session: see `_until_needed`)."""
        k = 0
        for j, piece in enumerate(pieces):
            await self._until_needed(u, piece.start_ms)
            end = piece.end_ms if j + 1 < len(pieces) else float("inf")
            events = _audio_events(u.id, piece, self.config.audio_frame_ms)
            frames: list[tuple[float, tuple[tuple[str, float], ...]]] = []
            while k < len(blended) and blended[k][0] < end:
                pts, weights, data = blended[k]
                events.append(event(VISEME, u.id, pts, data))
                frames.append((pts, weights))
                k += 1
            self._push_all(u, events, frames)
            u.audio_end_ms = max(u.audio_end_ms, piece.end_ms)
            self.flush()

    def _redact(self, message: str) -> str:
        for secret in (self.config.elevenlabs_api_key, self.config.openai_api_key,
                       self.config.token):
            if secret:
                message = message.replace(secret, "***")
        return message

    def _push_all(self, u: Utterance, events: list[Event],
                  frames: list[Frame] | list[tuple[float, tuple[tuple[str, float], ...]]],
                  ) -> None:
        assert u.t0 is not None
        base = u.t0 - self._lead
        for ev in events:
            self._push(base + ev[PTS] / 1000.0, ev, u)
        u.frames.extend(f if isinstance(f, tuple) else (f.pts_ms, tuple(f.weights.items()))
                        for f in frames)

    def push_patch(self, u: Utterance, pts_ms: float, data: bytes) -> bool:
        """Variant C hook: a binary mouth-patch frame of `u`, paced like a viseme frame (sent
        at its pts minus send-ahead); False when `u` is over."""
        if u.ended or u.t0 is None:
            return False
        self._push(u.t0 - self._lead + pts_ms / 1000.0, event(PATCH, u.id, pts_ms, data), u)
        return True

    def _push(self, due: float, ev: Event, u: Utterance) -> None:
        was_empty = not self._timeline
        self._utts[u.id] = u
        heapq.heappush(self._timeline, (due, next(self._seq), ev, u.id))
        if was_empty:
            self._on_pending(self)

    def _push_end(self, u: Utterance, *, interrupted: bool, reason: str) -> None:
        assert u.t0 is not None
        end = wire.utterance_end(u.id, interrupted=interrupted, pts_ms=u.audio_end_ms,
                                 reason=reason).encode()
        self._push(u.t0 + u.audio_end_ms / 1000.0 - self._lead,
                   event(END, u.id, u.audio_end_ms, end), u)
        u.end_pushed = True
        self.clock_free_at = u.t0 + u.audio_end_ms / 1000.0

    def _push_failure(self, u: Utterance, code: str, message: str) -> None:
        """After the audio that did arrive: `error`, the mouth back to Rest (when it moved),
        then `utterance_end {reason: error}` at the end of that ramp."""
        err = wire.error(code, message, utterance_id=u.id).encode()
        t0 = u.t0 if u.t0 is not None else max(self.loop.time(), self.clock_free_at)
        due = t0 + u.audio_end_ms / 1000.0 - self._lead
        self._push(due, event(CONTROL, u.id, u.audio_end_ms, err), u)
        end_ms = u.audio_end_ms
        if u.frames:  # cut off mid-word: ramp from the last shape, as a barge-in does
            ramp = ramp_to_rest(dict(u.frames[-1][1]), u.audio_end_ms, self.config.ramp_ms,
                                self.config.viseme_fps)
            self._push_all(u, [_viseme_event(u.id, f) for f in ramp], ramp)
            end_ms = float(ramp[-1].pts_ms)
        end = wire.utterance_end(u.id, interrupted=True, pts_ms=end_ms,
                                 reason="error").encode()
        self._push(t0 + end_ms / 1000.0 - self._lead, event(END, u.id, end_ms, end), u)
        if u.t0 is not None:
            self.clock_free_at = u.t0 + end_ms / 1000.0

    def _end(self, u: Utterance, *, pts_ms: float, reason: str) -> None:
        """Send an interrupted `utterance_end` now (barge-in) and count the outcome."""
        if u.ended:
            return
        data = wire.utterance_end(u.id, interrupted=True, pts_ms=pts_ms, reason=reason)
        self._count_end(u, reason)
        self._broadcast([event(END, u.id, pts_ms, data.encode())])

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
        return bool(self._timeline)

    def timeline_pts(self) -> list[float]:
        """pts_ms of every event waiting on the timeline (tests)."""
        return [e[2][PTS] for e in self._timeline]

    def flush(self) -> None:
        """Send every event due by the next tick; called by the pacer and the producer.
        Synchronous (one socket write per client), so it never runs twice at once."""
        if not self._timeline:
            return
        now = self.loop.time()
        horizon = now + self._tick
        timeline = self._timeline
        utts = self._utts
        batch: list[Event] = []
        if timeline and timeline[0][0] <= horizon:
            self.metrics.send_lateness.observe(max(0.0, now - timeline[0][0]))
        while timeline and timeline[0][0] <= horizon:
            _, _, ev, uid = heapq.heappop(timeline)
            u = utts.get(uid)
            if u is None or u.ended:
                continue
            kind = ev[KIND]
            if kind == START:
                self.playing = u
            elif kind == END:
                if self.playing is u:
                    self.playing = None
                self._count_end(u, "completed" if u.end_pushed else "error")
                del utts[uid]
            elif kind != CONTROL:
                u.sent.append(ev)
            batch.append(ev)
        if batch:
            self._broadcast(batch)
        u = self.playing
        if u is not None and len(u.sent) > 64:
            self._trim(u)

    def _trim(self, u: Utterance) -> None:
        """Forget sent events well behind playback (a joining client never needs them)."""
        assert u.t0 is not None
        keep_from = (self.loop.time() - u.t0) * 1000.0 - 2 * self.config.audio_frame_ms
        sent = u.sent
        while sent and sent[0][PTS] < keep_from:
            sent.popleft()
        frames = u.frames
        while len(frames) > 1 and frames[1][0] < keep_from:
            frames.popleft()

    def _broadcast(self, events: list[Event]) -> None:
        """Write events to every client, one socket write per client; a client with a
        backlog skips viseme frames, and one whose backlog overflows is closed (4008)."""
        shared: bytes | None = None
        for c in self.clients:
            if c.closed:
                continue
            backlog = c.backlog()
            if backlog > self._drop_at:
                if backlog > self._close_at:
                    self.metrics.slow_clients_closed += 1
                    self._close_slow(c)
                    continue
                kept = [event_frame(ev, c.audio_json) for ev in events
                        if ev[KIND] != VISEME and ev[KIND] != PATCH]
                self.metrics.viseme_frames_dropped += len(events) - len(kept)
                self._send(c, b"".join(kept))
            elif c.audio_json:
                self._send(c, b"".join([event_frame(ev, True) for ev in events]))
            else:
                if shared is None:
                    shared = b"".join([ev[FRAME] for ev in events])
                self._send(c, shared)

    def _send(self, c: Client, data: bytes) -> None:
        """Whole frames straight to the transport (never suspends; flow control is ours)."""
        t = c.transport
        if not data:
            return
        if t is None or t.is_closing():
            c.closed = True
            return
        t.write(data)

    def _close_slow(self, c: Client) -> None:
        c.closed = True
        msg = wire.error(
            "slow_client",
            f"this client fell more than {self.config.max_client_backlog_bytes} bytes behind "
            "the audio; closing it (reconnect to resume)",
        )
        task = asyncio.create_task(self._close_client(c, CLOSE_SLOW_CLIENT, b"slow_client",
                                                      msg.encode()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _close_client(self, c: Client, code: int, message: bytes,
                            last: bytes | None = None) -> None:
        c.closed = True
        try:
            if last is not None:
                await c.ws.send_frame(last, _TEXT)
            await asyncio.wait_for(c.ws.close(code=code, message=message), 2.0)
        except (TimeoutError, ConnectionError, RuntimeError):
            if c.transport is not None:
                c.transport.abort()

    # ------------------------------------------------------------------ clients
    def attach(self, c: Client) -> None:
        """Add a client: hello, then (mid-utterance) the resume point and what is buffered."""
        self.last_active = self.loop.time()
        cfg = self.config
        self._send(c, event(CONTROL, 0, 0.0, wire.hello(
            session_id=self.id, avatar_id=self.avatar_id, provider=self.provider_name,
            sample_rate=self.sample_rate, viseme_fps=cfg.viseme_fps,
            audio="json" if c.audio_json else "binary", send_ahead_ms=cfg.send_ahead_ms,
            **(self.lipsync.hello_fields() if self.lipsync is not None else {}),
        ).encode())[FRAME])
        u = self.playing
        if u is not None and not u.ended and u.t0 is not None:
            pos = max(0.0, (self.loop.time() - u.t0) * 1000.0)
            resume = 0.0
            for ev in u.sent:
                pcm = ev[PCM]
                if ev[KIND] == AUDIO and pcm is not None:
                    resume = ev[PTS]
                    if resume + len(pcm) / 2 / ev[RATE] * 1000.0 > pos:
                        break
            start = event(CONTROL, u.id, resume, wire.utterance_start(
                u.id, u.text, self.sample_rate, pts_ms=resume, resumed=True).encode())
            self._send(c, b"".join([start[FRAME]] + [
                event_frame(ev, c.audio_json) for ev in u.sent if ev[PTS] >= resume]))
        self.clients.append(c)

    def detach(self, c: Client) -> None:
        c.closed = True
        if c in self.clients:
            self.clients.remove(c)
        self.last_active = self.loop.time()


# ---------------------------------------------------------------------- worker-thread work


def _chunk_events(
    uid: int, chunk: SpeechChunk, state: VisemeStreamState, opts: CoarticulationOptions,
    lexicon: Lexicon | None, frame_ms: float,
) -> tuple[list[Event], list[Frame], VisemeStreamState]:
    """One provider chunk -> serialised audio frames and final viseme frames (worker thread)."""
    frames, state = stream_step(state, chunk, opts, lexicon)
    events = _audio_events(uid, chunk, frame_ms)
    events += [_viseme_event(uid, f) for f in frames]
    return events, frames, state


def _finish_events(
    uid: int, state: VisemeStreamState, opts: CoarticulationOptions, lexicon: Lexicon | None,
) -> tuple[list[Event], list[Frame], VisemeStreamState]:
    """Close the utterance's viseme stream: its last frames (worker thread)."""
    frames, state = stream_finish(state, opts, lexicon)
    return [_viseme_event(uid, f) for f in frames], frames, state


#: Audio per slice when a long phoneme-timed chunk is blended on the loop, ms.
SLICE_MS = 400.0
#: A slice after the first is blended when its audio is due to be sent within this, ms.
PRODUCE_AHEAD_MS = 1000.0


def _slices(chunk: SpeechChunk, slice_ms: float) -> list[SpeechChunk]:
    """Cut a chunk into consecutive pieces of about `slice_ms` of audio, each with the
    phonemes that start in it (their order is kept, so the blend is unchanged)."""
    rate = chunk.sample_rate
    step = max(2, int(rate * slice_ms / 1000.0) * 2)
    if len(chunk.pcm) <= step * 1.5:
        return [chunk]
    pieces = []
    phonemes = list(chunk.phonemes)
    k = 0
    for off in range(0, len(chunk.pcm), step):
        pcm = chunk.pcm[off:off + step]
        if len(chunk.pcm) - (off + step) < step // 2:  # fold a short tail into this piece
            pcm = chunk.pcm[off:]
        start = chunk.start_ms + off / 2 / rate * 1000.0
        end = start + len(pcm) / 2 / rate * 1000.0
        last = off + len(pcm) >= len(chunk.pcm)
        group = []
        while k < len(phonemes) and (last or phonemes[k].start_ms < end):
            group.append(phonemes[k])
            k += 1
        pieces.append(SpeechChunk(pcm, rate, start, tuple(group), None, chunk.text))
        if last:
            break
    return pieces


def _viseme_event(uid: int, f: Frame) -> Event:
    return event(VISEME, uid, f.pts_ms, wire.encode_viseme(uid, f.pts_ms, f.weights).encode())


def _audio_events(uid: int, chunk: SpeechChunk, frame_ms: float) -> list[Event]:
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
