"""Audio-driven utterances: speech that arrives as audio only, and the listener that gives it
visemes.

Two sources feed a session with audio instead of text: a client or voice pipeline pushing
PCM over the session's WebSocket (`AudioTurn`), and the OpenAI Realtime provider
(server/openai_realtime.py). Both are plain async iterators of `SpeechChunk`s whose chunks
carry audio (and, optionally, transcript text in `SpeechChunk.text`) but neither phonemes nor
alignment. The session hands such chunks to a `Listener`, which runs the acoustic front end
(`avatarkit.listen.AudioVisemeStream`) off the event loop and releases each piece of audio
only together with the viseme frames that cover it - so a client that starts playback on
the first audio frame never waits for the mouth. What comes out are the same events as for
TTS speech; the pacing does not know the difference.

Look-ahead (audio in -> its visemes out) = the recogniser's `lookahead_ms` + one push of
work + up to one pacing tick; `benchmarks/audio_live.py` measures it.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Protocol, TypeVar

import numpy as np

from avatarkit.errors import AvatarkitError
from avatarkit.tts.provider import ProviderError, SpeechChunk
from avatarkit.visemes.coarticulation import Frame
from server.children import helper_context
from server.wire import WireError


class VisemeListener(Protocol):
    """What the server needs of `avatarkit.listen.AudioVisemeStream` (one per utterance)."""

    lookahead_ms: float

    def push(self, pcm: bytes) -> list[Frame]: ...

    def add_text(self, text: str) -> None: ...

    def finish(self) -> list[Frame]: ...


class VoiceChannel:
    """What a session's earlier turns taught the listener about its voice's audio channel
    (`AudioVisemeStream.channel`): each turn starts from it and hands on what it learned."""

    def __init__(self) -> None:
        self.estimate: str | None = None


def _start_from(stream: VisemeListener, channel: str | None) -> None:
    if channel is not None and hasattr(stream, "channel"):  # the shipped front end
        stream.channel = channel  # type: ignore[attr-defined]


def _finish(stream: VisemeListener) -> tuple[list[Frame], str | None]:
    frames = list(stream.finish())
    return frames, getattr(stream, "channel", None)


T = TypeVar("T")

#: Makes the listener of one utterance: (sample rate of its mono PCM16, fps, language).
ListenerFactory = Callable[[int, float, str], VisemeListener]


def default_listener_factory(sample_rate: int, fps: float, lang: str) -> VisemeListener:
    """The shipped acoustic front end (imported on first use: it loads a phone model)."""
    try:
        from avatarkit.listen import AudioVisemeStream
    except ImportError as exc:  # a build without the acoustic front end
        raise AvatarkitError(
            f"audio-driven lip sync is not available in this installation ({exc})") from None
    stream: VisemeListener = AudioVisemeStream(
        sample_rate=sample_rate, channels=1, fps=fps, lang=lang)
    return stream


def is_audio_only(chunk: SpeechChunk) -> bool:
    """A chunk the session must listen to: no phonemes, no alignment (audio and/or text)."""
    return chunk.alignment is None and not chunk.phonemes


class Engine(Protocol):
    """Where listeners run: `ThreadEngine` (the server's executor) or `WorkerEngine`
    (worker processes). Streams are addressed by a key the engine hands out."""

    async def open(self, sample_rate: int, fps: float, lang: str,
                   channel: str | None = None) -> int: ...

    async def push(self, key: int, pcm: bytes, text: str) -> list[Frame]: ...

    async def finish(self, key: int) -> tuple[list[Frame], str | None]:
        """The last frames and the channel estimate the stream learned."""
        ...

    def close(self, key: int) -> None: ...


class ThreadEngine:
    """Listeners in the server's thread pool: simple, but the front end holds the GIL while
    it works (~3-6 ms a push, ~180 ms to build a stream), which the event loop feels."""

    def __init__(self, factory: ListenerFactory, executor: Executor) -> None:
        self._factory = factory
        self._executor = executor
        self._streams: dict[int, VisemeListener] = {}
        self._keys = itertools.count(1)

    async def open(self, sample_rate: int, fps: float, lang: str,
                   channel: str | None = None) -> int:
        loop = asyncio.get_running_loop()
        stream = await loop.run_in_executor(self._executor, self._factory, sample_rate, fps,
                                            lang)
        _start_from(stream, channel)
        key = next(self._keys)
        self._streams[key] = stream
        return key

    async def push(self, key: int, pcm: bytes, text: str) -> list[Frame]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, _push, self._streams[key], pcm, text)

    async def finish(self, key: int) -> tuple[list[Frame], str | None]:
        loop = asyncio.get_running_loop()
        stream = self._streams.pop(key)
        return await loop.run_in_executor(self._executor, _finish, stream)

    def close(self, key: int) -> None:
        self._streams.pop(key, None)


def _push(stream: VisemeListener, pcm: bytes, text: str) -> list[Frame]:
    if text:
        stream.add_text(text)
    return list(stream.push(pcm)) if pcm else []


# worker-process side of WorkerEngine: the streams of this process, by key, and one spare
# stream per (rate, fps, lang) built while the worker is idle - building one takes ~20 ms,
# which a new utterance would otherwise wait for (and keep as delay to its end)
_w_factory: ListenerFactory | None = None
_w_streams: dict[int, VisemeListener] = {}
_w_spares: dict[tuple[int, float, str], VisemeListener] = {}


def _w_init(factory: ListenerFactory) -> None:
    global _w_factory
    _w_factory = factory


def _w_prepare(sample_rate: int, fps: float, lang: str) -> None:
    assert _w_factory is not None
    spec = (sample_rate, fps, lang)
    if spec not in _w_spares:
        _w_spares[spec] = _w_factory(sample_rate, fps, lang)


def _w_open(key: int, sample_rate: int, fps: float, lang: str, channel: str | None) -> None:
    spare = _w_spares.pop((sample_rate, fps, lang), None)
    if spare is None:
        assert _w_factory is not None
        spare = _w_factory(sample_rate, fps, lang)
    _start_from(spare, channel)
    _w_streams[key] = spare


def _w_push(key: int, pcm: bytes, text: str) -> list[tuple[int, tuple[tuple[str, float], ...]]]:
    return [(f.pts_ms, tuple(f.weights.items())) for f in _push(_w_streams[key], pcm, text)]


def _w_finish(key: int) -> tuple[list[tuple[int, tuple[tuple[str, float], ...]]], str | None]:
    frames, channel = _finish(_w_streams.pop(key))
    return [(f.pts_ms, tuple(f.weights.items())) for f in frames], channel


def _w_close(key: int) -> None:
    _w_streams.pop(key, None)


class WorkerEngine:
    """Listeners in `n` worker processes (each utterance's stream stays in one; a new one
    goes to the worker with the fewest open): the front end's work and its model loads
    never hold the event loop's GIL. Workers start on first use (`warm`)."""

    def __init__(self, factory: ListenerFactory, n: int) -> None:
        self._factory = factory
        self._pools = [self._new_pool() for _ in range(n)]
        self._open_count = [0] * n
        self._where: dict[int, int] = {}
        self._spec: dict[int, tuple[int, float, str]] = {}
        self._keys = itertools.count(1)
        self._shut = False

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(1, mp_context=helper_context(),
                                   initializer=_w_init, initargs=(self._factory,))

    async def _call(self, i: int, fn: Callable[..., T], *args: object) -> T:
        """`fn(*args)` in worker `i`; a worker that died is replaced (its streams are lost:
        their utterances end with an error, the next ones start afresh)."""
        pool = self._pools[i]
        try:
            return await asyncio.wrap_future(pool.submit(fn, *args))
        except BrokenProcessPool:
            if self._pools[i] is pool and not self._shut:
                pool.shutdown(wait=False, cancel_futures=True)
                self._pools[i] = self._new_pool()
                for key in [k for k, w in self._where.items() if w == i]:
                    self._where.pop(key, None)
                    self._spec.pop(key, None)
                self._open_count[i] = 0
            raise AvatarkitError("the audio listener's worker process died (out of memory?); "
                                 "this utterance ends, the next one gets a new worker") from None

    def warm(self, sample_rate: int, fps: float, lang: str) -> None:
        """Start the workers and have a stream of this kind ready in each (background)."""
        for i in range(len(self._pools)):
            self._later(i, _w_prepare, sample_rate, fps, lang)

    def _later(self, i: int, fn: Callable[..., None], *args: object) -> None:
        """Background work in worker `i` whose result nobody waits for."""
        if self._shut:
            return
        try:
            self._pools[i].submit(fn, *args)
        except RuntimeError:  # the pool broke or shut down meanwhile: nothing to do
            pass

    async def open(self, sample_rate: int, fps: float, lang: str,
                   channel: str | None = None) -> int:
        i = min(range(len(self._pools)), key=self._open_count.__getitem__)
        key = next(self._keys)
        self._open_count[i] += 1
        self._where[key] = i
        self._spec[key] = (sample_rate, fps, lang)
        try:
            await self._call(i, _w_open, key, sample_rate, fps, lang, channel)
        except BaseException:
            self._forget(key)
            raise
        return key

    def _worker(self, key: int) -> int:
        i = self._where.get(key)
        if i is None:
            raise AvatarkitError("the audio listener's worker process died; this utterance ends")
        return i

    async def push(self, key: int, pcm: bytes, text: str) -> list[Frame]:
        frames = await self._call(self._worker(key), _w_push, key, pcm, text)
        return [Frame(p, dict(w)) for p, w in frames]

    async def finish(self, key: int) -> tuple[list[Frame], str | None]:
        try:
            frames, channel = await self._call(self._worker(key), _w_finish, key)
            return [Frame(p, dict(w)) for p, w in frames], channel
        finally:
            self._forget(key)

    def close(self, key: int) -> None:
        i = self._where.get(key)
        if i is not None:
            self._later(i, _w_close, key)
            self._forget(key)

    def _forget(self, key: int) -> None:
        i = self._where.pop(key, None)
        spec = self._spec.pop(key, None)
        if i is not None:
            self._open_count[i] -= 1
            if spec is not None:  # the next utterance of this kind finds a stream ready
                self._later(i, _w_prepare, *spec)

    def shutdown(self) -> None:
        self._shut = True
        for p in self._pools:
            p.shutdown(wait=False, cancel_futures=True)


class Listener:
    """One utterance's listener: pushes audio through the front end (in its engine) and
    returns (audio piece, frames) that are ready to go out together.

    Audio is held back until viseme frames cover it: a frame at pts p covers audio up to
    p + one frame. `finish` releases the rest; `close` drops the stream of an utterance that
    was cut short. Work runs one push at a time, in order."""

    def __init__(self, engine: Engine, sample_rate: int, fps: float, lang: str,
                 observe: Callable[[float], None] | None = None,
                 channel: VoiceChannel | None = None) -> None:
        self.sample_rate = sample_rate
        self._channel = channel
        #: Called with each release's delay, s: arrival of the newest audio released to now.
        self._observe = observe
        self._arrivals: deque[tuple[float, float]] = deque()  # (audio end ms, loop time)
        self.step_ms = 1000.0 / fps
        self._engine = engine
        self._fps = fps
        self._lang = lang
        self._key: int | None = None
        self._done = False
        self._held = bytearray()  # PCM received but not yet released
        self._released_ms = 0.0  # audio released so far (utterance clock)
        self._covered_ms = 0.0  # audio the frames produced so far cover

    async def _open(self) -> int:
        if self._key is None:
            estimate = self._channel.estimate if self._channel is not None else None
            self._key = await self._engine.open(self.sample_rate, self._fps, self._lang,
                                                estimate)
        return self._key

    async def step(self, chunk: SpeechChunk, arrived: float | None = None,
                   ) -> tuple[SpeechChunk | None, list[Frame]]:
        """Feed one chunk (whose newest audio reached the server at loop time `arrived`,
        default now); the audio now covered by frames (None: nothing yet) and the frames."""
        if chunk.sample_rate != self.sample_rate and chunk.pcm:
            raise AvatarkitError(f"the audio changed sample rate mid-utterance "
                                 f"({self.sample_rate} -> {chunk.sample_rate} Hz)")
        loop = asyncio.get_running_loop()
        if chunk.pcm:
            self._arrivals.append((self._released_ms + self.held_ms + chunk.duration_ms,
                                   loop.time() if arrived is None else arrived))
        key = await self._open()
        self._held += chunk.pcm
        frames = await self._engine.push(key, chunk.pcm, chunk.text)
        if frames:
            self._covered_ms = max(self._covered_ms, frames[-1].pts_ms + self.step_ms)
        piece = self._release(self._covered_ms)
        if piece is not None and self._observe is not None:
            arrivals = self._arrivals  # the newest sample released came in which chunk?
            while arrivals and arrivals[0][0] < piece.end_ms - 1e-6:
                arrivals.popleft()
            if arrivals:
                self._observe(loop.time() - arrivals[0][1])
                if arrivals[0][0] <= piece.end_ms + 1e-6:  # all of that chunk is out
                    arrivals.popleft()
        return piece, frames

    async def finish(self) -> tuple[SpeechChunk | None, list[Frame]]:
        """The last frames and all audio still held."""
        key = await self._open()
        self._done = True
        frames, learned = await self._engine.finish(key)
        if self._channel is not None and learned is not None:
            self._channel.estimate = learned
        return self._release(float("inf")), frames

    def close(self) -> None:
        if self._key is not None and not self._done:
            self._done = True
            self._engine.close(self._key)

    @property
    def held_ms(self) -> float:
        """Audio received but waiting for its visemes, ms."""
        return len(self._held) / 2 / self.sample_rate * 1000.0

    def _release(self, until_ms: float) -> SpeechChunk | None:
        rate = self.sample_rate
        n = len(self._held) // 2
        if until_ms != float("inf"):
            n = min(n, max(0, int((until_ms - self._released_ms) * rate / 1000.0)))
        if n <= 0:
            return None
        pcm = bytes(self._held[:2 * n])
        del self._held[:2 * n]
        piece = SpeechChunk(pcm, rate, self._released_ms)
        self._released_ms += n / rate * 1000.0
        return piece


# ---------------------------------------------------------------------- pushed audio


def to_mono_pcm16(data: bytes, channels: int) -> bytes:
    """Interleaved PCM16LE -> mono PCM16LE (channel mean); raises WireError on a torn frame."""
    if len(data) % (2 * channels):
        raise WireError("bad_audio", f"{len(data)} bytes is not a whole number of "
                        f"{channels}-channel PCM16 samples ({2 * channels} bytes each)")
    if channels == 1:
        return bytes(data)
    x = np.frombuffer(data, dtype="<i2").reshape(-1, channels).astype(np.int32)
    return (x.sum(axis=1) // channels).astype("<i2").tobytes()


#: Sample rates a pushed turn may declare (telephone to studio).
MIN_RATE, MAX_RATE = 8000, 48000


class AudioTurn:
    """Audio a client pushes for one utterance, as the session's chunk source.

    `feed` and `add_text` never wait (the socket handler calls them); the session's producer
    iterates the turn. Pieces that queued up while the listener was busy are coalesced into
    one chunk, so a burst (a pipeline sending faster than real time) costs few pushes.
    After `close` (barge-in, or the producer stopped) further audio is dropped silently:
    a pipeline's frames already in flight are not errors."""

    #: The error of a turn that ended without audio (`provider_empty_audio`).
    empty_message = ("the turn ended with no audio: push PCM (binary frames or audio_append) "
                     "between audio_start and audio_end")

    def __init__(self, sample_rate: int, channels: int, *, max_ms: float,
                 text: str = "", stall_s: float | None = None) -> None:
        if not isinstance(sample_rate, int) or not MIN_RATE <= sample_rate <= MAX_RATE:
            raise WireError("bad_message", f"'sample_rate' must be an integer from {MIN_RATE} "
                            f"to {MAX_RATE} Hz, got {sample_rate!r}")
        if type(channels) is not int or channels not in (1, 2):  # 2.0 passed `in (1, 2)`
            raise WireError("bad_message", f"'channels' must be 1 or 2, got {channels!r}")
        self.sample_rate = sample_rate
        self.channels = channels
        self.max_ms = max_ms
        #: A source that goes silent this long fails with `timeout` (a provider that
        #: stalled); None: wait as long as it takes (a client pushing its own audio).
        self.stall_s = stall_s
        self.received_ms = 0.0
        self.ended = False
        self.closed = False
        #: Loop time the newest audio of the last chunk yielded arrived (pieces that queued
        #: while the listener was busy come out as one chunk, later than they came in).
        self.arrived: float | None = None
        self._error: BaseException | None = None
        self._last_feed = 0.0
        self._pieces: list[tuple[bytes, str]] = []
        self._wake = asyncio.Event()
        if text:
            self._pieces.append((b"", text))
            self._wake.set()

    def feed(self, data: bytes) -> None:
        """Interleaved PCM16LE at the turn's rate; raises WireError for a malformed frame."""
        if self.closed:
            return
        if self.ended:
            raise WireError("no_audio_turn", "this audio turn has ended (audio_end); send "
                            "audio_start for a new one")
        pcm = to_mono_pcm16(data, self.channels)
        if not pcm:
            return
        ms = len(pcm) / 2 / self.sample_rate * 1000.0
        if self.received_ms + ms > self.max_ms:
            raise WireError("audio_too_long", f"an audio turn is limited to "
                            f"{self.max_ms / 1000:.0f} s; end it (audio_end) and start another")
        self.received_ms += ms
        self._pieces.append((pcm, ""))
        self._last_feed = asyncio.get_running_loop().time()
        self._wake.set()

    def add_text(self, text: str) -> None:
        """Transcript of this turn's speech (whole or a delta); sharpens the shapes."""
        if self.closed or not text:
            return
        self._pieces.append((b"", text))
        self._wake.set()

    def end(self) -> None:
        """No more audio: the listener finishes and the utterance ends after its audio."""
        self.ended = True
        self._wake.set()

    def fail(self, error: BaseException) -> None:
        """The source broke (a provider error): the producer raises it after what came."""
        self._error = error
        self.end()

    def close(self) -> None:
        self.closed = True
        self._pieces.clear()
        self._wake.set()

    async def __aiter__(self) -> AsyncIterator[SpeechChunk]:
        start = 0.0
        try:
            while True:
                try:
                    await asyncio.wait_for(self._wake.wait(), self.stall_s)
                except TimeoutError:
                    raise ProviderError(f"the voice sent nothing for {self.stall_s:g} s "
                                        "(--provider-timeout)", "timeout") from None
                self._wake.clear()
                if self.closed:
                    return
                pieces, self._pieces = self._pieces, []
                pcm = b"".join(p for p, _ in pieces)
                text = "".join(t for _, t in pieces)
                if pcm or text:
                    self.arrived = self._last_feed if pcm else None
                    chunk = SpeechChunk(pcm, self.sample_rate, start, text=text)
                    start = chunk.end_ms
                    yield chunk
                if self.ended and not self._pieces:
                    if self._error is not None:
                        raise self._error
                    return
        finally:
            self.close()
