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
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from typing import Any, Protocol

import numpy as np

from avatarkit.errors import AvatarkitError
from avatarkit.tts.provider import SpeechChunk
from avatarkit.visemes.coarticulation import Frame
from server.wire import WireError


class VisemeListener(Protocol):
    """What the server needs of `avatarkit.listen.AudioVisemeStream` (one per utterance)."""

    lookahead_ms: float

    def push(self, pcm: bytes) -> list[Frame]: ...

    def add_text(self, text: str) -> None: ...

    def finish(self) -> list[Frame]: ...


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


class Listener:
    """One utterance's listener: pushes audio through the recogniser in an executor and
    returns (audio piece, frames) that are ready to go out together.

    Audio is held back until viseme frames cover it: a frame at pts p covers audio up to
    p + one frame. `finish` releases the rest. Work runs one push at a time, in order."""

    def __init__(self, factory: ListenerFactory, sample_rate: int, fps: float, lang: str,
                 executor: Executor) -> None:
        self.sample_rate = sample_rate
        self.step_ms = 1000.0 / fps
        self._factory = factory
        self._fps = fps
        self._lang = lang
        self._executor = executor
        self._stream: VisemeListener | None = None
        self._held = bytearray()  # PCM received but not yet released
        self._released_ms = 0.0  # audio released so far (utterance clock)
        self._covered_ms = 0.0  # audio the frames produced so far cover

    async def _stream_(self) -> VisemeListener:
        if self._stream is None:
            loop = asyncio.get_running_loop()
            # the first one loads the phone model: never on the event loop
            self._stream = await loop.run_in_executor(
                self._executor, self._factory, self.sample_rate, self._fps, self._lang)
        return self._stream

    async def step(self, chunk: SpeechChunk) -> tuple[SpeechChunk | None, list[Frame]]:
        """Feed one chunk; the audio now covered by frames (None: nothing yet) and the frames."""
        if chunk.sample_rate != self.sample_rate and chunk.pcm:
            raise AvatarkitError(f"the audio changed sample rate mid-utterance "
                                 f"({self.sample_rate} -> {chunk.sample_rate} Hz)")
        stream = await self._stream_()
        if chunk.text:
            stream.add_text(chunk.text)
        if not chunk.pcm:
            return None, []
        self._held += chunk.pcm
        loop = asyncio.get_running_loop()
        frames = await loop.run_in_executor(self._executor, stream.push, chunk.pcm)
        if frames:
            self._covered_ms = max(self._covered_ms, frames[-1].pts_ms + self.step_ms)
        return self._release(self._covered_ms), list(frames)

    async def finish(self) -> tuple[SpeechChunk | None, list[Frame]]:
        """The last frames and all audio still held."""
        stream = await self._stream_()
        loop = asyncio.get_running_loop()
        frames = await loop.run_in_executor(self._executor, stream.finish)
        return self._release(float("inf")), list(frames)

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

    def __init__(self, sample_rate: int, channels: int, *, max_ms: float,
                 text: str = "") -> None:
        if not isinstance(sample_rate, int) or not MIN_RATE <= sample_rate <= MAX_RATE:
            raise WireError("bad_message", f"'sample_rate' must be an integer from {MIN_RATE} "
                            f"to {MAX_RATE} Hz, got {sample_rate!r}")
        if channels not in (1, 2):
            raise WireError("bad_message", f"'channels' must be 1 or 2, got {channels!r}")
        self.sample_rate = sample_rate
        self.channels = channels
        self.max_ms = max_ms
        self.received_ms = 0.0
        self.ended = False
        self.closed = False
        self._error: BaseException | None = None
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
                await self._wake.wait()
                self._wake.clear()
                if self.closed:
                    return
                pieces, self._pieces = self._pieces, []
                pcm = b"".join(p for p, _ in pieces)
                text = "".join(t for _, t in pieces)
                if pcm or text:
                    chunk = SpeechChunk(pcm, self.sample_rate, start, text=text)
                    start = chunk.end_ms
                    yield chunk
                if self.ended and not self._pieces:
                    if self._error is not None:
                        raise self._error
                    return
        finally:
            self.close()


def stream_of(source: Any) -> AsyncIterator[SpeechChunk]:
    """An utterance's chunk source as an async iterator (AudioTurn or any async iterable)."""
    return source.__aiter__()
