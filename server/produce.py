"""Production: one utterance's speech -> audio and viseme events on the session's timeline.

A provider (or an utterance's own source) yields `SpeechChunk`s of three kinds, each with
its own way to visemes and the same events out (server/events.py):

- **aligned** (ElevenLabs: characters with times): G2P + coarticulation in the server's
  thread pool (G2P waits on the espeak-ng thread: never on the loop);
- **phoneme-timed** (the embedded voice: a whole sentence at once): the first slice is
  blended here at once (first audio and viseme leave together); the rest in the blend worker
  process (server/blend.py), or without one here in slices of ~1-2 ms of work with the loop
  free in between. A worker thread would hold the GIL for up to 5 ms at every socket write
  of the loop (convoy effect) - measured as 60 ms p99 lateness at 100 sessions;
- **audio only** (pushed audio, OpenAI Realtime: server/listen.py): a `Listener` hears the
  audio and releases it together with the frames that cover it.

What becomes of the events - when they are due, who receives them - is not decided here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

from avatarkit.errors import AvatarkitError
from avatarkit.tts.provider import ProviderError, SpeechChunk
from avatarkit.visemes.coarticulation import CoarticulationOptions, Frame
from avatarkit.visemes.g2p import Lexicon, espeak_lexicon
from avatarkit.visemes.stream import VisemeStreamState, stream_finish, stream_step
from server.blend import BlendedFrame
from server.events import VISEME, Event, Shape, audio_events, event, viseme_events
from server.listen import Listener, is_audio_only
from server.pacing import PRODUCE_AHEAD_MS, Utterance, produce_wait

if TYPE_CHECKING:
    from server.session import Session

log = logging.getLogger("avatarkit.server")

#: Audio per slice when a long phoneme-timed chunk is blended on the loop, ms.
SLICE_MS = 400.0
#: A character-aligned chunk with at most this much audio, ms, is blended on the event loop
#: (about 1 ms of work); longer ones go to a viseme thread. A thread hop costs a wake-up, a
#: future and GIL hand-offs: with hundreds of relayed sessions it cost the loop more than
#: the blend, and the threads' turns on the GIL delayed every socket write.
INLINE_CHUNK_MS = 1500.0

#: A chunk whose audio is due to be sent later than this, s, may wait for the pacer's next
#: tick to be blended with other sessions' chunks (server/chunk_batch.py).
BATCH_SLACK_S = 0.1

#: What production hands the session: events with the shapes among them.
Produced = tuple[list[Event], list[Shape]]


@dataclass
class _Run:
    """One utterance being produced."""

    u: Utterance
    #: Loop time from which its first audio counts as served (for the first-audio metric).
    may_start: float
    vstate: VisemeStreamState = field(default_factory=VisemeStreamState)
    listener: Listener | None = None


class Producer:
    """Produces a session's utterances, one at a time."""

    def __init__(self, session: Session) -> None:
        self.s = session
        self.coart = _coarticulation(session.config.viseme_fps)
        self._lexicon: Lexicon | None = None

    def _lex(self) -> Lexicon:
        if self._lexicon is None:
            self._lexicon = espeak_lexicon(self.s.lang)
        return self._lexicon

    async def produce(self, u: Utterance) -> None:
        """Run the provider (or `u.source`) for `u`, turning chunks into timeline events;
        a failure ends the utterance with `error` after the audio that did arrive."""
        s = self.s
        stream: AsyncIterator[SpeechChunk] = (
            s.provider.stream(u.text) if u.source is None else u.source.__aiter__())
        run = _Run(u, max(u.reason_started, s.timeline.free_at - s.timeline.lead))
        try:
            async for chunk in stream:
                if is_audio_only(chunk):  # audio (and transcript) only: listen for visemes
                    await self._listened(run, chunk)
                    continue
                s.begin(u, run.may_start, chunk.sample_rate)
                if s.lipsync is not None:  # hands the audio over, never waits
                    s.lipsync.on_audio(u, chunk.pcm, chunk.sample_rate)
                if chunk.alignment is not None:
                    await self._aligned(run, chunk)
                    continue
                to_worker = await self._phoneme_timed(run, chunk)
                if to_worker is not None:  # the rest of the sentence: in the blend worker
                    # only the audio stays here while it plays (few GC-tracked objects)
                    del chunk
                    rest, audio = to_worker
                    del to_worker
                    assert s.blend_pool is not None
                    blended, run.vstate = await s.blend_pool.blend(u.id, rest, run.vstate,
                                                                   self.coart)
                    del rest
                    await self._push_blended(u, audio, blended)
            await self._finish(run)
        except ProviderError as exc:
            s.metrics.provider_errors[exc.code] += 1
            code = exc.code if exc.code.startswith("provider_") else f"provider_{exc.code}"
            s.push_failure(u, code, self._redact(str(exc)))
        except AvatarkitError as exc:
            s.push_failure(u, "provider_error", self._redact(str(exc)))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("session %s: utterance %d failed", s.id, u.id)
            s.metrics.provider_errors["internal"] += 1
            s.push_failure(u, "internal", f"internal error: {type(exc).__name__}")
        finally:
            if run.listener is not None:
                run.listener.close()  # the front end's stream of an utterance cut short
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception:
                    log.debug("provider stream close failed", exc_info=True)
        if s.lipsync is not None and not u.end_pushed:  # a completed one was drained
            s.lipsync.on_end(u)
        s.flush()

    async def _listened(self, run: _Run, chunk: SpeechChunk) -> None:
        """Audio-only speech: through the utterance's listener (made on its first chunk)."""
        s = self.s
        if run.listener is None:
            if s.listen_engine is None:
                raise AvatarkitError("this server cannot listen to audio")
            run.listener = Listener(s.listen_engine, chunk.sample_rate, s.config.viseme_fps,
                                    s.lang, s.metrics.listen_delay.observe, s.voice_channel)
        heard = await run.listener.step(chunk, getattr(run.u.source, "arrived", None))
        self._heard(run, run.listener, *heard)

    def _heard(self, run: _Run, listener: Listener, audio: SpeechChunk | None,
               frames: list[Frame]) -> None:
        """What the listener released: audio with the frames that cover it, onto the timeline."""
        if audio is None and not frames:
            return
        s, u = self.s, run.u
        s.begin(u, run.may_start, listener.sample_rate)
        events = [] if audio is None else audio_events(u.id, audio, s.config.audio_frame_ms)
        visemes, shapes = viseme_events(u.id, frames)
        s.put(u, (events + visemes, shapes), None if audio is None else audio.end_ms)
        if audio is not None and s.lipsync is not None:
            s.lipsync.on_audio(u, audio.pcm, audio.sample_rate)
        s.flush()

    async def _aligned(self, run: _Run, chunk: SpeechChunk) -> None:
        s = self.s
        # upstream chunks come faster than real time (read ahead: server/limits.py): blend
        # each shortly before it is due, so hundreds of sessions' bursts interleave with the
        # pacer instead of queueing in front of it - with every session's chunks due by the
        # same tick in one vectorised pass (server/chunk_batch.py) when the session has one
        u, now = run.u, s.loop.time()
        args = (u.id, chunk, run.vstate, self.coart, self._lex(), s.config.audio_frame_ms)
        if s.chunk_batch is not None and chunk.duration_ms <= INLINE_CHUNK_MS and \
                s.timeline.due(u, chunk.start_ms) > now + BATCH_SLACK_S:
            # blended with every session's chunks at the pacer's tick (a first chunk, due
            # now, is not: first audio would wait for the tick)
            needed_at = s.timeline.due(u, chunk.start_ms - PRODUCE_AHEAD_MS)
            produced, run.vstate = await s.chunk_batch.blend(*args, needed_at)
        elif chunk.duration_ms <= INLINE_CHUNK_MS:  # needed now (a first chunk): here
            await self._until_needed(run.u, chunk.start_ms)
            produced, run.vstate = chunk_events(*args)
        else:
            await self._until_needed(run.u, chunk.start_ms)
            produced, run.vstate = await s.loop.run_in_executor(s.executor, chunk_events, *args)
        s.put(run.u, produced, run.vstate.audio_end_ms)
        s.flush()

    async def _phoneme_timed(self, run: _Run, chunk: SpeechChunk,
                             ) -> tuple[SpeechChunk, list[SpeechChunk]] | None:
        """Blend `chunk` here, a slice at a time, until the blend worker is ready; what is
        left for the worker then: (the rest with its phonemes, its audio in slices)."""
        s, u = self.s, run.u
        pieces = slices(chunk, SLICE_MS)
        pool = s.blend_pool
        for i, piece in enumerate(pieces):
            if i and pool is not None and pool.ready:
                done = sum(len(x.pcm) for x in pieces[:i])  # bytes blended here
                rest = SpeechChunk(
                    chunk.pcm[done:], chunk.sample_rate, piece.start_ms,
                    tuple(p for x in pieces[i:] for p in x.phonemes), None, chunk.text)
                return rest, [SpeechChunk(x.pcm, x.sample_rate, x.start_ms)
                              for x in pieces[i:]]
            if i:  # the first slice leaves at once; the rest shortly before they are due
                await self._until_needed(u, piece.start_ms)
            produced, run.vstate = chunk_events(
                u.id, piece, run.vstate, self.coart, None, s.config.audio_frame_ms)
            s.put(u, produced, run.vstate.audio_end_ms)
            s.flush()
        return None

    async def _finish(self, run: _Run) -> None:
        """The stream is done: the last frames, then `utterance_end` after the audio."""
        s, u = self.s, run.u
        if run.listener is not None:  # its finish gives its last frames and the audio held
            self._heard(run, run.listener, *await run.listener.finish())
        if u.t0 is None:
            raise ProviderError(getattr(u.source, "empty_message",
                                        "the voice returned no audio for this text"),
                                "empty_audio")
        if run.listener is None:
            if run.vstate.aligned and s.chunk_batch is not None and \
                    s.timeline.due(u, u.audio_end_ms) > s.loop.time() + BATCH_SLACK_S:
                # the last few frames, blended with every session's chunks at the next tick
                # (not later: the next utterance's stream is asked for once this one ends)
                produced, run.vstate = await s.chunk_batch.blend(
                    u.id, None, run.vstate, self.coart, self._lex(), s.config.audio_frame_ms,
                    s.loop.time())
            elif run.vstate.aligned:  # the last few frames: as small as a chunk's blend
                produced, run.vstate = finish_events(u.id, run.vstate, self.coart, self._lex())
            else:
                produced, run.vstate = finish_events(u.id, run.vstate, self.coart, None)
            s.put(u, produced, None)
        if s.lipsync is not None:  # its last mouth patches first, if they are in time
            await s.lipsync.drain(u, s.timeline.due(u, u.audio_end_ms))
        s.push_end(u)

    async def _until_needed(self, u: Utterance, pts_ms: float) -> None:
        """Wait until audio at `pts_ms` of `u` is due to be sent within PRODUCE_AHEAD_MS.

        A sentence from espeak-ng arrives whole, seconds of audio at once; blending it all at
        once would keep hundreds of events per session alive in the timeline, and the cyclic
        garbage collector's full passes over them stalled the loop for 50-200 ms at 100
        sessions. Events are still sent at the same due time."""
        await asyncio.sleep(produce_wait(self.s.timeline, u, pts_ms, self.s.loop.time()))

    async def _push_blended(self, u: Utterance, pieces: list[SpeechChunk],
                            blended: list[BlendedFrame]) -> None:
        """Frames from the blend worker onto the timeline with their audio, a slice at a time
        shortly before it is due (few live events per session: see `_until_needed`)."""
        s = self.s
        k = 0
        for j, piece in enumerate(pieces):
            await self._until_needed(u, piece.start_ms)
            end = piece.end_ms if j + 1 < len(pieces) else float("inf")
            events = audio_events(u.id, piece, s.config.audio_frame_ms)
            shapes: list[Shape] = []
            while k < len(blended) and blended[k][0] < end:
                pts, weights, data = blended[k]
                events.append(event(VISEME, u.id, pts, data))
                shapes.append((pts, weights))
                k += 1
            s.put(u, (events, shapes), piece.end_ms)
            s.flush()

    def _redact(self, message: str) -> str:
        config = self.s.config
        for secret in (config.elevenlabs_api_key, config.openai_api_key, config.token):
            if secret:
                message = message.replace(secret, "***")
        return message


@lru_cache(maxsize=8)
def _coarticulation(fps: float) -> CoarticulationOptions:
    """The blend options at `fps`: one object for every session (chunks blended together
    are grouped by their options, server/chunk_batch.py)."""
    return CoarticulationOptions(fps=fps).checked()


# ---------------------------------------------------------------------- worker-thread work


def chunk_events(
    uid: int, chunk: SpeechChunk, state: VisemeStreamState, opts: CoarticulationOptions,
    lexicon: Lexicon | None, frame_ms: float,
) -> tuple[Produced, VisemeStreamState]:
    """One provider chunk -> serialised audio frames and final viseme frames (worker thread)."""
    frames, state = stream_step(state, chunk, opts, lexicon)
    visemes, shapes = viseme_events(uid, frames)
    return (audio_events(uid, chunk, frame_ms) + visemes, shapes), state


def finish_events(
    uid: int, state: VisemeStreamState, opts: CoarticulationOptions, lexicon: Lexicon | None,
) -> tuple[Produced, VisemeStreamState]:
    """Close the utterance's viseme stream: its last frames (worker thread)."""
    frames, state = stream_finish(state, opts, lexicon)
    return viseme_events(uid, frames), state


def slices(chunk: SpeechChunk, slice_ms: float) -> list[SpeechChunk]:
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
