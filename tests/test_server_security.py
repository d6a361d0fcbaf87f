"""What a hostile website or client can do to a server on real sockets: foreign origins,
DNS rebinding, plain-text bodies, session and speak floods, upstream concurrency, voices and
languages checked before anything is billed, speech for nobody."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from server.app import create_app
from server.config import ServerConfig
from tests.fakes.elevenlabs import FakeElevenLabs
from tests.server_support import (
    Received,
    RecordingVoice,
    is_end,
    parse_prometheus,
    receive_until,
    recording_client,
    typed,
    watch,
)

EVIL = "https://evil.example"


async def _sessions(client) -> int:
    return (await (await client.get("/health")).json())["sessions"]


async def test_a_foreign_website_cannot_open_sessions_or_sockets(aiohttp_client, avatars):
    """No token (the default): a page on another site sends a "simple" request (text/plain,
    no preflight) and opens a WebSocket; neither may reach the server's state."""
    client = await recording_client(aiohttp_client, avatars)
    body = json.dumps({"avatar_id": "hero"})
    r = await client.post("/session-2d", data=body,
                          headers={"Content-Type": "text/plain", "Origin": EVIL})
    assert r.status == 403 and (await r.json())["error"] == "bad_origin"
    r = await client.post("/session-2d", data=body, headers={"Origin": EVIL, "Content-Type":
                                                             "application/json"})
    assert r.status == 403
    assert await _sessions(client) == 0
    # a text/plain body is refused even without an Origin (JSON routes take JSON)
    r = await client.post("/session-2d", data=body, headers={"Content-Type": "text/plain"})
    assert r.status == 415 and "application/json" in (await r.json())["message"]
    # the server's own page (same origin) and clients that are not browsers (no Origin)
    own = f"http://{client.host}:{client.port}"
    r = await client.post("/session-2d", json={"avatar_id": "hero"}, headers={"Origin": own})
    assert r.status == 200
    sid = (await r.json())["session_id"]
    assert (await client.post("/session-2d", json={"avatar_id": "hero"})).status == 200
    # the WebSocket: a foreign origin is refused at the handshake, before any upgrade
    with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
        await client.ws_connect(f"/session-2d/{sid}/ws", origin=EVIL)
    assert exc.value.status == 403
    for state_change in (client.post(f"/session-2d/{sid}/stop", headers={"Origin": EVIL}),
                         client.delete(f"/session-2d/{sid}", headers={"Origin": EVIL})):
        assert (await state_change).status == 403
    ws = await client.ws_connect(f"/session-2d/{sid}/ws", origin=own)
    await receive_until(ws, Received(), typed("hello"))
    assert await _sessions(client) == 2


async def test_listed_cors_origins_are_allowed(aiohttp_client, avatars):
    client = await recording_client(aiohttp_client, avatars, cors_origins=("https://app.example",))
    r = await client.post("/session-2d", json={"avatar_id": "hero"},
                          headers={"Origin": "https://app.example"})
    assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == "https://app.example"
    sid = (await r.json())["session_id"]
    ws = await client.ws_connect(f"/session-2d/{sid}/ws", origin="https://app.example")
    await receive_until(ws, Received(), typed("hello"))
    r = await client.post("/session-2d", json={"avatar_id": "hero"}, headers={"Origin": EVIL})
    assert r.status == 403


async def test_dns_rebinding_host_names_are_refused(aiohttp_client, avatars):
    """A page on evil.example whose DNS now points at 127.0.0.1 is same-origin with itself:
    only the Host header shows it. IP literals and localhost are always answered."""
    client = await recording_client(aiohttp_client, avatars)
    port = client.port
    for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1.evil.example:{port}"):
        r = await client.get("/health", headers={"Host": host})
        assert r.status == 403, host
        body = await r.json()
        assert body["error"] == "bad_host" and "--allowed-host" in body["message"]
        r = await client.post("/session-2d", json={"avatar_id": "hero"}, headers={"Host": host})
        assert r.status == 403
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "10.0.0.7"):
        assert (await client.get("/health", headers={"Host": host})).status == 200, host
    named = await recording_client(aiohttp_client, avatars, allowed_hosts=("avatars.example",))
    r = await named.get("/health", headers={"Host": "avatars.example"})
    assert r.status == 200
    assert (await named.get("/health", headers={"Host": "evil.example"})).status == 403


def _refused(metrics: str) -> dict[str, int]:
    """avatarkit_requests_refused_total by code, from a /metrics body."""
    prefix = 'avatarkit_requests_refused_total{code="'
    return {key[len(prefix):-2]: int(value) for key, value in parse_prometheus(metrics).items()
            if key.startswith(prefix)}


async def test_sessions_per_client_are_rate_limited_and_capped(aiohttp_client, avatars):
    client = await recording_client(aiohttp_client, avatars, client_session_rate=0.6,
                           client_session_burst=3, max_sessions_per_client=5)
    replies = [await client.post("/session-2d", json={"avatar_id": "hero"}) for _ in range(6)]
    assert [r.status for r in replies] == [200, 200, 200, 429, 429, 429]
    body = await replies[3].json()
    assert body["error"] == "rate_limited" and "retry in" in body["message"]
    assert await _sessions(client) == 3
    assert _refused(await (await client.get("/metrics")).text()) == {
        "busy": 0, "queue_full": 0, "rate_limited": 3, "too_many_sessions": 0}
    # invalid requests spend no token; the session keeps working
    assert (await client.post("/session-2d", json={"avatar_id": "nobody"})).status == 404
    assert (await client.get("/health")).status == 200

    capped = await recording_client(aiohttp_client, avatars, max_sessions_per_client=2)
    sids = [(await (await capped.post("/session-2d", json={"avatar_id": "hero"})).json())[
        "session_id"] for _ in range(2)]
    r = await capped.post("/session-2d", json={"avatar_id": "hero"})
    assert r.status == 429 and (await r.json())["error"] == "too_many_sessions"
    assert _refused(await (await capped.get("/metrics")).text())["too_many_sessions"] == 1
    await capped.delete(f"/session-2d/{sids[0]}")
    assert (await capped.post("/session-2d", json={"avatar_id": "hero"})).status == 200


async def test_speak_floods_are_rate_limited_per_session(aiohttp_client, avatars):
    """200 barge-in speaks on one socket: the burst is accepted, the rest refused with an
    error the client can act on, and the session keeps answering."""
    client = await recording_client(aiohttp_client, avatars, session_speak_burst=5,
                           session_speak_rate=1.0)
    sid = (await (await client.post("/session-2d", json={"avatar_id": "hero"})).json())[
        "session_id"]
    ws, rec = await watch(client, sid)
    for i in range(200):
        await ws.send_str(json.dumps({"type": "speak", "text": "Hi.", "barge_in": True,
                                      "id": i}))
    await ws.send_str(json.dumps({"type": "ping", "id": "last"}))
    await receive_until(ws, rec, typed("pong"))
    acks = [m for m in rec.json("ack") if m["command"] == "speak"]
    refused = [m for m in rec.json("error") if m["code"] == "rate_limited"]
    assert len(acks) == 5 and len(refused) == 195
    assert {m["id"] for m in refused} == set(range(5, 200))
    r = await client.post(f"/session-2d/{sid}/speak", json={"text": "Hi."})
    assert r.status == 429 and (await r.json())["error"] == "rate_limited"
    # 195 on the socket and one over HTTP, each counted once
    assert _refused(await (await client.get("/metrics")).text())["rate_limited"] == 196
    # another session has its own budget
    other = (await (await client.post("/session-2d", json={"avatar_id": "hero"})).json())[
        "session_id"]
    ws2 = await client.ws_connect(f"/session-2d/{other}/ws")
    await receive_until(ws2, Received(), typed("hello"))
    assert (await client.post(f"/session-2d/{other}/speak", json={"text": "Hi."})).status == 200


async def test_no_speech_for_a_session_nobody_watches(aiohttp_client, avatars):
    voice = RecordingVoice()
    client = await aiohttp_client(create_app(ServerConfig(avatars_dir=avatars),
                                             provider_factory=voice))
    sid = (await (await client.post("/session-2d", json={"avatar_id": "hero"})).json())[
        "session_id"]
    r = await client.post(f"/session-2d/{sid}/speak", json={"text": "Nobody hears this."})
    body = await r.json()
    assert r.status == 409 and body["error"] == "no_client" and "WebSocket" in body["message"]
    await asyncio.sleep(0.2)
    assert voice.spoken == []  # nothing was synthesised
    ws, rec = await watch(client, sid)
    r = await client.post(f"/session-2d/{sid}/speak", json={"text": "Now someone does."})
    assert r.status == 200
    await receive_until(ws, rec, is_end(1))
    # asked for: a pipeline that connects later
    asked = await recording_client(aiohttp_client, avatars, speak_without_client=True)
    sid = (await (await asked.post("/session-2d", json={"avatar_id": "hero"})).json())[
        "session_id"]
    assert (await asked.post(f"/session-2d/{sid}/speak", json={"text": "Hi."})).status == 200


async def _elevenlabs_client(aiohttp_client, avatars, fake, **cfg):
    config = ServerConfig(avatars_dir=avatars, elevenlabs_api_key=fake.api_key,
                          elevenlabs_ws_base_url=fake.ws_base_url,
                          elevenlabs_http_base_url=fake.http_base_url, **cfg)
    return await aiohttp_client(create_app(config))


async def test_language_and_voice_are_checked_before_any_billed_connection(
        aiohttp_client, avatars):
    async with FakeElevenLabs() as fake:
        client = await _elevenlabs_client(aiohttp_client, avatars, fake,
                                          allowed_voices=("voiceA", "voiceB"))
        cases = [({"lang": "xx-nope"}, "provider_unavailable", "unknown language"),
                 ({"voice_id": "voiceC"}, "bad_voice", "voiceA, voiceB"),
                 ({"voice_id": "../../v1/user"}, "bad_voice", "1-64 characters")]
        for extra, code, needle in cases:
            r = await client.post("/session-2d", json={"avatar_id": "hero", **extra})
            body = await r.json()
            assert r.status == 400 and body["error"] == code and needle in body["message"], body
        assert fake.ws_attempts == [] and fake.http_requests == []
        r = await client.post("/session-2d", json={"avatar_id": "hero", "voice_id": "voiceB",
                                                   "lang": "de"})
        assert r.status == 200 and (await r.json())["lang"] == "de"


class CountingFake(FakeElevenLabs):
    """The fake service, counting the streams open at once (what an account limit sees)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.open_now = 0
        self.peak = 0

    async def _ws(self, request):  # noqa: ANN001, ANN202
        self.open_now += 1
        self.peak = max(self.peak, self.open_now)
        try:
            return await super()._ws(request)
        finally:
            self.open_now -= 1


async def test_upstream_connections_are_capped_and_queued(aiohttp_client, avatars):
    async with CountingFake(chunk_delay_s=0.02) as fake:
        client = await _elevenlabs_client(aiohttp_client, avatars, fake, max_upstream=2,
                                          send_ahead_ms=60_000)
        sockets = []
        for _ in range(5):
            sid = (await (await client.post("/session-2d", json={"avatar_id": "hero"})).json())[
                "session_id"]
            ws = await client.ws_connect(f"/session-2d/{sid}/ws")
            sockets.append((sid, ws, await receive_until(ws, Received(), typed("hello"))))
        await asyncio.gather(*(client.post(f"/session-2d/{sid}/speak",
                                           json={"text": "Hello there, how are you today?"})
                               for sid, _, _ in sockets))
        for _, ws, rec in sockets:
            await receive_until(ws, rec, is_end(1), timeout=60)
            assert rec.json("utterance_end")[0]["reason"] == "completed"
        assert len(fake.ws_sessions) == 5 and fake.peak == 2


async def test_a_session_token_opens_its_own_session_only(aiohttp_client, avatars):
    client = await recording_client(aiohttp_client, avatars, token="server-token")
    auth = {"Authorization": "Bearer server-token"}
    a = await (await client.post("/session-2d", json={"avatar_id": "hero"}, headers=auth)).json()
    b = await (await client.post("/session-2d", json={"avatar_id": "hero"}, headers=auth)).json()
    token = a["session_token"]
    assert token and token != b["session_token"] and "server-token" not in json.dumps(a)
    mine = {"Authorization": f"Bearer {token}"}
    ws = await client.ws_connect(f"/session-2d/{a['session_id']}/ws?token={token}")
    rec = await receive_until(ws, Received(), typed("hello"))
    r = await client.post(f"/session-2d/{a['session_id']}/speak", json={"text": "Hi."},
                          headers=mine)
    assert r.status == 200
    await receive_until(ws, rec, is_end(1))
    assert (await client.post(f"/session-2d/{a['session_id']}/stop", headers=mine)).status == 200
    refused = [client.post(f"/session-2d/{b['session_id']}/stop", headers=mine),
               client.delete(f"/session-2d/{b['session_id']}", headers=mine),
               client.post("/session-2d", json={"avatar_id": "hero"}, headers=mine),
               client.get("/health", headers=mine), client.get("/avatars/hero", headers=mine)]
    for request in refused:
        assert (await request).status == 401
    assert (await client.delete(f"/session-2d/{a['session_id']}", headers=mine)).status == 200
    # a closed session's token opens nothing any more
    r = await client.post(f"/session-2d/{a['session_id']}/stop", headers=mine)
    assert r.status == 401


async def test_behind_a_trusted_proxy_limits_count_the_forwarded_client(aiohttp_client, avatars):
    """The test client connects from 127.0.0.1: as a trusted proxy its X-Forwarded-For names
    the client; from an untrusted peer the header is ignored (anyone can write it)."""
    proxied = await recording_client(aiohttp_client, avatars, trusted_proxies=("127.0.0.1",),
                            max_sessions_per_client=1)

    def via(client_ip: str) -> dict:
        return {"X-Forwarded-For": f"6.6.6.6, {client_ip}"}  # the first entry is forged

    for ip in ("203.0.113.1", "203.0.113.2"):
        r = await proxied.post("/session-2d", json={"avatar_id": "hero"}, headers=via(ip))
        assert r.status == 200
    r = await proxied.post("/session-2d", json={"avatar_id": "hero"}, headers=via("203.0.113.1"))
    assert r.status == 429 and (await r.json())["error"] == "too_many_sessions"
    direct = await recording_client(aiohttp_client, avatars, max_sessions_per_client=1)
    assert (await direct.post("/session-2d", json={"avatar_id": "hero"},
                              headers=via("203.0.113.1"))).status == 200
    r = await direct.post("/session-2d", json={"avatar_id": "hero"}, headers=via("203.0.113.2"))
    assert r.status == 429  # one peer, whatever it claims


async def test_a_wait_for_an_upstream_slot_ends(aiohttp_client, avatars):
    """All upstream slots busy for longer than --upstream-wait: the utterance fails with
    provider_upstream_busy and the session keeps working."""
    async with FakeElevenLabs(fail="stall", fail_after_chunks=1) as fake:
        client = await _elevenlabs_client(aiohttp_client, avatars, fake, max_upstream=1,
                                          upstream_wait_s=0.3, send_ahead_ms=60_000)
        recs = []
        for _ in range(2):
            sid = (await (await client.post("/session-2d", json={"avatar_id": "hero"})).json())[
                "session_id"]
            ws = await client.ws_connect(f"/session-2d/{sid}/ws")
            recs.append((sid, ws, await receive_until(ws, Received(), typed("hello"))))
        (first, _, _), (second, ws, rec) = recs
        await client.post(f"/session-2d/{first}/speak", json={"text": "This one stalls."})
        for _ in range(100):  # the first stream holds the only slot
            if fake.ws_sessions:
                break
            await asyncio.sleep(0.02)
        await client.post(f"/session-2d/{second}/speak", json={"text": "Waiting in vain."})
        await receive_until(ws, rec, is_end(1))
        err = rec.json("error")[0]
        assert err["code"] == "provider_upstream_busy" and "retry" in err["message"]
        assert len(fake.ws_sessions) == 1  # the second never opened a billed socket
        assert (await client.post(f"/session-2d/{second}/stop")).status == 200


def test_the_rate_limiter_table_stays_bounded() -> None:
    from server.limits import RateLimiter

    now = [0.0]
    limiter = RateLimiter(60.0, 2, clock=lambda: now[0], max_keys=100)
    for i in range(10_000):  # a flood of distinct addresses
        assert limiter.take(f"10.0.{i // 256}.{i % 256}") == 0.0
    assert len(limiter._buckets) <= 100
    assert limiter.take("a") == 0.0 and limiter.take("a") == 0.0
    assert limiter.take("a") == pytest.approx(1.0)  # one token a second
    now[0] += 1.0
    assert limiter.take("a") == 0.0


async def test_an_abandoned_wait_never_keeps_an_upstream_slot() -> None:
    """Barge-in cancels streams waiting for a slot; whatever the timing, every slot comes
    back (a slot lost to a cancelled wait would block the server's voice for good)."""
    from server.limits import UpstreamGate

    gate = UpstreamGate(1, 5.0)
    await gate.acquire()
    waiters = [asyncio.create_task(gate.acquire()) for _ in range(20)]
    await asyncio.sleep(0)
    gate.release()  # the first waiter is being handed the slot ...
    for w in waiters:  # ... as every waiter is cancelled
        w.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)
    await asyncio.sleep(0.01)
    await asyncio.wait_for(gate.acquire(), 1.0)  # the slot is free again
    assert gate.waiting == 0


LONG = " ".join(f"This is sentence number {n} of a long answer." for n in range(12))


async def test_speech_stops_when_its_last_client_is_gone(aiohttp_client, avatars):
    """A client queues a long answer and leaves: after the grace period nothing is spoken
    for nobody; a client back within it resumes (tests/test_server_live.py)."""
    client = await recording_client(aiohttp_client, avatars, orphan_grace_s=0.3)
    sid = (await (await client.post("/session-2d", json={"avatar_id": "hero"})).json())[
        "session_id"]
    ws, rec = await watch(client, sid)
    await ws.send_str(json.dumps({"type": "speak", "text": LONG}))
    await ws.send_str(json.dumps({"type": "speak", "text": "And a queued one."}))
    await receive_until(ws, rec, typed("utterance_start"))
    await ws.close()
    await asyncio.sleep(1.0)
    back = await client.ws_connect(f"/session-2d/{sid}/ws")
    rec = await receive_until(back, Received(), typed("hello"))
    await back.send_str(json.dumps({"type": "ping", "id": 1}))
    await receive_until(back, rec, typed("pong"))
    assert "utterance_start" not in rec.kinds()  # nothing left to resume
    metrics = await (await client.get("/metrics")).text()
    assert 'avatarkit_utterances_total{outcome="interrupted"} 2' in metrics
    await back.send_str(json.dumps({"type": "speak", "text": "Hello again."}))
    await receive_until(back, rec, is_end(3))  # the session still speaks


async def test_a_socket_flooding_messages_is_read_slower_not_dropped(aiohttp_client, avatars):
    """--ws-message-rate: past the burst, the server reads a flooding socket at the rate
    (the kernel's window pushes back on the client); every message is still answered."""
    client = await recording_client(aiohttp_client, avatars, ws_message_rate=20)
    sid = (await (await client.post("/session-2d", json={"avatar_id": "hero"})).json())[
        "session_id"]
    ws = await client.ws_connect(f"/session-2d/{sid}/ws")
    rec = await receive_until(ws, Received(), typed("hello"))
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i in range(60):
        await ws.send_json({"type": "ping", "id": i})
    await receive_until(ws, rec, lambda m: isinstance(m, dict) and m.get("id") == 59)
    took = loop.time() - start
    assert [m["id"] for m in rec.json("pong")] == list(range(60))
    assert took >= 1.8  # 20 at once, then 40 at 20 a second
