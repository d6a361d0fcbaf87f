"""POST /avatarize-2d: a real build of examples/hero.jpg in a worker process, bad photos,
size limits."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from server.app import create_app
from server.config import ServerConfig

HERO = Path(__file__).resolve().parents[1] / "examples" / "hero.jpg"


@pytest.fixture(scope="module")
def avatars_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("avatars")


def _form(data: bytes, name: str = "hero.jpg", field: str = "hero_image") -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field(field, data, filename=name, content_type="image/jpeg")
    return form


async def test_upload_builds_an_avatar_once(aiohttp_client, avatars_dir):
    client = await aiohttp_client(create_app(ServerConfig(avatars_dir=avatars_dir)))
    photo = HERO.read_bytes()
    r = await client.post("/avatarize-2d", data=_form(photo))
    body = await r.json()
    assert r.status == 200, body
    aid = body["avatar_id"]
    assert aid.startswith("a") and len(aid) == 17
    assets = body["lipsync_assets"]
    assert assets["type"] == "visemes" and set(assets["roi"]) == {"x", "y", "w", "h"}
    # every URL serves the built file
    idle = await (await client.get(body["idle_url"])).read()
    assert idle[4:8] == b"ftyp"
    atlas = await client.get(assets["atlas_url"])
    assert (await atlas.read())[:8] == b"\x89PNG\r\n\x1a\n"
    track = await (await client.get(assets["track_url"])).json(content_type=None)
    assert track
    manifest = await (await client.get(body["manifest_url"])).json(content_type=None)
    assert manifest["roi"] == assets["roi"]
    for key in ("meshdef_url", "mask_url", "interior_url", "atlas_json_url"):
        assert (await client.get(assets[key])).status == 200, key
    # the same photo again: same avatar, no second build
    r = await client.post("/avatarize-2d", data=_form(photo, "again.jpg"))
    assert (await r.json())["avatar_id"] == aid
    metrics = await (await client.get("/metrics")).text()
    assert 'avatarkit_avatar_builds_total{status="built"} 1' in metrics
    assert 'avatarkit_avatar_builds_total{status="skipped"} 1' in metrics
    # and it can speak
    r = await client.post("/session-2d", json={"avatar_id": aid})
    assert r.status == 200
    # a server started on the same folder serves it (--avatars DIR)
    assert (await client.get(f"/avatars/{aid}")).status == 200


@pytest.mark.parametrize("data,name,needle", [
    (HERO.read_bytes()[:3000], "cut.jpg", "damaged or incomplete"),
    (b"hello, not a photo at all" * 10, "notes.jpg", "not an image file"),
    # Pillow decodes BMP and TIFF; uploads reach only the JPEG, PNG and WebP decoders
    (b"BM" + bytes(60), "hero.bmp", "BMP images are not accepted - convert it to JPEG, PNG"),
    (b"II*\0" + bytes(60), "hero.jpg", "TIFF images are not accepted"),
])
async def test_bad_photos_answer_json_with_the_reason(aiohttp_client, avatars_dir, data, name,
                                                      needle):
    client = await aiohttp_client(create_app(ServerConfig(avatars_dir=avatars_dir)))
    r = await client.post("/avatarize-2d", data=_form(data, name))
    body = await r.json()
    assert r.status == 422 and body["error"] == "bad_photo"
    assert needle in body["message"] and name in body["message"]
    assert (await client.get("/health")).status == 200


async def test_upload_limits(aiohttp_client, avatars_dir):
    client = await aiohttp_client(create_app(ServerConfig(avatars_dir=avatars_dir,
                                                          max_upload_bytes=50_000)))
    r = await client.post("/avatarize-2d", data=_form(b"\xff" * 200_000))
    assert r.status == 413 and (await r.json())["error"] == "payload_too_large"
    r = await client.post("/avatarize-2d", data=_form(b"x", field="photo"))
    assert r.status == 400 and (await r.json())["error"] == "no_photo"
    r = await client.post("/avatarize-2d", data=json.dumps({"a": 1}),
                          headers={"Content-Type": "application/json"})
    assert r.status == 400 and (await r.json())["error"] == "no_photo"
