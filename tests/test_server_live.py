"""The live session over real sockets: audio bytes, viseme coverage, ordering, queueing,
barge-in, several clients, reconnect, malformed messages."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from server import wire
from server.app import create_app
from server.config import ServerConfig
from tests.server_support import (
    Received,
    RecordingVoice,
    is_end,
    receive_until,
    typed,
    watch,
)

TEXT = "Hello there. Nice to meet you."


VOICE: RecordingVoice  # the current test's provider factory


async def _reference(text: str, nth: int = 0):
    """What the server's voice produced for `text`: its PCM, duration and batch timeline."""
    chunks = VOICE.chunks(text, nth)
    return VOICE.pcm(text, nth), chunks[-1].end_ms, VOICE.timeline(text, nth)


async def _client(aiohttp_client, avatars, **cfg):
    global VOICE
    VOICE = RecordingVoice()
    app = create_app(ServerConfig(avatars_dir=avatars, **cfg), provider_factory=VOICE)
    return await aiohttp_client(app)


async def _session(client, **body) -> str:
    r = await client.post("/session-2d", json={"avatar_id": "hero", **body})
    assert r.status == 200, await r.text()
    data = await r.json()
    assert data["provider"] == "espeak" and data["sample_rate"] == 22050
    assert data["ws_url"].endswith(f"/session-2d/{data['session_id']}/ws")
    return data["session_id"]


async def test_speak_streams_exact_audio_and_covering_visemes(aiohttp_client, avatars):
    client = await _client(aiohttp_client, avatars, send_ahead_ms=60_000)
    sid = await _session(client)
    ws, rec = await watch(client, sid)
    r = await client.post(f"/session-2d/{sid}/speak", json={"text": TEXT})
    assert (await r.json()) == {"ok": True, "utterance_id": 1}
    await receive_until(ws, rec, is_end(1))
    pcm, total, timeline = await _reference(TEXT)
    # the bytes on the wire are the embedded voice's synthesis, in order, contiguous
    assert rec.pcm(1) == pcm
    frames = rec.audio(1)
    assert all(f.sample_rate == 22050 and f.duration_ms <= 100.0 + 1e-6 for f in frames)
    for a, b in zip(frames, frames[1:], strict=False):
        assert b.pts_ms == pytest.approx(a.pts_ms + a.duration_ms, abs=1e-6)
    # visemes: every frame of the batch timeline, exactly, covering the whole audio
    vis = rec.json("viseme")
    assert [(v["pts_ms"], v["weights"]) for v in vis] == [
        (f.pts_ms, f.weights) for f in timeline.frames
    ]
    frame_ms = 1000 / ServerConfig().viseme_fps
    assert vis[0]["pts_ms"] == 0 and total - frame_ms <= vis[-1]["pts_ms"] <= total
    # ordering: hello, start, ..., end; the end carries the audio length
    kinds = rec.kinds()
    assert kinds[0] == "hello" and kinds[1] == "utterance_start" and kinds[-1] == "utterance_end"
    end = rec.json("utterance_end")[0]
    assert end["interrupted"] is False and end["reason"] == "completed"
    assert end["pts_ms"] == pytest.approx(total, abs=0.01)
    await ws.close()


async def test_json_audio_and_ws_commands(aiohttp_client, avatars):
    client = await _client(aiohttp_client, avatars, send_ahead_ms=60_000)
    sid = await _session(client)
    ws = await client.ws_connect(f"/session-2d/{sid}/ws?audio=json")
    rec = await receive_until(ws, Received(), typed("hello"))
    assert rec.json("hello")[0]["audio"] == "json"
    await ws.send_str(json.dumps({"type": "ping", "id": "p1"}))
    await ws.send_str(json.dumps({"type": "speak", "text": "Hi.", "id": 5}))
    await receive_until(ws, rec, is_end(1))
    assert {"type": "pong", "id": "p1"} in rec.json("pong")
    assert rec.json("ack") == [{"type": "ack", "command": "speak", "ok": True,
                                "utterance_id": 1, "id": 5}]
    pcm, _, _ = await _reference("Hi.")
    assert rec.pcm(1) == pcm  # decoded from base64 JSON frames


@pytest.mark.parametrize("raw,code", [
    ("not json", "bad_json"),
    ("[1, 2]", "bad_message"),
    ('{"type": "jump"}', "unknown_type"),
    ('{"no_type": 1}', "unknown_type"),
    ('{"type": "speak"}', "bad_message"),
    ('{"type": "speak", "text": "   "}', "text_empty"),
    ('{"type": "speak", "text": "x", "barge_in": "yes"}', "bad_message"),
    ('{"type": "speak", "text": "' + "a" * 101 + '"}', "text_too_long"),
    ('{"type": "speak", "text": "x", "bargein": true}', "bad_message"),  # a typo, not ignored
    ('{"type": "stop", "now": 1}', "bad_message"),
])
async def test_malformed_ws_messages_keep_the_socket_open(aiohttp_client, avatars, raw, code):
    client = await _client(aiohttp_client, avatars, max_text_chars=100)
    sid = await _session(client)
    ws, rec = await watch(client, sid)
    await ws.send_str(raw)
    await receive_until(ws, rec, typed("error"))
    assert rec.json("error")[0]["code"] == code
    if "bargein" in raw:
        assert rec.json("error")[0]["message"] == (
            "unknown field 'bargein' in a speak message; it takes barge_in, id, text, type")
    await ws.send_bytes(b"\x00\x01")  # audio with no turn open (docs: "Pushing audio")
    await receive_until(ws, rec, lambda m: typed("error")(m) and m["code"] == "no_audio_turn")
    await ws.send_str('{"type": "ping", "id": 1}')  # still open and answering
    await receive_until(ws, rec, typed("pong"))
    assert not ws.closed


async def test_queued_utterances_play_back_to_back(aiohttp_client, avatars):
    client = await _client(aiohttp_client, avatars, send_ahead_ms=60_000)
    sid = await _session(client)
    ws, rec = await watch(client, sid)
    ids = []
    for text in ("One.", "Two.", "Three."):
        r = await client.post(f"/session-2d/{sid}/speak", json={"text": text})
        ids.append((await r.json())["utterance_id"])
    assert ids == [1, 2, 3]
    await receive_until(ws, rec, is_end(3))
    # each utterance complete and in order: start, its events, end - never interleaved
    current = None
    for m in (m for _, m in rec.events[1:]):
        uid = m.utterance_id if isinstance(m, wire.AudioFrame) else m["utterance_id"]
        if isinstance(m, dict) and m["type"] == "utterance_start":
            assert current is None
            current = uid
        else:
            assert uid == current
        if isinstance(m, dict) and m["type"] == "utterance_end":
            assert m["reason"] == "completed"
            current = None
    for uid, text in zip(ids, ("One.", "Two.", "Three."), strict=True):
        pcm, _, _ = await _reference(text)
        assert rec.pcm(uid) == pcm


async def test_barge_in_ramps_to_rest_and_ends_early(aiohttp_client, avatars):
    long_text = "This is a long sentence that keeps going for quite a while, on and on."
    client = await _client(aiohttp_client, avatars, ramp_ms=150)
    sid = await _session(client)
    ws, rec = await watch(client, sid)
    await client.post(f"/session-2d/{sid}/speak", json={"text": long_text})
    await client.post(f"/session-2d/{sid}/speak", json={"text": "Queued."})
    # let it play a little: audio arrives paced, about 200 ms ahead of playback
    await receive_until(ws, rec, lambda m: isinstance(m, wire.AudioFrame) and m.pts_ms >= 500)
    r = await client.post(f"/session-2d/{sid}/speak",
                          json={"text": "Stop, listen.", "barge_in": True})
    assert (await r.json())["utterance_id"] == 3
    await receive_until(ws, rec, is_end(3))
    ends = {m["utterance_id"]: m for m in rec.json("utterance_end")}
    _, total, _ = await _reference(long_text)
    first = ends[1]
    assert first["interrupted"] is True and first["reason"] == "barge_in"
    assert first["pts_ms"] < total - 1000  # ended long before its natural end
    # the queued one never started, and says so
    assert ends[2] == {"type": "utterance_end", "utterance_id": 2, "interrupted": True,
                       "pts_ms": 0, "reason": "barge_in"}
    assert 2 not in [m["utterance_id"] for m in rec.json("utterance_start")]
    # the ramp: frames of utterance 1 after the end-of-sent-frames rewind, ending at Rest
    vis = [m for m in rec.json("viseme") if m["utterance_id"] == 1]
    rewind = next(i for i in range(1, len(vis)) if vis[i]["pts_ms"] <= vis[i - 1]["pts_ms"])
    ramp = vis[rewind:]
    assert ramp[-1]["weights"] == {"Rest": 1.0}
    assert 100 <= ramp[-1]["pts_ms"] - ramp[0]["pts_ms"] <= 200
    assert ramp[-1]["pts_ms"] == pytest.approx(first["pts_ms"], abs=1)
    rest = [m["weights"].get("Rest", 0) for m in ramp]
    assert rest == sorted(rest)
    # the audio sent for utterance 1 is a prefix of the full synthesis (nothing after stop)
    pcm, _, _ = await _reference(long_text)
    got = rec.pcm(1)
    assert 0 < len(got) < len(pcm) and pcm.startswith(got)
    # the barge-in utterance plays in full afterwards
    pcm3, _, _ = await _reference("Stop, listen.")
    assert rec.pcm(3) == pcm3
    assert ends[3]["interrupted"] is False


async def test_stop_when_idle_and_when_playing(aiohttp_client, avatars):
    client = await _client(aiohttp_client, avatars)
    sid = await _session(client)
    r = await client.post(f"/session-2d/{sid}/stop")
    assert await r.json() == {"ok": True, "interrupted": False}
    ws, rec = await watch(client, sid)
    await ws.send_str(json.dumps({"type": "speak", "text": "A fairly long sentence to stop."}))
    await receive_until(ws, rec, lambda m: isinstance(m, wire.AudioFrame))
    await ws.send_str(json.dumps({"type": "stop", "id": "s"}))
    await receive_until(ws, rec, lambda m: typed("ack")(m) and m["command"] == "stop")
    end = rec.json("utterance_end")[0]
    assert end["interrupted"] is True and end["reason"] == "stop"
    assert rec.json("ack")[-1] == {"type": "ack", "command": "stop", "ok": True,
                                   "interrupted": True, "id": "s"}


async def test_two_clients_get_the_same_stream_and_a_late_one_resumes(aiohttp_client, avatars):
    text = "Two people are listening to this sentence at the same time, and a third joins."
    client = await _client(aiohttp_client, avatars)
    sid = await _session(client)
    a = await client.ws_connect(f"/session-2d/{sid}/ws")
    b = await client.ws_connect(f"/session-2d/{sid}/ws?audio=json")
    ra = await receive_until(a, Received(), typed("hello"))
    rb = await receive_until(b, Received(), typed("hello"))
    await client.post(f"/session-2d/{sid}/speak", json={"text": text})
    await receive_until(a, ra, lambda m: isinstance(m, wire.AudioFrame) and m.pts_ms >= 1000)
    c = await client.ws_connect(f"/session-2d/{sid}/ws")  # joins mid-utterance
    rc = await receive_until(c, Received(), is_end(1))
    await receive_until(a, ra, is_end(1))
    await receive_until(b, rb, is_end(1))
    pcm, _, _ = await _reference(text)
    assert ra.pcm(1) == pcm and rb.pcm(1) == pcm
    assert ra.json("viseme") == rb.json("viseme")
    start = rc.json("utterance_start")[0]
    # audio at 1000 ms left at most send-ahead + write window before it plays; the resume
    # point is the audio frame that plays at the playback position
    cfg = ServerConfig()
    earliest = 1000 - cfg.send_ahead_ms - cfg.write_window_ms - cfg.audio_frame_ms
    assert start["resumed"] is True and start["pts_ms"] >= earliest
    # it resumes at an audio frame boundary and gets exactly the rest of the audio
    first = rc.audio(1)[0]
    assert first.pts_ms == start["pts_ms"]
    offset = int(round(first.pts_ms * 22050 / 1000)) * 2
    assert rc.pcm(1) == pcm[offset:]
    # its viseme frames start with the shape showing at the resume point (sent with the
    # frames bundled before it, at most a write window minus a tick earlier) and have no gap
    pts = [v["pts_ms"] for v in rc.json("viseme")]
    assert start["pts_ms"] - (cfg.write_window_ms - cfg.tick_ms) <= pts[0] <= start["pts_ms"]
    assert max(b - a for a, b in zip(pts, pts[1:], strict=False)) <= 1000 / cfg.viseme_fps + 1
    assert rc.json("viseme")[-1] == ra.json("viseme")[-1]


async def test_session_close_and_unknown_session(aiohttp_client, avatars):
    client = await _client(aiohttp_client, avatars)
    sid = await _session(client)
    ws, rec = await watch(client, sid)
    r = await client.delete(f"/session-2d/{sid}")
    assert await r.json() == {"ok": True}
    await receive_until(ws, rec, lambda m: False)
    assert rec.close_code == 4000
    for method, path in [("post", f"/session-2d/{sid}/speak"), ("post", f"/session-2d/{sid}/stop"),
                         ("get", f"/session-2d/{sid}/ws"), ("delete", f"/session-2d/{sid}")]:
        r = await getattr(client, method)(path, json={"text": "x"})
        assert r.status == 404
        body = await r.json()
        assert body["ok"] is False and body["error"] == "not_found"


def test_audio_frame_roundtrip() -> None:
    pcm = bytes(range(200))
    data = wire.encode_audio(7, 123.456, 22050, pcm)
    assert data[:4] == b"AKAU" and len(data) == wire.AUDIO_HEADER_SIZE + 200
    frame = wire.decode_audio(data)
    assert (frame.utterance_id, frame.sample_rate, frame.pts_ms, frame.pcm) == (
        7, 22050, 123.456, pcm)
    msg = json.loads(wire.encode_audio_json(7, 123.456, 22050, pcm))
    assert base64.b64decode(msg["data"]) == pcm
    with pytest.raises(wire.WireError):
        wire.decode_audio(b"RIFF" + data[4:])


async def test_idle_sessions_expire(aiohttp_client, avatars):
    client = await _client(aiohttp_client, avatars, session_idle_ttl_s=0.2)
    sid = await _session(client)
    for _ in range(100):
        await asyncio.sleep(0.05)
        if (await (await client.get("/health")).json())["sessions"] == 0:
            break
    else:
        pytest.fail("the idle session was never closed")
    assert (await client.post(f"/session-2d/{sid}/stop")).status == 404
