"""What a hostile website can get from the browser player or do to a local server, in
headless Chromium over real sockets.

- The player sends the server's token to this server only: not to an `?assets=` base on
  another origin, nor to an `interior_layers.file` URL in a meshdef.
- A page on another origin cannot open a session (a "simple" text/plain POST needs no
  preflight) nor attach a WebSocket to one on a token-less server.
"""

from __future__ import annotations

import json
import shutil

import pytest
from aiohttp import web

from server.app import create_app
from server.config import ServerConfig
from tests.browser import browser_page, chromium_path, stats
from tests.server_support import avatars_with_hero

pytestmark = pytest.mark.skipif(chromium_path() is None,
                                reason="no Chromium binary (install Debian's `chromium`)")

TOKEN = "s3cret-server-token"


@pytest.fixture(scope="module")
def avatars(tmp_path_factory, hero_dir):
    return avatars_with_hero(hero_dir, tmp_path_factory.mktemp("avatars"))


def evil_app(avatars, seen: list[dict]) -> web.Application:
    """Another origin that serves the avatar's files and lets any page send it any header
    (as an attacker's server would), recording every request it gets."""

    @web.middleware
    async def record(request: web.Request, handler):  # noqa: ANN001, ANN202
        seen.append({"method": request.method, "path": request.path_qs,
                     "authorization": request.headers.get("Authorization", "")})
        cors = {"Access-Control-Allow-Origin": "*",
                "Access-Control-Allow-Headers": "Authorization, Content-Type",
                "Access-Control-Allow-Methods": "GET, POST"}
        if request.method == "OPTIONS":
            return web.Response(status=204, headers=cors)
        response = await handler(request)
        response.headers.update(cors)
        return response

    app = web.Application(middlewares=[record])
    app.router.add_static("/avatars/hero/", avatars / "hero")
    return app


async def test_the_token_goes_to_this_server_only(aiohttp_server, avatars, tmp_path):
    seen: list[dict] = []
    evil = await aiohttp_server(evil_app(avatars, seen))
    # an avatar on the real server whose meshdef points its interior layers elsewhere
    root = tmp_path / "avatars"
    shutil.copytree(avatars / "hero", root / "hero")
    meshdef = json.loads((root / "hero" / "meshdef.json").read_text())
    assert meshdef["interior_layers"]["file"]
    meshdef["interior_layers"]["file"] = str(evil.make_url(
        "/avatars/hero/" + meshdef["interior_layers"]["file"]))
    (root / "hero" / "meshdef.json").write_text(json.dumps(meshdef))
    server = await aiohttp_server(create_app(ServerConfig(avatars_dir=root, token=TOKEN)))
    base = server.make_url("/")
    errors: list[str] = []
    async with browser_page(errors) as page:
        # 1. the asset base on another origin (files only, no session)
        await page.goto(f"{base}?token={TOKEN}&avatar=hero&variant=mesh"
                        f"&assets={evil.make_url('/avatars/hero/')}")
        await page.wait_for_function("window.avatarkitPlayer.stats.renders > 2", timeout=15000)
        # 2. assets and session from this server, the interior layers from the other origin
        await page.goto(f"{base}?token={TOKEN}&avatar=hero&variant=mesh")
        await page.wait_for_function("window.avatarkitPlayer.stats.renders > 2"
                                     " && avatarkitPlayer.stats.ws === 'open'", timeout=15000)
        s = await stats(page)
        assert s["renderer"] == "mesh" and s["hello"]["avatar_id"] == "hero", s["errors"]
    gets = [r for r in seen if r["method"] == "GET"]
    assert any(r["path"].endswith("/idle.mp4") for r in gets)  # the player did load from it
    assert any(r["path"].endswith(meshdef["interior_layers"]["file"].rsplit("/", 1)[1])
               for r in gets)
    leaked = [r for r in seen if TOKEN in r["authorization"] or TOKEN in r["path"]]
    assert not leaked, leaked
    assert not [e for e in errors if "pageerror" in e], errors


async def test_the_socket_uses_the_session_token(aiohttp_server, avatars):
    """The player's WebSocket URL carries the session's own token, not the server's."""
    urls: list[str] = []
    server = await aiohttp_server(create_app(ServerConfig(avatars_dir=avatars, token=TOKEN)))
    errors: list[str] = []
    async with browser_page(errors) as page:
        page.on("websocket", lambda ws: urls.append(ws.url))
        await page.goto(f"{server.make_url('/')}?token={TOKEN}&avatar=hero")
        await page.wait_for_function("window.avatarkitPlayer.stats.ws === 'open'",
                                     timeout=15000)
    assert len(urls) == 1 and "token=" in urls[0] and TOKEN not in urls[0], urls


ATTACK = """<!doctype html><script>
window.result = (async () => {
  const out = {};
  try {
    await fetch(%(target)s + "/session-2d", {method: "POST", mode: "no-cors",
      headers: {"Content-Type": "text/plain"}, body: JSON.stringify({avatar_id: "hero"})});
    out.post = "sent";
  } catch (e) { out.post = "failed: " + e; }
  out.ws = await new Promise((resolve) => {
    const ws = new WebSocket(%(ws)s);
    ws.onmessage = (ev) => resolve("message: " + ev.data.slice(0, 40));
    ws.onerror = () => resolve("error");
    setTimeout(() => resolve("timeout"), 5000);
  });
  return out;
})();
</script>"""


async def test_a_foreign_page_cannot_drive_a_local_server(aiohttp_server, avatars):
    server = await aiohttp_server(create_app(ServerConfig(avatars_dir=avatars)))  # no token
    http = server.make_url("/")
    own = await _post_session(server)  # a session whose id the attacker learnt
    target = str(http).rstrip("/")
    ws_url = target.replace("http://", "ws://") + f"/session-2d/{own['session_id']}/ws"

    async def attack(_request: web.Request) -> web.Response:
        return web.Response(text=ATTACK % {"target": json.dumps(target),
                                           "ws": json.dumps(ws_url)},
                            content_type="text/html")

    site = web.Application()
    site.router.add_get("/", attack)
    evil = await aiohttp_server(site)
    errors: list[str] = []
    async with browser_page(errors) as page:
        await page.goto(str(evil.make_url("/")))
        result = await page.evaluate("window.result")
    health = await _health(server)
    assert result["post"] == "sent"  # the browser did send it (an opaque response)
    assert health["sessions"] == 1, health  # ... and no session was made
    assert result["ws"] == "error" and health["clients"] == 0, (result, health)


async def _post_session(server) -> dict:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        r = await http.post(server.make_url("/session-2d"), json={"avatar_id": "hero"})
        return await r.json()


async def _health(server) -> dict:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        r = await http.get(server.make_url("/health"))
        return await r.json()
