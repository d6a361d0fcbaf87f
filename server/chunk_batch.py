"""Character-aligned chunks of every session, blended together once per pacer tick.

A relayed ElevenLabs stream brings a ~0.6 s chunk every ~0.6 s per session; blended one by
one, each chunk cost ~1 ms of the loop, most of it numpy's per-call overhead, which made
the blend half of a relaying server's CPU. A chunk is needed only shortly before it plays
(PRODUCE_AHEAD_MS, server/pacing.py), so the producer hands it here with the loop time it
is needed by and the pacer blends every chunk needed by its next tick in one vectorised
pass (avatarkit/visemes/coarticulation_batch.py): the same frames, a fraction of the work.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from dataclasses import dataclass

from avatarkit.tts.provider import SpeechChunk
from avatarkit.visemes.coarticulation import CoarticulationOptions
from avatarkit.visemes.g2p import Lexicon
from avatarkit.visemes.stream import VisemeStreamState, stream_steps
from server.events import audio_events, viseme_events
from server.produce import Produced


@dataclass(eq=False)
class _Job:
    uid: int
    chunk: SpeechChunk | None  # None: the utterance's last frames (`finish_events`)
    state: VisemeStreamState
    opts: CoarticulationOptions
    lexicon: Lexicon
    frame_ms: float
    done: asyncio.Future[tuple[Produced, VisemeStreamState]]


class ChunkBatch:
    """Chunks waiting for their tick, by the loop time each is needed."""

    def __init__(self) -> None:
        self._waiting: list[tuple[float, int, _Job]] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._waiting)

    async def blend(
        self, uid: int, chunk: SpeechChunk | None, state: VisemeStreamState,
        opts: CoarticulationOptions, lexicon: Lexicon, frame_ms: float, needed_at: float,
    ) -> tuple[Produced, VisemeStreamState]:
        """`chunk_events` of the chunk (server/produce.py) - with no chunk, `finish_events`
        of the utterance - made at the last tick before loop time `needed_at`."""
        done: asyncio.Future[tuple[Produced, VisemeStreamState]] = (
            asyncio.get_running_loop().create_future())
        job = _Job(uid, chunk, state, opts, lexicon, frame_ms, done)
        heapq.heappush(self._waiting, (needed_at, next(self._seq), job))
        return await done

    def run(self, horizon: float, limit: int | None = None) -> int:
        """Blend the chunks needed by loop time `horizon` (the pacer's next tick), at most
        `limit` of them (the earliest needed), in one pass per set of blend options; how
        many were taken (fewer than `limit`: none is left that is needed by `horizon`)."""
        jobs: list[_Job] = []
        waiting = self._waiting
        taken = 0
        while waiting and waiting[0][0] <= horizon and (limit is None or taken < limit):
            job = heapq.heappop(waiting)[2]
            taken += 1
            if not job.done.done():  # a producer cancelled meanwhile (barge-in, close)
                jobs.append(job)
        groups: list[list[_Job]] = []  # by equal options (each session has its own copy)
        for job in jobs:
            for group in groups:
                if group[0].opts is job.opts or group[0].opts == job.opts:
                    group.append(job)
                    break
            else:
                groups.append([job])
        for group in groups:
            _blend_group(group)
        return taken


def _blend_group(jobs: list[_Job]) -> None:
    """One vectorised blend for `jobs` (same options); each job's events to its future."""
    try:
        results = stream_steps([(j.state, j.chunk, j.lexicon) for j in jobs], jobs[0].opts)
    except Exception as exc:  # one bad chunk must not fail the others: each on its own
        if len(jobs) > 1:
            for job in jobs:
                _blend_group([job])
        else:  # raised in its producer, which ends the utterance as a failed blend would
            jobs[0].done.set_exception(exc)
        return
    for job, (frames, state) in zip(jobs, results, strict=True):
        visemes, shapes = viseme_events(job.uid, frames)
        if job.chunk is not None:
            visemes = audio_events(job.uid, job.chunk, job.frame_ms) + visemes
        job.done.set_result(((visemes, shapes), state))
