"""Audio-in sessions over real sockets: a client pushes PCM, the players get that audio
back with visemes on the same clock; malformed frames, barge-in, other sessions."""

from __future__ import annotations

import asyncio
import base64
import json

import numpy as np
import pytest

from server import wire
from server.app import create_app
from server.config import ServerConfig
from tests.fakes.listener import LoudListeners
from tests.server_support import Received, RecordingVoice, is_end, receive_until, typed, watch

RATE = 16000


def signal(rate: int = RATE) -> np.ndarray:
    """300 ms silence, 400 ms loud tone, 500 ms silence (int16)."""
    t = np.arange(int(0.4 * rate)) / rate
    tone = (8000 * np.sin(2 * np.pi * 220 * t)).astype(np.int16)
    return np.concatenate([np.zeros(int(0.3 * rate), np.int16), tone,
                           np.zeros(int(0.5 * rate), np.int16)])


async def _client(aiohttp_client, avatars, listeners=None, **cfg):
    """Listeners in threads (the stand-in's records are readable) unless a test asks."""
    cfg.setdefault("listen_workers", 0)
    app = create_app(ServerConfig(avatars_dir=avatars, **cfg), provider_factory=RecordingVoice(),
                     listener_factory=listeners or LoudListeners())
    return await aiohttp_client(app)


async def _session(client, **body) -> str:
    r = await client.post("/session-2d", json={"avatar_id": "hero", **body})
    assert r.status == 200, await r.text()
    return (await r.json())["session_id"]


async def _ack(ws, rec: Received, command: str) -> dict:
    await receive_until(ws, rec, lambda m: isinstance(m, dict) and m["type"] in ("ack", "error"))
    msg = rec.json()[-1]
    assert msg["type"] == "ack" and msg["command"] == command, msg
    return msg


async def _push_realtime(ws, pcm: bytes, rate: int, channels: int = 1, chunk_ms: int = 20,
                         realtime: bool = True) -> None:
    step = int(rate * chunk_ms / 1000) * 2 * channels
    for off in range(0, len(pcm), step):
        await ws.send_bytes(pcm[off:off + step])
        if realtime:
            await asyncio.sleep(chunk_ms / 1000)


@pytest.mark.parametrize("workers", [0, 1])
async def test_pushed_audio_comes_back_with_covering_visemes(aiohttp_client, avatars, workers):
    """In the thread pool and in a worker process (the default)."""
    listeners = LoudListeners(lookahead_ms=100)
    client = await _client(aiohttp_client, avatars, listeners, listen_workers=workers)
    r = await client.post("/session-2d", json={"avatar_id": "hero", "provider": "audio",
                                               "sample_rate": RATE})
    body = await r.json()
    assert body["provider"] == "audio" and body["sample_rate"] == RATE
    ws, rec = await watch(client, body['session_id'])
    assert rec.json("hello")[0]["provider"] == "audio"
    await ws.send_str(json.dumps({"type": "audio_start", "text": "ah", "id": 1}))
    assert (await _ack(ws, rec, "audio_start"))["utterance_id"] == 1
    x = signal()
    await _push_realtime(ws, x.tobytes(), RATE)
    await ws.send_str(json.dumps({"type": "audio_end", "id": 2}))
    await receive_until(ws, rec, is_end(1))
    # the players hear exactly what was pushed, as contiguous <= 100 ms frames at its rate
    assert rec.pcm(1) == x.tobytes()
    frames = rec.audio(1)
    assert all(f.sample_rate == RATE and f.duration_ms <= 100.0 + 1e-6 for f in frames)
    for a, b in zip(frames, frames[1:], strict=False):
        assert b.pts_ms == pytest.approx(a.pts_ms + a.duration_ms, abs=1e-6)
    # the visemes are the listener's, on the audio's clock, covering all of it
    vis = rec.json("viseme")
    fps = ServerConfig().viseme_fps
    assert [v["pts_ms"] for v in vis] == [round(k * 1000 / fps) for k in range(len(vis))]
    assert vis[-1]["pts_ms"] <= 1200 < vis[-1]["pts_ms"] + 1000 / fps
    loud = [v["pts_ms"] for v in vis if v["weights"] == {"AI": 1}]
    assert loud and 300 - 1000 / fps < loud[0] <= 300 and 700 - 1000 / fps <= loud[-1] < 700
    # no audio leaves before the visemes that cover it: when a frame [a, e) arrives, the
    # frames up to e - 1/fps are already there or in the same write, just behind it
    order = rec.kinds()
    events = [m for _, m in rec.events]
    seen = -1.0
    for i, m in enumerate(events):
        if order[i] == "viseme":
            seen = max(seen, m["pts_ms"])
        elif order[i] == "audio" and i > 0:
            prev_audio = [e for e in events[:i] if isinstance(e, wire.AudioFrame)]
            if prev_audio:
                p = prev_audio[-1]
                assert seen >= p.pts_ms + p.duration_ms - 1000 / fps - 1e-6
    end = rec.json("utterance_end")[0]
    assert end["reason"] == "completed" and end["pts_ms"] == pytest.approx(1200, abs=0.01)
    # the server-side look-ahead is on /metrics: the stand-in's 100 ms plus a little
    text = await (await client.get("/metrics")).text()
    count = [ln for ln in text.splitlines()
             if ln.startswith("avatarkit_listen_delay_seconds_count")]
    assert count and int(float(count[0].split()[-1])) > 10
    n = int(float(count[0].split()[-1]))
    fast = [int(float(ln.split()[-1])) for ln in text.splitlines()
            if ln.startswith('avatarkit_listen_delay_seconds_bucket{le="0.05"}')][0]
    in_time = [int(float(ln.split()[-1])) for ln in text.splitlines()
               if ln.startswith('avatarkit_listen_delay_seconds_bucket{le="0.15"}')][0]
    # (the first, coalesced chunk may read low, and more of them on a loaded machine)
    assert fast <= max(2, n // 5) and in_time >= 0.8 * n, text
    if not workers:  # (a worker process keeps its own)
        assert listeners.made[0].texts == ["ah"] and listeners.made[0].sample_rate == RATE
    await ws.close()


async def test_stereo_48k_json_frames_are_mixed_to_mono(aiohttp_client, avatars):
    client = await _client(aiohttp_client, avatars)
    sid = await _session(client, provider="audio")
    ws, rec = await watch(client, sid)
    await ws.send_str(json.dumps({"type": "audio_start", "sample_rate": 48000, "channels": 2}))
    await _ack(ws, rec, "audio_start")
    left = signal(48000)
    right = (left // 2).astype(np.int16)
    stereo = np.stack([left, right], axis=1).reshape(-1).astype("<i2").tobytes()
    step = 48000 * 2 * 2 // 10  # 100 ms
    for off in range(0, len(stereo), step):
        await ws.send_str(json.dumps({"type": "audio_append",
                                      "data": base64.b64encode(stereo[off:off + step]).decode()}))
    await ws.send_str(json.dumps({"type": "audio_text", "text": "a transcript"}))
    await ws.send_str(json.dumps({"type": "audio_end"}))
    await receive_until(ws, rec, is_end(1))
    mono = ((left.astype(np.int32) + right) // 2).astype("<i2").tobytes()
    assert rec.pcm(1) == mono
    assert {f.sample_rate for f in rec.audio(1)} == {48000}
    assert rec.json("utterance_start")[0]["sample_rate"] == 48000
    await ws.close()


@pytest.mark.parametrize("send,code", [
    (b"\x01\x02\x03", "bad_audio"),  # a torn sample
    ('{"type": "audio_append", "data": "***"}', "bad_audio"),
    ('{"type": "audio_start", "sample_rate": 4000}', "bad_message"),
    ('{"type": "audio_start", "channels": 6}', "bad_message"),
    ('{"type": "audio_end"}', "no_audio_turn"),
    ('{"type": "audio_text", "text": 5}', "bad_message"),
])
async def test_malformed_audio_gets_an_error_and_the_turn_goes_on(aiohttp_client, avatars, send,
                                                                  code):
    client = await _client(aiohttp_client, avatars)
    sid = await _session(client, provider="audio")
    other = await _session(client)  # a TTS session on the same server keeps speaking
    ws_other = await client.ws_connect(f"/session-2d/{other}/ws")
    rec_other = await receive_until(ws_other, Received(), typed("hello"))
    await ws_other.send_str(json.dumps({"type": "speak", "text": "Still here."}))
    ws, rec = await watch(client, sid)
    # before any turn, audio is refused
    await ws.send_bytes(b"\x00\x00" * 160)
    await receive_until(ws, rec, typed("error"))
    assert rec.json("error")[-1]["code"] == "no_audio_turn"
    await ws.send_str(json.dumps({"type": "audio_start", "sample_rate": RATE}))
    await _ack(ws, rec, "audio_start")
    x = signal()
    half = len(x) // 2 * 2
    await ws.send_bytes(x[:half // 2].tobytes())
    if "audio_end" in str(send):
        await ws.send_str(json.dumps({"type": "audio_end"}))
        await _ack(ws, rec, "audio_end")
    (await ws.send_bytes(send)) if isinstance(send, bytes) else (await ws.send_str(send))
    await receive_until(ws, rec, typed("error"))
    assert rec.json("error")[-1]["code"] == code
    if "audio_end" not in str(send):
        await ws.send_bytes(x[half // 2:].tobytes())
        await ws.send_str(json.dumps({"type": "audio_end"}))
        await receive_until(ws, rec, is_end(1))
        assert rec.pcm(1) == x.tobytes()  # the bad frame was dropped, nothing else
    else:
        await receive_until(ws, rec, is_end(1))
        assert rec.pcm(1) == x[:half // 2].tobytes()
    assert rec.json("utterance_end")[0]["reason"] == "completed"
    await receive_until(ws_other, rec_other, is_end(1))
    assert rec_other.json("utterance_end")[0]["reason"] == "completed"
    await ws.close()
    await ws_other.close()


async def test_stop_ramps_to_rest_and_drops_audio_in_flight(aiohttp_client, avatars):
    client = await _client(aiohttp_client, avatars)
    sid = await _session(client, provider="audio", sample_rate=RATE)
    ws, rec = await watch(client, sid)
    await ws.send_str(json.dumps({"type": "audio_start"}))
    await _ack(ws, rec, "audio_start")
    x = signal()
    await _push_realtime(ws, x[:int(0.6 * RATE)].tobytes(), RATE)  # into the loud part
    await ws.send_str(json.dumps({"type": "stop", "id": 5}))
    await receive_until(ws, rec, is_end(1))
    end = rec.json("utterance_end")[0]
    assert end["interrupted"] and end["reason"] == "stop"
    assert rec.json("viseme")[-1]["weights"] == {"Rest": 1}
    # the pipeline's frames still in flight are dropped without errors
    await ws.send_bytes(x[int(0.6 * RATE):].tobytes())
    await ws.send_str(json.dumps({"type": "ping", "id": 6}))
    await receive_until(ws, rec, typed("pong"))
    assert not rec.json("error")
    # and a new turn plays
    await ws.send_str(json.dumps({"type": "audio_start", "barge_in": True}))
    assert (await _ack(ws, rec, "audio_start"))["utterance_id"] == 2
    await ws.send_bytes(x.tobytes())
    await ws.send_str(json.dumps({"type": "audio_end"}))
    await receive_until(ws, rec, is_end(2))
    assert rec.pcm(2) == x.tobytes()
    await ws.close()


async def test_a_socket_that_hangs_up_mid_turn_still_plays_what_it_pushed(aiohttp_client,
                                                                          avatars):
    client = await _client(aiohttp_client, avatars)
    sid = await _session(client, provider="audio", sample_rate=RATE)
    watcher = await client.ws_connect(f"/session-2d/{sid}/ws")
    rec = await receive_until(watcher, Received(), typed("hello"))
    pusher = await client.ws_connect(f"/session-2d/{sid}/ws")
    await pusher.send_str(json.dumps({"type": "audio_start"}))
    x = signal()
    await pusher.send_bytes(x.tobytes())
    await pusher.close()
    await receive_until(watcher, rec, is_end(1))
    assert rec.pcm(1) == x.tobytes()
    assert rec.json("utterance_end")[0]["reason"] == "completed"
    await watcher.close()


async def test_speak_on_an_audio_session_is_refused(aiohttp_client, avatars):
    client = await _client(aiohttp_client, avatars)
    sid = await _session(client, provider="audio")
    r = await client.post(f"/session-2d/{sid}/speak", json={"text": "hello"})
    assert r.status == 400 and (await r.json())["error"] == "no_voice"
    r = await client.post("/session-2d", json={"avatar_id": "hero", "provider": "audio",
                                               "sample_rate": 1000})
    assert r.status == 400 and (await r.json())["error"] == "bad_message"


async def test_a_tts_session_also_takes_pushed_audio_between_utterances(aiohttp_client,
                                                                         avatars):
    client = await _client(aiohttp_client, avatars)
    sid = await _session(client)
    ws, rec = await watch(client, sid)
    await ws.send_str(json.dumps({"type": "speak", "text": "One."}))
    await ws.send_str(json.dumps({"type": "audio_start", "sample_rate": RATE}))
    x = signal()
    await ws.send_bytes(x.tobytes())
    await ws.send_str(json.dumps({"type": "audio_end"}))
    await receive_until(ws, rec, is_end(2))
    starts = rec.json("utterance_start")
    assert [s["utterance_id"] for s in starts] == [1, 2]
    assert starts[1]["sample_rate"] == RATE and rec.pcm(2) == x.tobytes()
    ends = rec.json("utterance_end")
    assert [e["reason"] for e in ends] == ["completed", "completed"]
    await ws.close()


async def test_each_turn_starts_from_the_channel_the_session_s_last_turn_learned(
        aiohttp_client, avatars):
    listeners = LoudListeners()
    client = await _client(aiohttp_client, avatars, listeners)
    turns = {}
    for name in ("a", "b"):
        sid = await _session(client, provider="audio", sample_rate=RATE)
        ws, rec = await watch(client, sid)
        for n in (1, 2):
            await ws.send_str(json.dumps({"type": "audio_start"}))
            await ws.send_bytes(signal()[: 4000 * n].tobytes())
            await ws.send_str(json.dumps({"type": "audio_end"}))
            await receive_until(ws, rec, is_end(n), timeout=30)
        turns[name] = [m for m in listeners.made if m.finished][-2:]
        await ws.close()
    for first, second in turns.values():
        assert first.started_from is None  # a new session's voice is unknown
        assert second.started_from == first.channel == "learned from 4000 samples"


async def test_the_real_front_end_moves_the_mouth_for_speech(aiohttp_client, avatars):
    """With avatarkit.listen's AudioVisemeStream (skips until it is installed)."""
    listen = pytest.importorskip("avatarkit.listen")
    if not hasattr(listen, "AudioVisemeStream"):
        pytest.skip("avatarkit.listen has no AudioVisemeStream yet")
    from avatarkit.tts.espeak_voice import EspeakOptions, EspeakProvider

    voice = EspeakProvider(EspeakOptions())
    pcm = b"".join([c.pcm async for c in voice.stream("Bob bought a map.")])
    app = create_app(ServerConfig(avatars_dir=avatars), provider_factory=RecordingVoice())
    # (the default: the shipped front end in a worker process)
    client = await aiohttp_client(app)
    sid = await _session(client, provider="audio", sample_rate=voice.sample_rate)
    ws, rec = await watch(client, sid)
    await ws.send_str(json.dumps({"type": "audio_start"}))
    await ws.send_bytes(pcm)
    await ws.send_str(json.dumps({"type": "audio_end"}))
    await receive_until(ws, rec, is_end(1), timeout=60)
    assert rec.pcm(1) == pcm
    vis = rec.json("viseme")
    assert any(v["weights"].get("MBP", 0) >= 0.5 for v in vis)
    assert any(v["weights"].get("Rest", 0) < 0.5 for v in vis)
    await ws.close()


async def test_a_turn_over_the_limit_and_an_empty_turn(aiohttp_client, avatars):
    client = await _client(aiohttp_client, avatars, max_audio_turn_s=1.0)
    sid = await _session(client, provider="audio", sample_rate=RATE)
    ws, rec = await watch(client, sid)
    await ws.send_str(json.dumps({"type": "audio_start"}))
    x = signal()
    step = RATE // 10 * 2  # 100 ms
    pcm = x.tobytes()
    for off in range(0, len(pcm), step):
        await ws.send_bytes(pcm[off:off + step])
    await ws.send_str(json.dumps({"type": "audio_end"}))
    await receive_until(ws, rec, is_end(1))
    assert {e["code"] for e in rec.json("error")} == {"audio_too_long"}
    assert rec.pcm(1) == pcm[:RATE * 2]  # the first second, nothing past the limit
    # a turn with no audio at all ends with an error, and the session goes on
    await ws.send_str(json.dumps({"type": "audio_start"}))
    await ws.send_str(json.dumps({"type": "audio_end"}))
    await receive_until(ws, rec, is_end(2))
    assert rec.json("error")[-1]["code"] == "provider_empty_audio"
    assert rec.json("error")[-1]["message"].startswith("the turn ended with no audio: push PCM")
    assert rec.json("utterance_end")[-1]["reason"] == "error"
    await ws.close()
    # a session with a voice of its own may push turns too: the same answer
    ws, rec = await watch(client, await _session(client, sample_rate=RATE))
    await ws.send_str(json.dumps({"type": "audio_start"}))
    await ws.send_str(json.dumps({"type": "audio_end"}))
    await receive_until(ws, rec, is_end(1))
    [error] = rec.json("error")
    assert error["code"] == "provider_empty_audio"
    assert error["message"].startswith("the turn ended with no audio: push PCM")
    await ws.close()


async def test_a_listener_worker_that_dies_fails_one_utterance_not_the_server(aiohttp_client,
                                                                              avatars):
    from server.state import SESSIONS

    client = await _client(aiohttp_client, avatars, listen_workers=1)
    sid = await _session(client, provider="audio", sample_rate=RATE)
    ws, rec = await watch(client, sid)
    await ws.send_str(json.dumps({"type": "audio_start"}))
    x = signal()
    half = len(x) // 2
    await ws.send_bytes(x[:half].tobytes())
    await receive_until(ws, rec, lambda m: bool(rec.json("viseme")))
    engine = client.app[SESSIONS].listen_engine
    for proc in list(engine._pools[0]._processes.values()):  # the worker is killed
        proc.kill()
    await ws.send_bytes(x[half:].tobytes())
    await ws.send_str(json.dumps({"type": "audio_end"}))
    await receive_until(ws, rec, is_end(1))
    assert rec.json("utterance_end")[0]["reason"] == "error"
    assert rec.json("error")[0]["code"] == "provider_error"
    # the next utterance gets a new worker
    await ws.send_str(json.dumps({"type": "audio_start"}))
    await ws.send_bytes(x.tobytes())
    await ws.send_str(json.dumps({"type": "audio_end"}))
    await receive_until(ws, rec, is_end(2), timeout=30)
    assert rec.json("utterance_end")[1]["reason"] == "completed"
    assert rec.pcm(2) == x.tobytes()
    await ws.close()
