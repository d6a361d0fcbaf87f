"""Fuzzed HTTP bodies against one real server: every JSON route gets wrong types, deep and
huge JSON, invalid UTF-8 and stray content types. Invariant: a 4xx JSON error (or success),
never a 500, a traceback in the log, a stuck task, or a dead session for other clients."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.fuzz_support import FUZZ, LiveServer, check_error_reply, deep_json, json_values
from tests.server_support import make_avatar


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    avatars = tmp_path_factory.mktemp("avatars")
    make_avatar(avatars)
    live = LiveServer(avatars).start()
    yield live
    live.stop()


# a body: JSON text of any shape, raw bytes (invalid UTF-8 included), or nesting/size extremes
bodies = st.one_of(
    json_values.map(json.dumps),
    st.dictionaries(st.sampled_from(["avatar_id", "provider", "voice_id", "lang", "lipsync",
                                     "sample_rate", "text", "barge_in"]),
                    json_values, max_size=5).map(json.dumps),
    st.fixed_dictionaries({"avatar_id": st.just("hero")}, optional={
        "provider": st.sampled_from(["espeak", "audio", "elevenlabs", "openai", "x"]),
        "voice_id": st.text(max_size=70), "lang": st.text(max_size=12),
        "lipsync": st.sampled_from(["visemes", "onnx", "", "x"]),
        "sample_rate": st.integers(-10, 10**6) | st.floats() | st.booleans(),
    }).map(json.dumps),
    st.binary(max_size=200),
    st.sampled_from([deep_json(100_000), deep_json(100_000, "object"), deep_json(990),
                     '"' + "a" * (1024 * 1024) + '"', "\udcff", "", "null", "NaN"]),
)
content_types = st.sampled_from(["application/json", "application/json; charset=latin-1",
                                 "text/plain", "multipart/form-data", ""])


async def _post(server: LiveServer, path: str, body: str | bytes, ctype: str) -> tuple[int, bytes]:
    data = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    headers = {"Content-Type": ctype} if ctype else {}
    r = await server.http.post(path, data=data, headers=headers)
    return r.status, await r.read()


def _check(status: int, raw: bytes) -> dict[str, Any] | None:
    if status == 200:
        return json.loads(raw)
    check_error_reply(status, raw)
    return None


@FUZZ
@given(body=bodies, ctype=content_types)
@example(body=deep_json(100_000), ctype="application/json")  # was a 500 with a traceback
def test_create_session_bodies(server, body, ctype):
    status, raw = server.call(_post, server, "/session-2d", body, ctype)
    made = _check(status, raw)
    if made is not None:
        async def delete() -> int:
            return (await server.http.delete(f"/session-2d/{made['session_id']}")).status
        assert server.call(delete) == 200
    server.check_healthy()


speak_bodies = bodies | st.fixed_dictionaries(
    {"text": st.text(min_size=0, max_size=60)},
    optional={"barge_in": json_values, "id": json_values}).map(json.dumps)


@FUZZ
@given(body=speak_bodies, ctype=content_types,
       then=st.sampled_from(["stop", "stop twice", "delete", "speak again"]))
def test_speak_and_stop_bodies(server, body, ctype, then):
    async def run() -> None:
        sid = await server.new_session()
        status, raw = await _post(server, f"/session-2d/{sid}/speak", body, ctype)
        _check(status, raw)
        stops = {"stop": 1, "stop twice": 2}.get(then, 0)
        for _ in range(stops):
            r = await server.http.post(f"/session-2d/{sid}/stop",
                                       data=body.encode("utf-8", "surrogatepass")
                                       if isinstance(body, str) else body)
            assert r.status == 200 and (await r.json())["ok"] is True
        if then == "speak again":  # the session still speaks after whatever came before
            r = await server.http.post(f"/session-2d/{sid}/speak",
                                       json={"text": "Hi.", "barge_in": True})
            assert r.status == 200, await r.text()
        r = await server.http.delete(f"/session-2d/{sid}")
        assert r.status == 200
        r = await server.http.delete(f"/session-2d/{sid}")  # twice: 404, not a crash
        check_error_reply(r.status, await r.read())

    server.call(run)
    server.check_healthy()


@FUZZ
@given(path=st.text(max_size=30), method=st.sampled_from(["GET", "POST", "DELETE", "PUT"]))
@example(path="H\x00", method="GET")  # /static/H%00 was a 500 (embedded null byte)
@example(path="\uad1e", method="DELETE")
def test_any_path_and_method(server, path, method):
    async def run() -> tuple[int, bytes]:
        prefix = ["session-2d/", "avatars/", "static/", "session-2d/x/"][len(path) % 4]
        url = "/" + prefix + quote(path.encode("utf-8", "surrogatepass"), safe="/")
        r = await server.http.request(method, url, data=b"{}",
                                      headers={"Content-Type": "application/json"})
        return r.status, await r.read()

    status, raw = server.call(run)
    assert status < 500, (status, raw[:300])
    server.check_healthy()
