"""POST /avatarize-2d: a real build of examples/hero.jpg in a worker process, bad photos,
size limits."""

from __future__ import annotations

import asyncio
import json
import os
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


def _multipart(*parts: tuple[str, bytes], boundary: str = "b0undary") -> bytes:
    out = b""
    for name, data in parts:
        out += (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                f'filename="{name}.jpg"\r\nContent-Type: image/jpeg\r\n\r\n').encode()
        out += data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


MULTIPART = {"Content-Type": "multipart/form-data; boundary=b0undary"}


async def test_the_upload_limit_counts_every_part(aiohttp_client, avatars_dir):
    """60 KB in a field that is not the photo, then a small photo: over a 50 KB limit."""
    client = await aiohttp_client(create_app(ServerConfig(avatars_dir=avatars_dir,
                                                          max_upload_bytes=50_000)))

    async def chunked(body: bytes):  # no Content-Length: only counting can stop it
        for i in range(0, len(body), 8192):
            yield body[i:i + 8192]

    body = _multipart(("padding", b"p" * 60_000), ("hero_image", HERO.read_bytes()[:2000]))
    r = await client.post("/avatarize-2d", data=chunked(body), headers=MULTIPART)
    assert r.status == 413 and (await r.json())["error"] == "payload_too_large"
    r = await client.post("/avatarize-2d", data=body, headers=MULTIPART)  # with a length
    assert r.status == 413


async def test_concurrent_uploads_are_bounded(aiohttp_client, avatars_dir):
    from server.state import LIMITS

    client = await aiohttp_client(create_app(ServerConfig(avatars_dir=avatars_dir,
                                                          max_pending_builds=1)))
    release = asyncio.Event()

    async def slow():
        yield _multipart(("notes", b"n" * 1000))[:-20]
        await release.wait()
        yield _multipart(("notes", b"n" * 1000))[-20:]

    first = asyncio.create_task(client.post("/avatarize-2d", data=slow(), headers=MULTIPART))
    for _ in range(200):  # until the server is reading the first upload
        if client.app[LIMITS].uploads_in_flight:
            break
        await asyncio.sleep(0.01)
    r = await client.post("/avatarize-2d", data=_multipart(("notes", b"x")), headers=MULTIPART)
    body = await r.json()
    assert r.status == 429 and body["error"] == "busy" and "retry" in body["message"]
    release.set()
    assert (await first).status == 400  # no hero_image field: done, and the slot is free
    r = await client.post("/avatarize-2d", data=_multipart(("notes", b"x")), headers=MULTIPART)
    assert r.status == 400


async def test_a_build_past_its_time_limit_is_stopped(aiohttp_client, avatars_dir):
    import multiprocessing

    from server.state import BUILDER

    before = {p.pid for p in multiprocessing.active_children()}
    client = await aiohttp_client(create_app(ServerConfig(
        avatars_dir=avatars_dir, build_timeout_s=0.05, blend_worker=False)))
    r = await client.post("/avatarize-2d", data=_form(HERO.read_bytes() + b"\0"))
    body = await r.json()
    assert r.status == 504 and body["error"] == "build_timeout", body
    assert "longer than 0.05 s" in body["message"]
    for _ in range(100):  # the worker it started is killed, not left building
        if not {p.pid for p in multiprocessing.active_children()} - before:
            break
        await asyncio.sleep(0.05)
    assert not {p.pid for p in multiprocessing.active_children()} - before
    assert client.app[BUILDER]._locks == {}  # nothing kept per avatar id
    assert (await client.get("/health")).status == 200


@pytest.mark.parametrize("workers", [1, 2])
async def test_builds_beside_one_that_overran_answer_for_themselves(aiohttp_client, tmp_path,
                                                                    workers):
    """An overrun stops the whole worker pool; the builds waiting for it or running in it
    beside the overrun then get their own run and their own time limit, and answer 504 for
    themselves - not 500 "the build worker died"."""
    import multiprocessing

    before = {p.pid for p in multiprocessing.active_children()}
    client = await aiohttp_client(create_app(ServerConfig(
        avatars_dir=tmp_path, build_timeout_s=0.3, build_workers=workers, blend_worker=False)))
    replies = await asyncio.gather(*(
        client.post("/avatarize-2d", data=_form(HERO.read_bytes() + b"\0" * n))
        for n in (1, 2)))
    bodies = [await r.json() for r in replies]
    assert [(r.status, b["error"]) for r, b in zip(replies, bodies, strict=True)] == [
        (504, "build_timeout")] * 2, bodies
    for _ in range(100):
        if not {p.pid for p in multiprocessing.active_children()} - before:
            break
        await asyncio.sleep(0.05)
    assert not {p.pid for p in multiprocessing.active_children()} - before
    metrics = await (await client.get("/metrics")).text()
    assert 'avatarkit_avatar_builds_total{status="failed"} 2' in metrics


async def test_uploaded_avatars_beyond_the_limit_are_evicted(aiohttp_client, tmp_path):
    """The least recently uploaded avatar goes first, never one a session uses, never a
    folder of --avatars that was not uploaded."""
    from types import SimpleNamespace

    from server.state import BUILDER
    from tests.server_support import make_avatar

    make_avatar(tmp_path, "hero")
    client = await aiohttp_client(create_app(ServerConfig(avatars_dir=tmp_path,
                                                          max_uploaded_avatars=2,
                                                          client_upload_rate=0)))

    async def fake_build(photo, out, avatar_id):  # the real build is tested above
        make_avatar(out, avatar_id)
        return SimpleNamespace(status="built")

    client.app[BUILDER].build = fake_build
    ids = []
    for n in range(3):
        r = await client.post("/avatarize-2d", data=_form(b"photo %d" % n))
        ids.append((await r.json())["avatar_id"])
        if n == 0:  # a session watches the first one
            r = await client.post("/session-2d", json={"avatar_id": ids[0]})
            assert r.status == 200
        os.utime(tmp_path / ids[n] / ".uploaded", (1000 + n, 1000 + n))
    status = {i: (await client.get(f"/avatars/{i}")).status for i in ids}
    assert status == {ids[0]: 200, ids[1]: 404, ids[2]: 200}
    assert not (tmp_path / ids[1]).exists()
    assert (await client.get("/avatars/hero")).status == 200
    r = await client.post("/avatarize-2d", data=_form(b"photo 3"))
    assert r.status == 200
    assert (await client.get(f"/avatars/{ids[0]}")).status == 200  # still in use
    assert (await client.get(f"/avatars/{ids[2]}")).status == 404


async def test_uploads_per_client_are_rate_limited(aiohttp_client, avatars_dir):
    client = await aiohttp_client(create_app(ServerConfig(avatars_dir=avatars_dir,
                                                          client_upload_rate=1.0)))
    replies = [await client.post("/avatarize-2d", data=_multipart(("notes", b"x")),
                                 headers=MULTIPART) for _ in range(4)]
    assert [r.status for r in replies] == [400, 400, 400, 429]  # a burst of 3, then 1/min
    assert (await replies[3].json())["error"] == "rate_limited"
