"""HTTP surface: auth, CORS, limits, 404s, avatar assets with ETag/304, metrics, the
protocol document's schemas, slow clients."""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path

import aiohttp
import pytest

from server import wire
from tests.server_support import (
    Received,
    parse_prometheus,
    receive_until,
    recording_client,
    typed,
    watch,
)

DOC = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"
JSON = {"Content-Type": "application/json"}


def test_protocol_doc_shows_exactly_the_wire_schemas() -> None:
    text = DOC.read_text()
    blocks = dict(re.findall(r"```json schema=(\w+)\n(.*?)\n```", text, re.S))
    assert set(blocks) == set(wire.SCHEMAS)
    for name, body in blocks.items():
        assert json.loads(body) == wire.SCHEMAS[name], name
    # every example in the schema section validates against its schema
    from tests.server_support import check_schema
    for name, example in re.findall(r"### `(\w+)`\n\nExample:\n\n```json\n(.*?)\n```", text, re.S):
        check_schema(json.loads(example), wire.SCHEMAS[name])


async def test_token_on_every_route_and_the_websocket(aiohttp_client, avatars):
    client = await recording_client(aiohttp_client, avatars, token="s3cret")
    for path in ["/health", "/metrics", "/", "/avatars/hero", "/avatars/hero/atlas.json"]:
        r = await client.get(path)
        assert r.status == 401, path
        body = await r.json()
        assert body["error"] == "unauthorized" and "s3cret" not in json.dumps(body)
        r = await client.get(path, headers={"Authorization": "Bearer wrong"})
        assert r.status == 401
        assert (await client.get(path, headers={"Authorization": "Bearer s3cret"})).status == 200
        assert (await client.get(path, params={"token": "s3cret"})).status == 200
    r = await client.post("/session-2d", json={"avatar_id": "hero"})
    assert r.status == 401
    r = await client.post("/session-2d?token=s3cret", json={"avatar_id": "hero"})
    sid = (await r.json())["session_id"]
    with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
        await client.ws_connect(f"/session-2d/{sid}/ws")
    assert exc.value.status == 401
    ws = await client.ws_connect(f"/session-2d/{sid}/ws?token=s3cret")
    await receive_until(ws, Received(), typed("hello"))
    ws2 = await client.ws_connect(f"/session-2d/{sid}/ws",
                                  headers={"Authorization": "Bearer s3cret"})
    await receive_until(ws2, Received(), typed("hello"))


async def test_cors(aiohttp_client, avatars):
    client = await recording_client(aiohttp_client, avatars, cors_origins=("https://app.example",),
                           token="t")
    pre = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
           "Access-Control-Request-Headers": "authorization, content-type"}
    r = await client.options("/session-2d", headers=pre)  # preflight needs no token
    assert r.status == 204
    assert r.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "Authorization" in r.headers["Access-Control-Allow-Headers"]
    r = await client.options("/session-2d", headers={**pre, "Origin": "https://evil.example"})
    assert r.status == 403 and "Access-Control-Allow-Origin" not in r.headers
    assert (await r.json())["error"] == "bad_origin"  # the code docs/protocol.md lists for 403
    r = await client.get("/health", headers={"Origin": "https://app.example",
                                             "Authorization": "Bearer t"})
    assert r.headers["Access-Control-Allow-Origin"] == "https://app.example"
    r = await client.get("/health", headers={"Origin": "https://evil.example",
                                             "Authorization": "Bearer t"})
    assert "Access-Control-Allow-Origin" not in r.headers


async def test_errors_are_json_with_codes(aiohttp_client, avatars):
    client = await recording_client(aiohttp_client, avatars, max_text_chars=50, max_sessions=2,
                           max_queued_utterances=1, speak_without_client=True)
    cases = [
        (client.post("/session-2d", data=b"{nope", headers=JSON), 400, "bad_json"),
        (client.post("/session-2d", data=b"[" * 100_000 + b"]" * 100_000, headers=JSON), 400,
         "bad_json"),  # nested past Python's recursion limit: was a 500 with a traceback
        (client.post("/session-2d", data=b'{"avatar_id": "hero"}'), 415,
         "unsupported_media_type"),
        (client.post("/session-2d", json={"avatar_id": "hero", "voice_id": "../../v1/user"}),
         400, "bad_voice"),
        (client.post("/session-2d", json=[1]), 400, "bad_message"),
        (client.post("/session-2d", json={}), 400, "bad_message"),
        (client.post("/session-2d", json={"avatar_id": "nobody"}), 404, "not_found"),
        (client.post("/session-2d", json={"avatar_id": "../hero"}), 404, "not_found"),
        (client.post("/session-2d", json={"avatar_id": "hero", "provider": "x"}), 400,
         "provider_unavailable"),
        (client.post("/session-2d", json={"avatar_id": "hero", "provider": "elevenlabs"}), 400,
         "provider_unavailable"),
        (client.post("/session-2d", json={"avatar_id": "hero", "lang": "xx-nope"}), 400,
         "provider_unavailable"),
        (client.get("/no/such/route"), 404, "not_found"),
        (client.put("/session-2d"), 405, "method_not_allowed"),
        (client.post("/session-2d/s_nope/speak", json={"text": "hi"}), 404, "not_found"),
        (client.get("/avatars/nobody"), 404, "not_found"),
        (client.get("/avatars/hero/secret.txt"), 404, "not_found"),
        (client.get("/avatars/..%2F..%2Fetc/passwd"), 404, "not_found"),
        (client.get("/static/../../pyproject.toml"), 404, "not_found"),
    ]
    for request, status, code in cases:
        r = await request
        body = await r.json()
        assert (r.status, body.get("error")) == (status, code), (status, code, body)
        assert body["ok"] is False and body["message"]
    r = await client.post("/session-2d", json={"avatar_id": "hero", "provider": "elevenlabs"})
    assert "ELEVENLABS_API_KEY" in (await r.json())["message"]
    sid = (await (await client.post("/session-2d", json={"avatar_id": "hero"})).json())[
        "session_id"]
    r = await client.post(f"/session-2d/{sid}/speak", json={"text": "x" * 51})
    assert r.status == 400 and (await r.json())["error"] == "text_too_long"
    r = await client.post(f"/session-2d/{sid}/speak", json={"text": ""})
    assert (await r.json())["error"] == "text_empty"
    # queue limit: one playing/producing, one waiting, the next is refused. Sent at once and
    # about 3 s long each, so a busy machine cannot let the first finish before the last.
    text = "Five long sentences take a while to say, truly."
    replies = await asyncio.gather(
        *(client.post(f"/session-2d/{sid}/speak", json={"text": text}) for _ in range(4)))
    assert sorted(r.status for r in replies) == [200, 200, 429, 429]
    assert {(await r.json()).get("error") for r in replies if r.status == 429} == {"queue_full"}
    await client.post("/session-2d", json={"avatar_id": "hero"})
    r = await client.post("/session-2d", json={"avatar_id": "hero"})
    assert r.status == 429 and (await r.json())["error"] == "too_many_sessions"
    assert (await client.get("/health")).status == 200  # still serving


async def test_avatar_assets_have_etags_and_304(aiohttp_client, avatars):
    client = await recording_client(aiohttp_client, avatars)
    body = await (await client.get("/avatars/hero")).json()
    assert body["lipsync_assets"]["type"] == "visemes"
    assert body["lipsync_assets"]["roi"] == {"x": 10, "y": 20, "w": 30, "h": 40}
    assert body["idle_url"] == "/avatars/hero/idle.mp4" and body["poster_url"] is None
    r = await client.get(body["idle_url"])
    data = await r.read()
    assert data == (avatars / "hero" / "idle.mp4").read_bytes()
    etag = r.headers["ETag"]
    assert r.headers["Cache-Control"] == "no-cache"
    r = await client.get(body["idle_url"], headers={"If-None-Match": etag})
    assert r.status == 304 and await r.read() == b""
    r = await client.get(body["idle_url"], headers={"Range": "bytes=10-19"})
    assert r.status == 206 and await r.read() == data[10:20]
    (avatars / "hero" / "idle.mp4").write_bytes(b"changed")
    r = await client.get(body["idle_url"], headers={"If-None-Match": etag})
    assert r.status == 200 and await r.read() == b"changed"


async def test_index_works_without_the_player(aiohttp_client, avatars, tmp_path):
    client = await recording_client(aiohttp_client, avatars, static_dir=tmp_path / "no-player")
    r = await client.get("/")
    assert r.status == 200 and "player is not installed" in await r.text()


async def test_metrics_after_speech(aiohttp_client, avatars):
    client = await recording_client(aiohttp_client, avatars, send_ahead_ms=60_000)
    sid = (await (await client.post("/session-2d", json={"avatar_id": "hero"})).json())[
        "session_id"]
    ws, rec = await watch(client, sid)
    await client.post(f"/session-2d/{sid}/speak", json={"text": "Hello."})
    await receive_until(ws, rec, typed("utterance_end"))
    r = await client.get("/metrics")
    assert r.headers["Content-Type"].startswith("text/plain")
    m = parse_prometheus(await r.text())
    assert m["avatarkit_sessions"] == 1 and m["avatarkit_ws_clients"] == 1
    assert m['avatarkit_utterances_total{outcome="completed"}'] == 1
    assert m["avatarkit_first_audio_seconds_count"] == 1
    assert m['avatarkit_first_audio_seconds_bucket{le="+Inf"}'] == 1
    assert 0 < m["avatarkit_first_audio_seconds_sum"] < 5
    assert m["avatarkit_viseme_frames_dropped_total"] == 0
    # what benchmarks/soak.py watches for leaks: the loop's tasks, fds and resident memory
    assert m["avatarkit_asyncio_tasks"] >= 2  # at least the pacer and the idle sweep
    assert m["process_open_fds"] == pytest.approx(len(os.listdir("/proc/self/fd")), abs=20)
    assert 20e6 < m["process_resident_memory_bytes"] < 64e9
    families = [line.split()[2] for line in (await r.text()).splitlines()
                if line.startswith("# TYPE ")]
    doc = DOC.read_text()
    assert [f for f in families if f"`{f}`" not in doc and f"`{f}{{" not in doc] == [], \
        "every metric is in docs/protocol.md's table"


async def test_slow_client_loses_visemes_not_audio_then_is_closed(aiohttp_client, avatars):
    """A client that never reads: visemes are skipped for it, then it is closed with 4008,
    while a reading client on the same session gets everything."""
    client = await recording_client(aiohttp_client, avatars,
                           viseme_drop_bytes=8 * 1024, max_client_backlog_bytes=32 * 1024,
                           socket_send_buffer_bytes=8 * 1024)
    sid = (await (await client.post("/session-2d", json={"avatar_id": "hero"})).json())[
        "session_id"]
    # a raw socket with a tiny receive buffer that we never read from
    import socket

    host, port = client.server.host, client.server.port
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, port))
    sock.sendall((f"GET /session-2d/{sid}/ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    good = await client.ws_connect(f"/session-2d/{sid}/ws")
    rec = await receive_until(good, Received(), typed("hello"))
    text = "This sentence is long enough to fill a small socket buffer, slowly."
    await client.post(f"/session-2d/{sid}/speak", json={"text": text})
    await receive_until(good, rec, typed("utterance_end"))
    m = parse_prometheus(await (await client.get("/metrics")).text())
    assert m["avatarkit_viseme_frames_dropped_total"] > 0
    assert m["avatarkit_slow_clients_closed_total"] == 1
    assert m["avatarkit_ws_clients"] == 1
    assert len(rec.json("viseme")) > 0 and rec.json("utterance_end")[0]["reason"] == "completed"
    # the slow socket got a close frame with 4008 after (at most) its backlog
    sock.settimeout(5)
    data = b""
    while b"slow_client" not in data[-200:]:
        chunk = await asyncio.get_running_loop().run_in_executor(None, sock.recv, 65536)
        if not chunk:
            break
        data += chunk
    sock.close()
    assert b"slow_client" in data
    assert (4008).to_bytes(2, "big") + b"slow_client" in data
