"""Variant C live (server/lipsync.py): sessions with `lipsync: "onnx"` get mouth patches from
a real ONNX Runtime session of a small Wav2Lip-signature model, over real sockets.

The test model paints the mouth area of the face box with a grey level set by the mean of
its mel input (tests/roi_cases.py), so the patches must follow the audio the client heard.
"""

from __future__ import annotations

import asyncio
import re

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from avatarkit.errors import AvatarkitError
from avatarkit.roi import load_avatar
from avatarkit.roi.live import LiveFrames
from avatarkit.roi.mel import frame_count
from server import wire
from server.app import create_app
from server.config import ServerConfig
from server.state import LIPSYNC
from tests.roi_cases import MOUTH_COLS, MOUTH_ROWS, audio_driven_model, wrong_signature_model
from tests.server_support import (
    Received,
    RecordingVoice,
    avatars_with_hero,
    is_end,
    make_avatar,
    receive_until,
    typed,
    watch,
)

TEXT = "Hello there. Nice to meet you."


@pytest.fixture(scope="module")
def setup(tmp_path_factory, hero_dir):
    root = tmp_path_factory.mktemp("lipsync")
    avatars = avatars_with_hero(hero_dir, root / "avatars")
    make_avatar(avatars, "fake")  # a manifest and placeholder files: not usable by variant C
    return {"avatars": avatars, "model": audio_driven_model(root / "m.onnx"),
            "wrong": wrong_signature_model(root / "w.onnx"), "roi": load_avatar(avatars / "hero")}


async def _client(aiohttp_client, setup, voice=None, **cfg):
    cfg.setdefault("model", setup["model"])
    cfg.setdefault("onnx_provider", "cpu")
    app = create_app(ServerConfig(avatars_dir=setup["avatars"], **cfg),
                     provider_factory=voice or RecordingVoice())
    return await aiohttp_client(app)


async def _onnx_session(client) -> dict:
    r = await client.post("/session-2d", json={"avatar_id": "hero", "lipsync": "onnx"})
    assert r.status == 200, await r.text()
    return await r.json()


def _mouth_levels(patches: list[wire.PatchFrame], avatar) -> np.ndarray:
    """Mean brightness where the test model paints, in the patch (photo-ROI coordinates)."""
    s, roi = avatar.box.side, avatar.track.roi
    cx = avatar.box.x + s * np.mean(MOUTH_COLS) - roi.x
    cy = avatar.box.y + s * np.mean(MOUTH_ROWS) - roi.y
    r = max(2, int(0.03 * s))
    out = []
    for p in patches:
        img = cv2.imdecode(np.frombuffer(p.image, np.uint8), cv2.IMREAD_UNCHANGED)
        out.append(img[int(cy) - r:int(cy) + r, int(cx) - r:int(cx) + r, :3].mean())
    return np.array(out)


def _expected_levels(pcm: bytes, rate: int, fps: float) -> np.ndarray:
    """What the test model draws per frame: (mean of the frame's mel window + 4) / 8."""
    frames = LiveFrames(rate, fps)
    windows = frames.push_pcm16(pcm) + frames.finish()
    return np.array([(w.mel.mean() + 4) / 8 for w in windows])


async def test_patches_cover_the_audio_and_follow_it(aiohttp_client, setup):
    voice = RecordingVoice()
    client = await _client(aiohttp_client, setup, voice)
    info = await _onnx_session(client)
    avatar = setup["roi"]
    fps = avatar.fps
    assert info["lipsync"] == "onnx" and info["patch_fps"] == fps
    assert info["patch_codec"] == "png"
    ws, rec = await watch(client, info['session_id'])
    hello = rec.json("hello")[0]
    assert (hello["lipsync"], hello["patch_fps"], hello["patch_codec"]) == ("onnx", fps, "png")
    await client.post(f"/session-2d/{info['session_id']}/speak", json={"text": TEXT})
    await receive_until(ws, rec, is_end(1))
    pcm = voice.pcm(TEXT)
    assert rec.pcm(1) == pcm  # the embedded voice, unchanged by variant C
    audio_ms = len(pcm) / 2 / 22050 * 1000
    patches = sorted(rec.patches(1), key=lambda p: p.index)
    # one patch per idle-fps frame, covering the audio, on the audio's clock
    count = frame_count(round(len(pcm) / 2 * 16000 / 22050), fps)
    assert [p.index for p in patches] == list(range(count))
    assert [p.pts_ms for p in patches] == pytest.approx([i * 1000 / fps for i in range(count)])
    assert patches[-1].pts_ms < audio_ms <= patches[-1].pts_ms + 1000 / fps + 1
    # every patch is sent before the utterance ends, and before its audio plays out
    kinds = rec.kinds()
    assert kinds.index("utterance_end") > max(i for i, k in enumerate(kinds) if k == "patch")
    roi = avatar.track.roi
    first = cv2.imdecode(np.frombuffer(patches[0].image, np.uint8), cv2.IMREAD_UNCHANGED)
    assert first.shape == (roi.h, roi.w, 4) and (patches[0].width, patches[0].height) == (
        roi.w, roi.h)
    assert all(p.codec == "png" and 0 <= p.idle_frame < len(avatar.frames) for p in patches)
    # alpha: the feathered mask (zero at the ROI border, opaque inside)
    alpha = first[:, :, 3]
    assert alpha.max() == 255 and alpha[0].max() == 0 and alpha[:, 0].max() == 0
    # the mouth follows the audio: speech frames bright, pauses dark (after colour matching)
    levels = _mouth_levels(patches, avatar)
    expected = _expected_levels(pcm, 22050, fps)
    assert len(expected) == count
    assert np.corrcoef(levels, expected)[0, 1] > 0.9, (levels, expected)
    assert np.ptp(levels) > 15  # espeak-ng pauses are short; the correlation is the test
    text = await (await client.get("/metrics")).text()
    counts = {k: int(v) for k, v in re.findall(
        r'avatarkit_patches_total\{outcome="(\w+)"\} (\d+)', text)}
    assert counts["on_time"] + counts["late"] == count and counts["on_time"] > count // 2


async def test_two_sessions_are_batched_together(aiohttp_client, setup):
    voice = RecordingVoice()
    client = await _client(aiohttp_client, setup, voice,
                           batch_max_frames=64, batch_max_wait_ms=150)
    service = client.app[LIPSYNC]
    batches: list[np.ndarray] = []
    run = service.runner.run

    def recording_run(mels, faces):  # the inference worker's thread
        batches.append(np.array(mels))
        return run(mels, faces)

    service.runner.run = recording_run  # type: ignore[method-assign]
    texts = ["Hello there. Nice to meet you.", "Bob bought five thin maps yesterday."]
    sockets, recs = [], []
    for _ in texts:
        info = await _onnx_session(client)
        ws = await client.ws_connect(f"/session-2d/{info['session_id']}/ws")
        recs.append(await receive_until(ws, Received(), typed("hello")))
        sockets.append((info["session_id"], ws))
    await asyncio.gather(*[client.post(f"/session-2d/{sid}/speak", json={"text": t})
                           for (sid, _), t in zip(sockets, texts, strict=True)])
    await asyncio.gather(*[receive_until(ws, rec, is_end(1))
                           for (_, ws), rec in zip(sockets, recs, strict=True)])
    fps = setup["roi"].fps
    windows = []
    for text, rec in zip(texts, recs, strict=True):
        pcm = voice.pcm(text)
        frames = LiveFrames(22050, fps)
        mine = frames.push_pcm16(pcm) + frames.finish()
        windows.append({w.mel.tobytes() for w in mine})
        # each session gets its own frames, following its own audio
        patches = sorted(rec.patches(1), key=lambda p: p.index)
        assert [p.index for p in patches] == list(range(len(mine)))
        levels = _mouth_levels(patches, setup["roi"])
        assert np.corrcoef(levels, _expected_levels(pcm, 22050, fps))[0, 1] > 0.9
    only_a, only_b = windows[0] - windows[1], windows[1] - windows[0]
    mixed = [b for b in batches
             if any(m[0].tobytes() in only_a for m in b) and any(m[0].tobytes() in only_b
                                                                 for m in b)]
    assert mixed, [len(b) for b in batches]
    assert service.stats()["max_batch"] > 1


async def test_barge_in_stops_patches(aiohttp_client, setup):
    client = await _client(aiohttp_client, setup)
    info = await _onnx_session(client)
    ws, rec = await watch(client, info['session_id'])
    long = "This is a long sentence that keeps going for quite a while. " * 4
    await client.post(f"/session-2d/{info['session_id']}/speak", json={"text": long})
    await receive_until(ws, rec, lambda m: isinstance(m, wire.PatchFrame) and m.index >= 8)
    r = await client.post(f"/session-2d/{info['session_id']}/stop")
    assert (await r.json())["interrupted"] is True
    await receive_until(ws, rec, is_end(1))
    end = rec.json("utterance_end")[0]
    assert end["interrupted"] is True and end["reason"] == "stop"
    service = client.app[LIPSYNC]
    with pytest.raises(TimeoutError):  # nothing more arrives: no patch, no audio
        await receive_until(ws, rec, lambda m: True, timeout=0.6)
    assert rec.kinds()[-1] == "utterance_end"
    sent = rec.patches(1)
    fps = setup["roi"].fps
    whole_text_frames = len(long) * 60 / 1000 * fps
    assert len(sent) < whole_text_frames / 2  # far fewer than the whole text
    assert max(p.pts_ms for p in sent) <= end["pts_ms"] + 200 + 1000 / fps
    # and nothing more is rendered: a batch already running when the stop came may finish
    # (on a busy machine that can take a while), but no new work starts after it
    done = service.stats()["frames"]
    await asyncio.sleep(0.4)
    assert service.stats()["frames"] == done < whole_text_frames / 2
    # the session speaks again, with patches
    await client.post(f"/session-2d/{info['session_id']}/speak", json={"text": "Hi."})
    await receive_until(ws, rec, is_end(2))
    assert [p.index for p in sorted(rec.patches(2), key=lambda p: p.index)][:3] == [0, 1, 2]


async def test_onnx_needs_a_model_and_a_usable_avatar(aiohttp_client, setup):
    client = await _client(aiohttp_client, setup, model=None)
    r = await client.post("/session-2d", json={"avatar_id": "hero", "lipsync": "onnx"})
    assert r.status == 400
    body = await r.json()
    assert body["error"] == "lipsync_unavailable" and "--model" in body["message"]
    r = await client.post("/session-2d", json={"avatar_id": "hero", "lipsync": "lips"})
    assert r.status == 400 and (await r.json())["error"] == "bad_message"
    r = await client.post("/session-2d", json={"avatar_id": "hero"})
    assert (await r.json())["lipsync"] == "visemes"
    ws, rec = await watch(client, (await r.json())['session_id'])
    assert rec.json("hello")[0]["lipsync"] == "visemes"
    assert "patch_fps" not in rec.json("hello")[0]
    # with a model: an avatar folder without idle loop / face box is refused clearly
    client2 = await _client(aiohttp_client, setup)
    r = await client2.post("/session-2d", json={"avatar_id": "fake", "lipsync": "onnx"})
    assert r.status == 422
    body = await r.json()
    assert body["error"] == "avatar_unusable" and "avatar" in body["message"]


async def test_a_model_that_does_not_fit_fails_startup(aiohttp_client, setup):
    with pytest.raises(AvatarkitError, match="not a Wav2Lip-compatible model"):
        await _client(aiohttp_client, setup, model=setup["wrong"])


def test_cli_serve_with_a_bad_model(setup, tmp_path):
    from avatarkit.cli import app

    cli = CliRunner()
    res = cli.invoke(app, ["serve", "--model", str(setup["wrong"]), "--onnx-provider", "cpu",
                           "--port", "0"])
    assert res.exit_code == 1
    assert "not a Wav2Lip-compatible model" in res.output and "Traceback" not in res.output
    res = cli.invoke(app, ["serve", "--model", str(tmp_path / "none.onnx"), "--port", "0"])
    assert res.exit_code == 1 and "no such file" in res.output
    res = cli.invoke(app, ["serve", "--model", str(setup["model"]), "--batch-frames", "0"])
    assert res.exit_code == 1 and "--batch-frames" in res.output


async def test_decoded_idle_loops_are_kept_for_a_few_avatars_only(aiohttp_client, setup,
                                                                   tmp_path):
    """Each avatar's decoded loop is large; the cache keeps the most recently used ones."""
    import shutil

    for name in ("hero2", "hero3"):
        if not (setup["avatars"] / name).exists():
            shutil.copytree(setup["avatars"] / "hero", setup["avatars"] / name)
    client = await _client(aiohttp_client, setup, lipsync_avatar_cache=2)
    service = client.app[LIPSYNC]
    for name in ("hero", "hero2", "hero", "hero3"):
        r = await client.post("/session-2d", json={"avatar_id": name, "lipsync": "onnx"})
        assert r.status == 200, await r.text()
        await client.delete(f"/session-2d/{(await r.json())['session_id']}")
    assert service.cached_avatars() == ["hero", "hero3"]
