"""Drive the browser player in the system Chromium (Debian's `chromium`), never a downloaded
browser; the tests skip only where no Chromium binary exists."""

from __future__ import annotations

import base64
import io
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
from PIL import Image

STATIC = Path(__file__).resolve().parent.parent / "server" / "static"

# Headless audio: autoplay without a gesture; audio goes to a fake output device, so the
# Web Audio clock runs at real speed without a sound card.
CHROMIUM_ARGS = [
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--disable-gpu-sandbox",
    "--enable-unsafe-swiftshader",
    "--mute-audio",
]


def chromium_path() -> str | None:
    """The system Chromium: $AVATARKIT_CHROMIUM, `chromium` on PATH, or /usr/bin/chromium."""
    for candidate in (os.environ.get("AVATARKIT_CHROMIUM"), shutil.which("chromium"),
                      shutil.which("chromium-browser"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


@asynccontextmanager
async def browser_page(errors: list[str]) -> AsyncIterator:
    """A fresh page in headless Chromium; page errors and console errors land in `errors`."""
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1000, "height": 800})
            page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
            page.on("console", lambda m: errors.append(f"console: {m.text}")
                    if m.type == "error" else None)
            yield page
        finally:
            await browser.close()


async def canvas_rgb(page, selector: str = "#stage") -> np.ndarray:
    """The canvas as an (h, w, 3) uint8 array (lossless PNG from toDataURL)."""
    url = await page.evaluate(f"document.querySelector('{selector}').toDataURL('image/png')")
    png = base64.b64decode(url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


async def stats(page) -> dict:
    return await page.evaluate("window.avatarkitPlayer.stats")


async def open_player(page, url: str, *, rendering: bool = True) -> None:
    """Load the player at `url` and wait until its socket is open and the session's hello
    has arrived (the socket opens a moment before it: tests read the hello), and, with
    `rendering`, it has drawn a few frames."""
    await page.goto(url)
    await page.wait_for_function(
        "window.avatarkitPlayer && avatarkitPlayer.stats.ws === 'open'"
        " && avatarkitPlayer.stats.hello !== null"
        + (" && avatarkitPlayer.stats.renders > 2" if rendering else ""), timeout=15000)
