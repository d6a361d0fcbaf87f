"""Faults of the voice providers, from the fakes on loopback: a connection dropped
mid-utterance, a stall, garbage, 429 and 5xx. The provider retries only a refusal that came
before any audio; the session tells its clients (`error`), brings the mouth back to Rest
(a last `{"Rest": 1}` viseme before `utterance_end {reason: "error"}`), and the next speak
works."""

from __future__ import annotations

import json

import pytest

from avatarkit.tts.elevenlabs import ElevenLabsProvider
from avatarkit.tts.provider import ProviderError
from server.app import create_app
from server.config import ServerConfig
from tests.fakes.elevenlabs import fake_elevenlabs  # noqa: F401  (fixture)
from tests.fakes.listener import LoudListeners
from tests.fakes.openai_realtime import FakeRealtime
from tests.server_support import Received, is_end, make_avatar, receive_until, typed
from tests.test_server_elevenlabs import _setup

TEXT = "Hello there. Maybe we should talk about fish."
KEY = "sk-test-fake"


# ---------------------------------------------------------------- the provider: retries


async def _speak(fake, **options) -> tuple[bytes, ProviderError | None]:
    provider = ElevenLabsProvider(fake.options(retry_backoff_s=0.01, **options))
    pcm = b""
    try:
        async for chunk in provider.stream(TEXT):
            pcm += chunk.pcm
    except ProviderError as exc:
        return pcm, exc
    finally:
        await provider.aclose()
    return pcm, None


@pytest.mark.parametrize("transport,switches", [
    ("ws", {"fail": "rate_limit", "fail_after_chunks": 0}),
    ("ws", {"fail": "server_error", "fail_after_chunks": 0}),
    ("ws", {"ws_handshake_status": 503}),
    ("ws", {"ws_handshake_status": 429}),
    ("ws", {"fail": "drop", "fail_after_chunks": 0}),
    ("http", {"fail": "rate_limit"}),
    ("http", {"fail": "server_error"}),
    ("http", {"fail": "garbage", "fail_after_chunks": 0}),
])
async def test_a_refusal_before_any_audio_is_retried(fake_elevenlabs, transport,  # noqa: F811
                                                     switches):
    fake = await fake_elevenlabs(fail_times=2, **switches)
    pcm, error = await _speak(fake, transport=transport, receive_timeout_s=2.0)
    assert error is None and pcm == bytes(fake.audio) and len(pcm) > 16000
    assert fake.failures == 2  # two refusals, then the third try spoke
    tries = len(fake.ws_attempts) if transport == "ws" else len(fake.http_requests)
    assert tries == 3


@pytest.mark.parametrize("transport,switches,code", [
    ("ws", {"fail": "rate_limit", "fail_after_chunks": 2}, "rate_limited"),
    ("ws", {"fail": "server_error", "fail_after_chunks": 2}, "provider_error"),
    ("ws", {"fail": "drop", "fail_after_chunks": 2}, "connection_lost"),
    ("ws", {"fail": "garbage", "fail_after_chunks": 2}, "provider_error"),
    ("http", {"fail": "drop", "fail_after_chunks": 2}, "connection_lost"),
    ("http", {"fail": "garbage", "fail_after_chunks": 2}, "provider_error"),
])
async def test_nothing_is_replayed_once_audio_went_out(fake_elevenlabs, transport,  # noqa: F811
                                                       switches, code):
    fake = await fake_elevenlabs(**switches)
    pcm, error = await _speak(fake, transport=transport, receive_timeout_s=2.0)
    assert error is not None and error.code == code
    assert 0 < len(pcm) <= len(fake.audio)
    tries = len(fake.ws_attempts) if transport == "ws" else len(fake.http_requests)
    assert tries == 1


@pytest.mark.parametrize("switches,code,tries", [
    ({"fail": "quota", "fail_after_chunks": 0}, "quota_exceeded", 1),  # fails again anyway
    ({"fail": "rate_limit", "fail_after_chunks": 0}, "rate_limited", 3),  # 1 + 2 retries
    ({"fail": "stall", "fail_after_chunks": 0}, "timeout", 1),  # already waited
])
async def test_retries_are_bounded_and_only_for_a_busy_service(fake_elevenlabs,  # noqa: F811
                                                               switches, code, tries):
    fake = await fake_elevenlabs(**switches)
    pcm, error = await _speak(fake, receive_timeout_s=0.5)
    assert pcm == b"" and error is not None and error.code == code
    assert len(fake.ws_attempts) == tries


# ---------------------------------------------------------------- the session: clients


async def _eleven_session(aiohttp_client, tmp_path, fake, **cfg):
    client, body = await _setup(aiohttp_client, tmp_path, fake, **cfg)
    ws = await client.ws_connect(f"/session-2d/{body['session_id']}/ws")
    rec = await receive_until(ws, Received(), typed("hello"))
    return ws, rec


def _check_failed_cleanly(rec: Received, uid: int, code: str) -> None:
    """`error` with the code, the mouth back to Rest, then `utterance_end {reason: error}`."""
    mine = [m for m in rec.json() if m.get("utterance_id") == uid]
    kinds = [m["type"] for m in mine]
    assert kinds[-1] == "utterance_end" and mine[-1]["reason"] == "error", kinds
    errors = [m for m in mine if m["type"] == "error"]
    assert [e["code"] for e in errors] == [code]
    visemes = [m for m in mine if m["type"] == "viseme"]
    if visemes:  # the mouth moved: its last shape is Rest, before the end
        assert visemes[-1]["weights"] == {"Rest": 1}
        assert visemes[-1]["pts_ms"] <= mine[-1]["pts_ms"]
        assert visemes[-1]["pts_ms"] >= max(f.pts_ms for f in rec.audio(uid))


@pytest.mark.parametrize("switches,code", [
    ({"fail": "drop", "fail_after_chunks": 2}, "provider_connection_lost"),
    ({"fail": "stall", "fail_after_chunks": 2}, "provider_timeout"),
    ({"fail": "garbage", "fail_after_chunks": 2}, "provider_error"),
    ({"fail": "server_error", "fail_after_chunks": 2}, "provider_error"),
    ({"fail": "rate_limit", "fail_after_chunks": 2}, "provider_rate_limited"),
    ({"ws_handshake_status": 503}, "provider_error"),
])
async def test_elevenlabs_faults_reach_the_clients_and_the_next_speak_works(
        aiohttp_client, tmp_path, fake_elevenlabs, switches, code):  # noqa: F811
    fake = await fake_elevenlabs(fail_times=1 if "ws_handshake_status" not in switches
                                 else 3, **switches)
    ws, rec = await _eleven_session(aiohttp_client, tmp_path, fake, provider_timeout_s=0.5,
                                    send_ahead_ms=60_000)
    await ws.send_str(json.dumps({"type": "speak", "text": TEXT}))
    await receive_until(ws, rec, is_end(1))
    _check_failed_cleanly(rec, 1, code)
    if "fail_after_chunks" in switches:
        assert rec.audio(1) and len(fake.ws_attempts) == 1  # audio went out: no replay
    await ws.send_str(json.dumps({"type": "speak", "text": "Again."}))
    await receive_until(ws, rec, is_end(2))
    assert rec.json("utterance_end")[-1]["reason"] == "completed"
    assert rec.pcm(2) == bytes(fake.audio)
    await ws.close()


async def _openai_session(aiohttp_client, avatars, fake, **cfg):
    config = ServerConfig(avatars_dir=avatars, openai_api_key=KEY, listen_workers=0,
                          openai_ws_base_url=fake.base_url, **cfg)
    client = await aiohttp_client(create_app(config, listener_factory=LoudListeners()))
    body = await (await client.post("/session-2d", json={"avatar_id": "hero",
                                                         "provider": "openai"})).json()
    ws = await client.ws_connect(f"/session-2d/{body['session_id']}/ws")
    rec = await receive_until(ws, Received(), typed("hello"))
    return ws, rec


@pytest.mark.parametrize("switches,code", [
    ({"fail": "stall"}, "provider_timeout"),
    ({"fail": "drop"}, "provider_connection_lost"),
    ({"handshake_status": 429}, "provider_rate_limited"),
    ({"handshake_status": 503, "fail_times": 3}, "provider_error"),
])
async def test_openai_faults_reach_the_clients_and_the_next_speak_works(aiohttp_client,
                                                                       tmp_path, switches,
                                                                       code):
    make_avatar(tmp_path)
    async with FakeRealtime(api_key=KEY, **switches) as fake:
        ws, rec = await _openai_session(aiohttp_client, tmp_path, fake, provider_timeout_s=0.5)
        await ws.send_str(json.dumps({"type": "speak", "text": "One two three four five."}))
        await receive_until(ws, rec, is_end(1))
        _check_failed_cleanly(rec, 1, code)
        if "handshake_status" in switches:
            assert fake.refused == 3  # refused before anything was asked: 1 + 2 retries
            fake.handshake_status = None
        await ws.send_str(json.dumps({"type": "speak", "text": "Again."}))
        await receive_until(ws, rec, is_end(2))
        assert rec.json("utterance_end")[-1]["reason"] == "completed"
        assert rec.pcm(2) == fake.responses[-1].pcm
        await ws.close()


async def test_openai_busy_handshake_is_retried_and_garbage_is_ignored(aiohttp_client,
                                                                      tmp_path):
    make_avatar(tmp_path)
    async with FakeRealtime(api_key=KEY, handshake_status=503, fail_times=2,
                            fail="garbage") as fake:
        ws, rec = await _openai_session(aiohttp_client, tmp_path, fake)
        await ws.send_str(json.dumps({"type": "speak", "text": "One two three four five."}))
        await receive_until(ws, rec, is_end(1))
        assert rec.json("utterance_end")[0]["reason"] == "completed"
        assert rec.pcm(1) == fake.responses[0].pcm and fake.refused == 2
        assert rec.json("error") == []
        # the malformed response.created started no answer that would hold the queue
        await ws.send_str(json.dumps({"type": "speak", "text": "Again."}))
        await receive_until(ws, rec, is_end(2))
        assert rec.json("utterance_end")[1]["reason"] == "completed"
        await ws.close()
