"""The OpenAI Realtime provider against a fake Realtime server on loopback: the model's
audio reaches the players with visemes, transcripts reach the listener, the key stays on
the server, barge-in on the user's speech, errors."""

from __future__ import annotations

import asyncio
import base64
import json

import numpy as np
import pytest

from server.app import create_app
from server.config import ServerConfig
from tests.fakes.listener import LoudListeners
from tests.fakes.openai_realtime import FakeRealtime
from tests.server_support import is_end, receive_until, typed, watch

KEY = "sk-test-fake"


async def _setup(aiohttp_client, avatars, fake, listeners=None, key=KEY):
    config = ServerConfig(avatars_dir=avatars, openai_api_key=key, listen_workers=0,
                          openai_ws_base_url=fake.base_url, openai_voice="marin")
    client = await aiohttp_client(create_app(config, listener_factory=listeners or LoudListeners()))
    r = await client.post("/session-2d", json={"avatar_id": "hero", "provider": "openai"})
    body = await r.json()
    assert r.status == 200, body
    assert body["provider"] == "openai" and body["sample_rate"] == 24000
    ws, rec = await watch(client, body['session_id'])
    return client, body["session_id"], ws, rec


@pytest.mark.parametrize("legacy", [False, True])
async def test_speak_plays_the_models_answer_with_visemes(aiohttp_client, avatars, legacy):
    listeners = LoudListeners()
    async with FakeRealtime(api_key=KEY, legacy=legacy) as fake:
        client, sid, ws, rec = await _setup(aiohttp_client, avatars, fake, listeners)
        await ws.send_str(json.dumps({"type": "speak", "text": "Bob bought a map.", "id": 1}))
        await receive_until(ws, rec, is_end(1))
        # the model's audio, byte for byte, at 24 kHz, with visemes covering it
        sent = fake.responses[0]
        assert rec.pcm(1) == sent.pcm and len(sent.pcm) > 24000
        assert {f.sample_rate for f in rec.audio(1)} == {24000}
        vis = rec.json("viseme")
        duration = len(sent.pcm) / 2 / 24
        assert vis[0]["pts_ms"] == 0 and duration - 34 < vis[-1]["pts_ms"] <= duration
        assert any(v["weights"] == {"AI": 1} for v in vis)
        end = rec.json("utterance_end")[0]
        assert end["reason"] == "completed" and end["pts_ms"] == pytest.approx(duration, abs=0.01)
        # the transcript deltas reached the listener; the text went in as a user message
        assert "".join(listeners.made[0].texts) == "Bob bought a map."
        assert [e["type"] for e in fake.received[0]][:3] == [
            "session.update", "conversation.item.create", "response.create"]
        update = fake.received[0][0]["session"]
        assert update["audio"]["output"] == {"format": {"type": "audio/pcm", "rate": 24000},
                                             "voice": "marin"}
        item = fake.received[0][1]["item"]
        assert item["role"] == "user" and item["content"][0]["text"] == "Bob bought a map."
        # the key went only into the Authorization header, never to a client
        assert fake.headers[0]["Authorization"] == f"Bearer {KEY}"
        assert all(KEY not in json.dumps(e) for conn in fake.received for e in conn)
        assert all(KEY not in json.dumps(m) for m in rec.json())
        r = await client.get("/metrics")
        assert KEY not in await r.text()
        await ws.close()


async def test_the_users_speech_barges_in_and_the_models_reply_follows(aiohttp_client,
                                                                      avatars):
    async with FakeRealtime(api_key=KEY, pace=1.0, vad_reply="Yes?") as fake:
        client, sid, ws, rec = await _setup(aiohttp_client, avatars, fake)
        await ws.send_str(json.dumps({
            "type": "speak", "text": "This is a long answer that the user will cut short, "
                                     "because people do that all the time."}))
        await receive_until(ws, rec, lambda m: len(rec.audio(1)) >= 5)
        # the user talks: microphone audio goes to the model's input buffer
        t = np.arange(2400) / 24000
        loud = (6000 * np.sin(2 * np.pi * 200 * t)).astype("<i2").tobytes()
        await ws.send_str(json.dumps({"type": "user_audio",
                                      "data": base64.b64encode(loud).decode()}))
        await receive_until(ws, rec, is_end(1))
        end = rec.json("utterance_end")[0]
        assert end["interrupted"] and end["reason"] == "barge_in"
        assert rec.json("viseme")[-1]["weights"] == {"Rest": 1}
        # the model was told how much of its answer was heard
        trunc = fake.events("conversation.item.truncate")
        assert len(trunc) == 1 and trunc[0]["item_id"] == "item_1"
        assert 0 <= trunc[0]["audio_end_ms"] <= end["pts_ms"]
        # the user stops: the model answers by itself, as a new utterance
        await ws.send_str(json.dumps({"type": "user_audio",
                                      "data": base64.b64encode(bytes(4800)).decode()}))
        await receive_until(ws, rec, is_end(2), timeout=30)
        assert [e["reason"] for e in rec.json("utterance_end")] == ["barge_in", "completed"]
        assert rec.pcm(2) == fake.responses[1].pcm and fake.responses[1].text == "Yes?"
        appended = fake.events("input_audio_buffer.append")
        assert base64.b64decode(appended[0]["audio"]) == loud
        await ws.close()


async def test_stop_cancels_the_models_response(aiohttp_client, avatars):
    async with FakeRealtime(api_key=KEY, pace=1.0) as fake:
        client, sid, ws, rec = await _setup(aiohttp_client, avatars, fake)
        await ws.send_str(json.dumps({"type": "speak", "text": "A fairly long sentence to stop "
                                                               "in the middle of."}))
        await receive_until(ws, rec, lambda m: len(rec.audio(1)) >= 3)
        await ws.send_str(json.dumps({"type": "stop"}))
        await receive_until(ws, rec, is_end(1))
        for _ in range(50):
            if fake.events("response.cancel"):
                break
            await asyncio.sleep(0.02)
        assert fake.events("response.cancel")[0]["response_id"] == "resp_1"
        await ws.close()


@pytest.mark.parametrize("fail,code", [("error", "provider_bad_request"),
                                       ("failed", "provider_error"),
                                       ("key", "provider_unauthorized")])
async def test_failures_end_the_utterance_with_an_error(aiohttp_client, avatars, fail, code):
    async with FakeRealtime(api_key=KEY, fail=None if fail == "key" else fail) as fake:
        key = "sk-wrong-key" if fail == "key" else KEY
        client, sid, ws, rec = await _setup(aiohttp_client, avatars, fake, key=key)
        await ws.send_str(json.dumps({"type": "speak", "text": "Hello."}))
        await receive_until(ws, rec, is_end(1))
        err = rec.json("error")[0]
        assert err["code"] == code and err["utterance_id"] == 1
        assert key not in err["message"]
        assert rec.json("utterance_end")[0]["reason"] == "error"
        await ws.close()


async def test_openai_needs_a_key_and_user_audio_needs_openai(aiohttp_client, avatars):
    client = await aiohttp_client(create_app(ServerConfig(avatars_dir=avatars),
                                             listener_factory=LoudListeners()))
    r = await client.post("/session-2d", json={"avatar_id": "hero", "provider": "openai"})
    assert r.status == 400 and (await r.json())["error"] == "provider_unavailable"
    r = await client.post("/session-2d", json={"avatar_id": "hero", "provider": "audio"})
    sid = (await r.json())["session_id"]
    ws, rec = await watch(client, sid)
    await ws.send_str(json.dumps({"type": "user_audio", "data": ""}))
    await receive_until(ws, rec, typed("error"))
    assert rec.json("error")[0]["code"] == "bad_message"
    await ws.close()


async def test_a_lost_connection_fails_the_answer_and_the_next_speak_reconnects(aiohttp_client,
                                                                               avatars):
    async with FakeRealtime(api_key=KEY, fail="drop") as fake:
        client, sid, ws, rec = await _setup(aiohttp_client, avatars, fake)
        await ws.send_str(json.dumps({"type": "speak", "text": "One two three four five six."}))
        await receive_until(ws, rec, is_end(1))
        assert rec.json("error")[0]["code"] == "provider_connection_lost"
        assert rec.json("utterance_end")[0]["reason"] == "error"
        assert rec.pcm(1) == fake.responses[0].pcm[:len(rec.pcm(1))]  # what did arrive
        await ws.send_str(json.dumps({"type": "speak", "text": "Again."}))
        await receive_until(ws, rec, is_end(2))
        assert rec.json("utterance_end")[1]["reason"] == "completed"
        assert rec.pcm(2) == fake.responses[1].pcm and len(fake.received) == 2
        await ws.close()
