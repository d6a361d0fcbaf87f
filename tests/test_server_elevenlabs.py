"""Sessions with provider "elevenlabs" against the fake ElevenLabs on loopback."""

from __future__ import annotations

import asyncio

import pytest

from avatarkit.visemes.coarticulation import CoarticulationOptions
from avatarkit.visemes.g2p import espeak_lexicon
from avatarkit.visemes.stream import VisemeStreamState, stream_finish, stream_step
from server import chunk_batch, wire
from server.app import create_app
from server.config import ServerConfig
from server.pacing import PRODUCE_AHEAD_MS
from server.produce import Producer
from server.state import LIMITS, SESSIONS
from tests.fakes.elevenlabs import fake_elevenlabs  # noqa: F401  (fixture)
from tests.server_support import is_end, make_avatar, receive_until, typed, watch


async def _setup(aiohttp_client, tmp_path, fake, **cfg):
    make_avatar(tmp_path)
    config = ServerConfig(
        avatars_dir=tmp_path, elevenlabs_api_key=fake.api_key,
        elevenlabs_ws_base_url=fake.ws_base_url, elevenlabs_http_base_url=fake.http_base_url,
        **cfg,
    )
    client = await aiohttp_client(create_app(config))
    r = await client.post("/session-2d", json={"avatar_id": "hero"})  # default: elevenlabs
    body = await r.json()
    assert r.status == 200 and body["provider"] == "elevenlabs", body
    assert fake.api_key not in await r.text()
    return client, body


@pytest.mark.parametrize("time_base", ["chunk", "stream"])
async def test_elevenlabs_session_streams_audio_and_visemes(
    aiohttp_client, tmp_path, fake_elevenlabs, time_base  # noqa: F811
):
    fake = await fake_elevenlabs(time_base=time_base)
    client, body = await _setup(aiohttp_client, tmp_path, fake, send_ahead_ms=60_000)
    assert body["sample_rate"] == 16000
    sid = body["session_id"]
    ws, rec = await watch(client, sid)
    assert rec.json("hello")[0]["provider"] == "elevenlabs"
    text = "Hello there. Maybe we should talk about fish."
    await client.post(f"/session-2d/{sid}/speak", json={"text": text})
    await receive_until(ws, rec, is_end(1))
    # the audio on the wire is exactly what the fake service sent
    assert rec.pcm(1) == bytes(fake.audio)
    assert all(f.sample_rate == 16000 for f in rec.audio(1))
    total = len(fake.audio) / 2 / 16000 * 1000
    vis = rec.json("viseme")
    frame_ms = 1000 / ServerConfig().viseme_fps
    assert vis[0]["pts_ms"] == 0 and total - frame_ms <= vis[-1]["pts_ms"] <= total
    # lips close for the m of "Maybe" within a few tens of ms of the true time
    maybe = next(w for w in fake.truth_words if w.text.lower().startswith("maybe"))
    closed = [v["pts_ms"] for v in vis if v["weights"].get("MBP", 0) > 0.8]
    assert any(abs(t - maybe.start_ms) < 60 for t in closed), (maybe, closed[:5])
    end = rec.json("utterance_end")[0]
    assert end["reason"] == "completed" and end["pts_ms"] == pytest.approx(total, abs=0.1)


async def test_elevenlabs_failure_is_an_error_event_and_the_session_survives(
    aiohttp_client, tmp_path, fake_elevenlabs  # noqa: F811
):
    fake = await fake_elevenlabs(fail="quota", fail_after_chunks=1)
    client, body = await _setup(aiohttp_client, tmp_path, fake, send_ahead_ms=60_000)
    sid = body["session_id"]
    ws, rec = await watch(client, sid)
    await client.post(f"/session-2d/{sid}/speak", json={"text": "Hello there, how are you?"})
    await receive_until(ws, rec, is_end(1))
    err = rec.json("error")[0]
    assert err["code"] == "provider_quota_exceeded" and err["utterance_id"] == 1
    assert fake.api_key not in err["message"]
    # the account's state ("You have 12 credits remaining ...") is the operator's business:
    # the client hears that the quota is out, the server log has the service's words
    assert "credits" not in err["message"] and "12" not in err["message"]
    assert "out of quota" in err["message"]
    end = rec.json("utterance_end")[0]
    assert end["interrupted"] is True and end["reason"] == "error"
    assert len(rec.audio(1)) >= 1  # the audio that did arrive was played
    text = await (await client.get("/metrics")).text()
    assert 'avatarkit_provider_errors_total{code="quota_exceeded"} 1' in text
    assert 'avatarkit_utterances_total{outcome="failed"} 1' in text
    # a bad key: unauthorized, and the key in the server config never reaches a client
    fake.api_key = "another-key"
    await client.post(f"/session-2d/{sid}/speak", json={"text": "Again."})
    await receive_until(ws, rec, is_end(2))
    assert rec.json("error")[-1]["code"] == "provider_unauthorized"
    for _, m in rec.events:
        if isinstance(m, dict):
            assert "fake-xi-key" not in str(m)


async def test_elevenlabs_barge_in_closes_the_upstream_socket(
    aiohttp_client, tmp_path, fake_elevenlabs  # noqa: F811
):
    fake = await fake_elevenlabs(chunk_delay_s=0.05)
    client, body = await _setup(aiohttp_client, tmp_path, fake)
    sid = body["session_id"]
    ws, rec = await watch(client, sid)
    await client.post(f"/session-2d/{sid}/speak", json={
        "text": "A long answer that the user will interrupt before it is over, surely."})
    await receive_until(ws, rec, lambda m: isinstance(m, wire.AudioFrame))
    await client.post(f"/session-2d/{sid}/stop")
    await receive_until(ws, rec, is_end(1))
    assert rec.json("utterance_end")[0]["interrupted"] is True
    assert rec.json("viseme")[-1]["weights"] == {"Rest": 1.0}
    assert len(fake.ws_sessions) == 1
    upstream = fake.ws_sessions[0]
    await asyncio.wait_for(upstream.closed.wait(), 5.0)  # we hung up on the service
    assert upstream.chunks_sent <= 3  # of ~7 (11 characters each): the answer was cut off


async def test_relayed_chunks_are_read_at_once_and_blended_shortly_before_they_play(
    aiohttp_client, tmp_path, fake_elevenlabs  # noqa: F811
):
    """The service sends seconds of speech at once: the upstream stream is read to its end
    (its slot freed), while its chunks reach the timeline only when due within
    PRODUCE_AHEAD_MS, so hundreds of sessions' bursts do not block the pacer."""
    fake = await fake_elevenlabs()
    client, body = await _setup(aiohttp_client, tmp_path, fake)
    sid = body["session_id"]
    ws, rec = await watch(client, sid)
    text = ("The quick brown fox jumps over the lazy dog, and then it runs far away into "
            "the quiet green forest, where nobody will ever find it again.")
    await client.post(f"/session-2d/{sid}/speak", json={"text": text})
    await receive_until(ws, rec, typed("viseme"))
    await asyncio.sleep(0.3)
    app = client.server.app
    total_ms = len(fake.audio) / 2 / 16000 * 1000
    assert total_ms > 5000
    assert fake.last.chunks_sent > 5 and fake.last.closed.is_set()  # all sent, socket closed
    assert app[LIMITS].upstream.active == 0
    session = app[SESSIONS].get(sid)
    longest_chunk_ms = 1200  # 11 characters of speech, generously
    assert max(session.timeline_pts()) < 300 + PRODUCE_AHEAD_MS + longest_chunk_ms + 100
    await receive_until(ws, rec, is_end(1))
    assert rec.pcm(1) == bytes(fake.audio)
    assert rec.json("utterance_end")[0]["reason"] == "completed"
    await ws.close()


async def test_relayed_visemes_blended_together_equal_one_chunk_at_a_time(
    aiohttp_client, tmp_path, fake_elevenlabs, monkeypatch  # noqa: F811
):
    """Several sessions relaying at once: their chunks are blended together at the pacer's
    ticks (server/chunk_batch.py), and each session sends exactly the viseme frames (pts
    and weights) of its chunks blended one at a time, as `chunk_events` does."""
    fake = await fake_elevenlabs()
    client, body = await _setup(aiohttp_client, tmp_path, fake)
    received: dict[int, list] = {}  # id(producer) -> the chunks its utterance got
    aligned = Producer._aligned

    async def recording(self, run, chunk):  # noqa: ANN001, ANN202
        received.setdefault(id(self), []).append(chunk)
        await aligned(self, run, chunk)

    monkeypatch.setattr(Producer, "_aligned", recording)
    batch_sizes: list[int] = []
    steps = chunk_batch.stream_steps
    monkeypatch.setattr(chunk_batch, "stream_steps",
                        lambda jobs, opts: batch_sizes.append(len(jobs)) or steps(jobs, opts))
    texts = ["Maybe we should talk about fish and boats.", "Hello there, my friend.",
             "Big blue waves break on the quiet shore.", "Five very puzzled owls."]
    sids = [body["session_id"]]
    for _ in texts[1:]:
        r = await client.post("/session-2d", json={"avatar_id": "hero"})
        sids.append((await r.json())["session_id"])
    watching = [await watch(client, sid) for sid in sids]
    for sid, text in zip(sids, texts, strict=True):
        await client.post(f"/session-2d/{sid}/speak", json={"text": text})
    for ws, rec in watching:
        await receive_until(ws, rec, is_end(1), timeout=30)
    sessions = [client.server.app[SESSIONS].get(sid) for sid in sids]
    config = sessions[0].config
    opts = CoarticulationOptions(fps=config.viseme_fps).checked()
    lexicon = espeak_lexicon("en-us")
    for session, (_, rec) in zip(sessions, watching, strict=True):
        state, want = VisemeStreamState(), []
        for chunk in received[id(session._producer)]:  # main's way: `chunk_events`' blend
            frames, state = stream_step(state, chunk, opts, lexicon)
            want += frames
        want += stream_finish(state, opts, lexicon)[0]
        got = [(v["pts_ms"], v["weights"]) for v in rec.json("viseme")]
        assert got == [(f.pts_ms, f.weights) for f in want]
        assert len(got) > 40
    assert max(batch_sizes) > 1  # chunks of several sessions did go through one blend
