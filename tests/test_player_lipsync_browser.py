"""The browser player with `?lipsync=onnx` against a real server running a small ONNX model:
patch frames arrive, are decoded and composited over the idle frame while the audio plays."""

from __future__ import annotations

import numpy as np
import pytest

from tests.browser import browser_page, canvas_rgb, chromium_path, open_player, stats
from tests.roi_cases import audio_driven_model
from tests.server_support import avatars_with_hero

pytestmark = pytest.mark.skipif(chromium_path() is None,
                                reason="no Chromium binary (install Debian's `chromium`)")

TEXT = "Hello there! Barbara and Bob ate a big apple pie by the river."


async def test_player_composites_model_patches(aiohttp_server, tmp_path, hero_dir, hero):
    from server.app import create_app
    from server.config import ServerConfig

    avatars = avatars_with_hero(hero_dir, tmp_path / "avatars")
    model = audio_driven_model(tmp_path / "m.onnx")
    server = await aiohttp_server(create_app(ServerConfig(
        avatars_dir=avatars, model=model, onnx_provider="cpu")))
    errors: list[str] = []
    async with browser_page(errors) as page:
        await open_player(page, f"{server.make_url('/')}?avatar=hero&lipsync=onnx")
        s = await stats(page)
        assert s["hello"]["lipsync"] == "onnx" and s["hello"]["patch_fps"] == hero.fps
        await page.evaluate("avatarkitPlayer.seek(1.0)")  # hold the idle loop on one frame
        await page.wait_for_timeout(60)
        idle = await canvas_rgb(page)
        await page.fill("#text", TEXT)
        await page.click("#speak")
        await page.wait_for_function("avatarkitPlayer.stats.patchOnScreen !== null",
                                     timeout=10000)
        with_patch = []
        for _ in range(6):
            if (await stats(page))["patchOnScreen"] is not None:
                with_patch.append(await canvas_rgb(page))
            await page.wait_for_timeout(90)
        s = await stats(page)
        assert s["patchFrames"] >= 20 and s["patchBytes"] > 20 * 1000 and s["patchErrors"] == 0
        assert s["patchesShown"] >= 5, s
        assert s["visemeEvents"] > 20  # visemes still flow for the fallback
        # the composited patch changes the mouth box and nothing far from it
        roi = await page.evaluate("avatarkitPlayer.roi")
        m = await page.evaluate("avatarkitPlayer.affine")
        x = int(m[0] * roi["x"] + m[1] * roi["y"] + m[2])
        y = int(m[3] * roi["x"] + m[4] * roi["y"] + m[5])
        rows, cols = slice(y - 4, y + roi["h"] + 4), slice(x - 4, x + roi["w"] + 4)
        assert with_patch
        for img in with_patch:
            d = np.abs(img.astype(int) - idle.astype(int))
            assert d[rows, cols].mean() > 2.0
            d[rows, cols] = 0
            assert d.max() <= 1
    assert not errors, errors
