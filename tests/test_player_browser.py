"""The browser player (server/static/) in headless Chromium, against real avatar assets.

- Drawing: with a pose held, the canvas equals what the Python renderer
  (avatarkit.render.variants) draws into the same idle frame, for sprites and the WebGL mesh.
- Live: the real server on a loopback port; the page loads the avatar, speaks, plays the
  streamed audio, moves the mouth by the audio clock, shows latency, and Stop ends it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from aiohttp import web

from avatarkit.render.avatar import load_avatar
from avatarkit.render.variants import make_variant
from avatarkit.render.weights import weight_vector
from tests.browser import STATIC, browser_page, canvas_rgb, chromium_path, open_player, stats
from tests.server_support import avatars_with_hero

pytestmark = pytest.mark.skipif(chromium_path() is None,
                                reason="no Chromium binary (install Debian's `chromium`)")


@pytest.fixture(scope="module")
def avatars(tmp_path_factory, hero_dir):
    """An avatars folder holding `hero` (the session's example avatar)."""
    return avatars_with_hero(hero_dir, tmp_path_factory.mktemp("avatars"))


def static_app(avatars) -> web.Application:
    """Only files: the player at / and the avatar folder (no session, no speech)."""
    app = web.Application()

    async def index(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html")

    app.router.add_get("/", index)
    app.router.add_static("/avatars/hero/", avatars / "hero")
    app.router.add_static("/static/", STATIC)
    return app


def box_of(avatar, index: int) -> tuple[slice, slice]:
    """Rows and columns of the frame around the tracked mouth ROI (with a margin)."""
    m = avatar.roi_affine(index)
    x, y = m[0, 2], m[1, 2]
    r = avatar.roi
    return slice(int(y) - 4, int(y) + r.h + 4), slice(int(x) - 4, int(x) + r.w + 4)


POSES = [{"AI": 1.0}, {"MBP": 1.0}, {"O": 0.6, "E": 0.4}, {"AI": 0.3, "Rest": 0.7}, {"FV": 1.0},
         {"E": 1.0}, {"L": 0.7, "TH": 0.3}]  # E, L, TH: the interior layers (lower teeth: jaw)


async def test_canvas_matches_python_renderer(aiohttp_server, avatars):
    server = await aiohttp_server(static_app(avatars))
    avatar = load_avatar(avatars / "hero")
    errors: list[str] = []
    async with browser_page(errors) as page:
        # The sprite pass runs without requestVideoFrameCallback: the currentTime fallback.
        await page.add_init_script("if (location.search.includes('variant=sprite')) "
                                   "delete HTMLVideoElement.prototype.requestVideoFrameCallback;")
        for variant, reference in (("sprite", "sprites"), ("mesh", "mesh")):
            ref = make_variant(avatar, reference)
            await page.goto(f"{server.make_url('/')}?avatar=hero&assets=/avatars/hero/"
                            f"&variant={variant}")
            await page.wait_for_function("window.avatarkitPlayer.stats.renders > 2",
                                         timeout=10000)
            if variant == "mesh":
                # Canvas renders run on animation frames, video frame callbacks on decoded
                # frames: on a busy machine the first renders can come before the first frame.
                await page.wait_for_function("window.avatarkitPlayer.stats.videoFrames > 0",
                                             timeout=10000)
            s = await stats(page)
            assert s["renderer"] == variant and s["avatar"] == "hero"
            assert (s["videoFrames"] == 0) == (variant == "sprite"), s["videoFrames"]
            # 1.2 s into the loop = frame 30 at 25 fps; the overlay must follow its track.
            await page.evaluate("avatarkitPlayer.seek(1.2)")
            await hold(page, {"Rest": 1})
            s = await stats(page)
            assert s["trackFrame"] == 30 and s["mouthActive"] is False
            idle = await canvas_rgb(page)
            assert idle.shape == (avatar.size[1], avatar.size[0], 3)
            rows, cols = box_of(avatar, 30)
            for pose in POSES:
                await hold(page, pose)
                got = await canvas_rgb(page)
                shown = await stats(page)  # in failure messages: which frame and pose it drew
                assert shown["trackFrame"] == 30, (variant, pose, shown)
                want = ref.draw(idle, 30, weight_vector(pose))
                moved = np.abs(want.astype(int) - idle.astype(int))[rows, cols].mean()
                diff = np.abs(got.astype(int) - want.astype(int))
                assert moved > 0.5, f"{pose}: the reference barely moves the mouth ({moved:.2f})"
                # Identical outside the mouth box, within a few levels inside it (the mesh
                # differs from OpenCV's rasteriser on a one-pixel rim of the opening).
                outside = diff.copy()
                outside[rows, cols] = 0
                assert outside.max() <= 1, (variant, pose)
                inside = diff[rows, cols]
                assert inside.mean() < 0.15 * moved, (variant, pose, inside.mean(), moved,
                                                      shown["weights"], shown["renders"])
                assert np.percentile(inside, 99) <= (3 if variant == "sprite" else 12), (
                    variant, pose)
            await hold(page, None)
            assert (await stats(page))["weights"] == {"Rest": 1}
    assert not errors, errors


async def hold(page, pose: dict | None) -> None:
    """Hold a pose and wait until the canvas has been drawn with it twice.

    The render count is read in the same page task as the hold: read in a separate call
    first, frames drawn between the two calls (a busy machine) would count, and the canvas
    could still show the previous pose."""
    n = await page.evaluate(f"avatarkitPlayer.hold({json.dumps(pose)}), "
                            "avatarkitPlayer.stats.renders")
    await page.wait_for_function(f"avatarkitPlayer.stats.renders >= {n + 2}")


def mouth_box(roi: dict, affine: list[float]) -> tuple[slice, slice]:
    """Rows and columns of the canvas around the mouth ROI on the frame shown."""
    x = affine[0] * roi["x"] + affine[1] * roi["y"] + affine[2]
    y = affine[3] * roi["x"] + affine[4] * roi["y"] + affine[5]
    return slice(int(y) - 4, int(y) + roi["h"] + 4), slice(int(x) - 4, int(x) + roi["w"] + 4)


LONG_TEXT = ("Hello there! Barbara and Bob ate a big apple pie, and then they walked all the way "
             "home along the river to sleep for a very long time.")


async def test_live_speak_moves_mouth_and_stop_ends_it(aiohttp_server, avatars):
    from server.app import create_app
    from server.config import ServerConfig

    # With a bearer token: the page passes ?token= along to every request and the socket.
    server = await aiohttp_server(create_app(ServerConfig(avatars_dir=avatars, token="s3cret")))
    errors: list[str] = []
    async with browser_page(errors) as page:
        await open_player(page, f"{server.make_url('/')}?avatar=hero&variant=mesh&token=s3cret")
        s = await stats(page)
        assert s["hello"]["avatar_id"] == "hero" and s["renderer"] == "mesh"
        # Hold the idle loop on one frame so any change in the mouth box is the mouth's.
        await page.evaluate("avatarkitPlayer.seek(1.0)")
        await page.wait_for_timeout(60)
        roi = await page.evaluate("avatarkitPlayer.roi")
        rows, cols = mouth_box(roi, await page.evaluate("avatarkitPlayer.affine"))
        idle = await canvas_rgb(page)

        def change(img: np.ndarray) -> tuple[float, float]:
            d = np.abs(img.astype(int) - idle.astype(int))
            inside = float(d[rows, cols].mean())
            d[rows, cols] = 0
            return inside, float(d.max())

        await page.fill("#text", LONG_TEXT)
        await page.click("#speak")
        await page.wait_for_function("avatarkitPlayer.stats.playingSources > 0", timeout=10000)
        samples = []
        for _ in range(8):
            await page.wait_for_timeout(110)
            img = await canvas_rgb(page)
            samples.append((change(img), await stats(page)))
        s = await stats(page)
        # Audio: binary frames arrived, were scheduled as PCM, and Web Audio rendered sound.
        assert s["audioFrames"] >= 5 and s["samplesScheduled"] > 0.5 * 22050
        assert s["audioPeak"] > 0.02, s["audioPeak"]
        assert s["visemeEvents"] > 20 and s["visemesApplied"] > 10
        assert s["utterancesStarted"] == 1 and s["utterancesEnded"] == 0
        # The mouth box of the canvas moved while audio played; nothing else did.
        moved = [inside for (inside, _), st in samples if st["mouthActive"]]
        assert len(moved) >= 5, [st["weights"] for _, st in samples]
        assert max(moved) > 2.0 and float(np.median(moved)) > 0.5, moved
        assert max(outside for (_, outside), _ in samples) <= 1
        # Latency readout: numbers from the click to the first audio and viseme frame.
        for el in ("#lat-audio", "#lat-viseme", "#lat-audible"):
            text = await page.text_content(el)
            assert text.endswith(" ms") and float(text[:-3]) >= 0, (el, text)
        assert s["latency"]["firstAudioMs"] is not None

        # Stop (barge-in): the server ends the utterance as interrupted, the audio stops and
        # the mouth ramps back to Rest - the canvas is the idle frame again.
        await page.click("#stop")
        await page.wait_for_function(
            "(() => { const s = avatarkitPlayer.stats; return s.lastEnd && s.lastEnd.interrupted"
            " && s.playingSources === 0 && s.weights.Rest === 1 && !s.mouthActive; })()",
            timeout=5000)
        s = await stats(page)
        assert s["lastEnd"]["reason"] == "stop" and s["utterancesEnded"] == 1
        await page.wait_for_timeout(60)
        inside, outside = change(await canvas_rgb(page))
        assert inside < 0.05 and outside <= 1, (inside, outside)
    assert not errors, errors


async def test_player_joins_a_session_fed_with_pushed_audio(aiohttp_server, aiohttp_client,
                                                            avatars):
    """A voice pipeline pushes speech into an `audio` session; the page, opened with
    ?session=ID, plays it and moves the mouth from the server's listened visemes."""
    from avatarkit.tts.espeak_voice import EspeakOptions, EspeakProvider
    from server.app import create_app
    from server.config import ServerConfig

    voice = EspeakProvider(EspeakOptions())
    pcm = b"".join([c.pcm async for c in voice.stream(LONG_TEXT)])
    server = await aiohttp_server(create_app(ServerConfig(avatars_dir=avatars)))
    client = await aiohttp_client(server)
    r = await client.post("/session-2d", json={"avatar_id": "hero", "provider": "audio",
                                               "sample_rate": voice.sample_rate})
    sid = (await r.json())["session_id"]
    errors: list[str] = []
    async with browser_page(errors) as page:
        await open_player(page, f"{server.make_url('/')}?avatar=hero&session={sid}")
        assert (await stats(page))["hello"]["provider"] == "audio"
        ws = await client.ws_connect(f"/session-2d/{sid}/ws")  # the pipeline's socket
        await ws.send_str(json.dumps({"type": "audio_start", "text": LONG_TEXT}))
        step = voice.sample_rate // 10 * 2
        for off in range(0, len(pcm), step):  # 100 ms frames, faster than real time
            await ws.send_bytes(pcm[off:off + step])
        await ws.send_str(json.dumps({"type": "audio_end"}))
        await page.wait_for_function(
            "avatarkitPlayer.stats.visemeEvents > 20 && avatarkitPlayer.stats.audioFrames >= 5",
            timeout=20000)
        s = await stats(page)
        assert s["utterancesStarted"] == 1 and s["session"] == sid
        await ws.close()
    assert not errors, errors


async def test_player_talks_to_an_openai_realtime_session(aiohttp_server, avatars):
    """provider=openai: the Talk button streams the microphone (Chromium's fake device, a
    periodic beep) as user_audio; the fake Realtime server's VAD hears it and answers, and
    the page plays the answer as a new utterance."""
    from server.app import create_app
    from server.config import ServerConfig
    from tests.fakes.openai_realtime import FakeRealtime

    async with FakeRealtime(api_key="sk-browser") as fake:
        server = await aiohttp_server(create_app(ServerConfig(
            avatars_dir=avatars, openai_api_key="sk-browser", openai_ws_base_url=fake.base_url)))
        errors: list[str] = []
        async with browser_page(errors) as page:
            await open_player(page, f"{server.make_url('/')}?avatar=hero&provider=openai",
                              rendering=False)
            assert await page.is_visible("#mic")
            await page.click("#mic")
            await page.wait_for_function("avatarkitPlayer.stats.micChunks > 5", timeout=10000)
            appended = fake.events("input_audio_buffer.append")
            assert appended and len(appended[0]["audio"]) > 1000
            await page.wait_for_function("avatarkitPlayer.stats.utterancesStarted >= 1"
                                         " && avatarkitPlayer.stats.audioFrames > 3",
                                         timeout=20000)
            assert fake.responses and fake.responses[0].text == "I hear you."
            await page.click("#mic")  # mute
        assert not errors, errors
