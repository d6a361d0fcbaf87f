"""The embedded voice's visemes blended in the worker process (server/blend.py), and the
lazy production that keeps few events per session on the timeline: the bytes on the wire
are unchanged (the exact batch timeline), barge-in still ramps to Rest at once."""

from __future__ import annotations

import asyncio

import pytest

from avatarkit.visemes.coarticulation import CoarticulationOptions
from avatarkit.visemes.stream import VisemeStreamState, stream_finish, stream_step
from server.app import create_app
from server.blend import shared_pool
from server.config import ServerConfig
from server.pacing import PRODUCE_AHEAD_MS
from server.produce import SLICE_MS, slices
from server.state import SESSIONS
from tests.server_support import RecordingVoice, is_end, receive_until, typed, watch

TEXT = ("The quick brown fox jumps over the lazy dog, and then it runs far away into the "
        "quiet green forest. Maybe tomorrow.")


async def _open(aiohttp_client, avatars, voice, **cfg):
    app = create_app(ServerConfig(avatars_dir=avatars, **cfg), provider_factory=voice)
    client = await aiohttp_client(app)
    await shared_pool().warm()  # the worker answers before the first speak
    assert shared_pool().ready
    r = await client.post("/session-2d", json={"avatar_id": "hero"})
    sid = (await r.json())["session_id"]
    ws, rec = await watch(client, sid)
    return client, app, sid, ws, rec


def _sliced_reference(chunks, fps: float) -> list:
    """What the on-loop path blends from these chunks: each sentence in SLICE_MS slices."""
    opts = CoarticulationOptions(fps=fps).checked()
    state, out = VisemeStreamState(), []
    for chunk in chunks:
        for piece in slices(chunk, SLICE_MS):
            frames, state = stream_step(state, piece, opts)
            out += frames
    frames, state = stream_finish(state, opts)
    return [(f.pts_ms, f.weights) for f in out + frames]


@pytest.mark.parametrize("fps", [60.0, 30.0])
@pytest.mark.parametrize("worker", [True, False])
async def test_worker_blend_sends_what_the_loop_blend_sends(aiohttp_client, avatars, fps,
                                                            worker):
    voice = RecordingVoice()
    client, _app, sid, ws, rec = await _open(aiohttp_client, avatars, voice,
                                             send_ahead_ms=60_000, viseme_fps=fps,
                                             blend_worker=worker)
    jobs = shared_pool().jobs
    await client.post(f"/session-2d/{sid}/speak", json={"text": TEXT})
    await receive_until(ws, rec, is_end(1))
    # both sentences' tails went through the worker, or none did
    assert shared_pool().jobs - jobs == (2 if worker else 0)
    assert rec.pcm(1) == voice.pcm(TEXT)
    got = [(v["pts_ms"], v["weights"]) for v in rec.json("viseme")]
    assert len(got) > 5 * fps and got == _sliced_reference(voice.chunks(TEXT), fps)
    await ws.close()


class _ReadyAfter:
    """The shared worker, seen as not ready for the first `n` looks (it is warming up)."""

    def __init__(self, pool, n: int) -> None:
        self.pool, self.looks, self.n = pool, 0, n

    @property
    def ready(self) -> bool:
        self.looks += 1
        return self.looks > self.n and self.pool.ready

    def blend(self, *args):
        return self.pool.blend(*args)


async def test_worker_taking_over_mid_sentence_blends_the_rest_exactly(aiohttp_client, avatars):
    """The worker may become ready after a few slices were blended on the loop: the rest it
    gets must start where the loop stopped (audio, time and phonemes alike)."""
    voice = RecordingVoice()
    client, app, sid, ws, rec = await _open(aiohttp_client, avatars, voice,
                                            send_ahead_ms=60_000, viseme_fps=30.0)
    session = app[SESSIONS].get(sid)
    session.blend_pool = _ReadyAfter(shared_pool(), 2)
    await client.post(f"/session-2d/{sid}/speak", json={"text": TEXT})
    await receive_until(ws, rec, is_end(1))
    assert session.blend_pool.looks >= 3  # the hand-over came at the third slice or later
    got = [(v["pts_ms"], v["weights"]) for v in rec.json("viseme")]
    assert got == _sliced_reference(voice.chunks(TEXT), 30.0)
    await ws.close()


async def test_lazy_production_and_barge_in(aiohttp_client, avatars):
    voice = RecordingVoice()
    client, app, sid, ws, rec = await _open(aiohttp_client, avatars, voice)
    await client.post(f"/session-2d/{sid}/speak", json={"text": TEXT})
    await receive_until(ws, rec, typed("viseme"))
    await asyncio.sleep(0.3)
    session = app[SESSIONS].get(sid)
    # ~6 s of speech, but only what is due within PRODUCE_AHEAD_MS (+ one slice) is queued
    horizon_ms = 300 + PRODUCE_AHEAD_MS + SLICE_MS + 100
    assert session.has_pending()
    assert max(session.timeline_pts()) < horizon_ms
    r = await client.post(f"/session-2d/{sid}/stop")
    assert r.status == 200
    await receive_until(ws, rec, is_end(1))
    end = rec.json("utterance_end")[-1]
    assert end["interrupted"] is True
    ramp = [v for v in rec.json("viseme") if v["pts_ms"] >= end["pts_ms"] - 200]
    assert ramp[-1]["weights"] == {"Rest": 1}
    await ws.close()
