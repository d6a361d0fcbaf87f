"""Viseme blending for phoneme-timed speech in a worker process, off the event loop's GIL.

The embedded voice delivers a sentence (seconds of audio, every phoneme timed) at once.
Blending it (coarticulation + JSON of every frame) was most of the event loop's time under
load: ~60% at 200 sessions, in slices that still left the pacer late. A thread would hold
the GIL at the loop's every socket write (convoy), so the sentence is blended in one process
shared by all sessions of the server (and by every server in this Python process).

The result is compact: per frame its pts, its weights as a tuple and its viseme message as
bytes - tuples of atoms, which the cyclic garbage collector stops tracking.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ProcessPoolExecutor

from avatarkit.tts.provider import SpeechChunk
from avatarkit.visemes.coarticulation import CoarticulationOptions
from avatarkit.visemes.phonemes import TimedPhoneme
from avatarkit.visemes.stream import VisemeStreamState, stream_step
from server import wire
from server.children import helper_context

log = logging.getLogger("avatarkit.server")

#: One blended frame: pts_ms, weights as (class, weight) pairs, the viseme message (UTF-8).
BlendedFrame = tuple[float, tuple[tuple[str, float], ...], bytes]


def blend(
    uid: int, sample_rate: int, start_ms: float, n_bytes: int,
    phonemes: tuple[TimedPhoneme, ...], state: VisemeStreamState,
    options: CoarticulationOptions,
) -> tuple[list[BlendedFrame], VisemeStreamState]:
    """Blend `n_bytes` of PCM16 audio from `start_ms` timed by `phonemes`; runs in the
    worker. The PCM itself is not needed, only its length, so it does not cross the pipe."""
    chunk = SpeechChunk(bytes(n_bytes), sample_rate, start_ms, phonemes)
    frames, state = stream_step(state, chunk, options)
    return [
        (f.pts_ms, tuple(f.weights.items()),
         wire.encode_viseme(uid, f.pts_ms, f.weights).encode())
        for f in frames
    ], state


def _warm() -> bool:
    return True


class BlendPool:
    """The worker process; `ready` once it has answered (until then callers blend on the
    loop, so startup never waits for it)."""

    def __init__(self) -> None:
        self._pool = ProcessPoolExecutor(1, mp_context=helper_context())
        self.ready = False
        self.broken = False
        #: Blend jobs run by the worker (tests check the worker path is taken).
        self.jobs = 0

    async def warm(self) -> None:
        """Start the worker (imports) and mark it ready once it answers."""
        if self.ready or self.broken:
            return
        try:
            await asyncio.wrap_future(self._pool.submit(_warm))
            self.ready = True
        except Exception:
            self.broken = True
            log.exception("the viseme blend worker did not start; blending on the event loop")

    async def blend(
        self, uid: int, chunk: SpeechChunk, state: VisemeStreamState,
        options: CoarticulationOptions,
    ) -> tuple[list[BlendedFrame], VisemeStreamState]:
        """`chunk` blended in the worker (on the loop if the worker broke)."""
        self.jobs += 1
        try:
            return await asyncio.wrap_future(self._pool.submit(
                blend, uid, chunk.sample_rate, chunk.start_ms, len(chunk.pcm), chunk.phonemes,
                state, options))
        except asyncio.CancelledError:
            raise
        except Exception:
            self.ready = False
            self.broken = True
            log.exception("the viseme blend worker failed; blending on the event loop")
            return blend(uid, chunk.sample_rate, chunk.start_ms, len(chunk.pcm),
                         chunk.phonemes, state, options)


    def close(self, wait: bool = True) -> None:
        """Stop the worker process (`wait`: until it has exited)."""
        self.ready = False
        self._pool.shutdown(wait=wait, cancel_futures=True)


_shared: BlendPool | None = None
_shared_lock = threading.Lock()


def shared_pool() -> BlendPool:
    """The process-wide blend worker (started on first use, shut down at exit)."""
    global _shared
    with _shared_lock:
        if _shared is None or _shared.broken:
            _shared = BlendPool()
        return _shared


def shutdown_shared(wait: bool = True) -> None:
    """Stop the process-wide blend worker (server exit; the next shared_pool() starts anew)."""
    global _shared
    with _shared_lock:
        pool, _shared = _shared, None
    if pool is not None:
        pool.close(wait)
