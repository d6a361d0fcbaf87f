"""Fuzzed WebSocket traffic against one real server: sequences of every client message
(docs/protocol.md) with wrong types and missing fields, raw text, invalid UTF-8, binary
frames, deep JSON, commands out of order (speak before hello, stop twice, audio before
audio_start, barge-in while the socket or the session closes), on text and audio-in
sessions. Invariant: every reply is a valid protocol message, the socket stays open unless
the frame itself is a protocol violation (1007 invalid UTF-8, 1009 too big), and after each
example no traceback, no stuck task, and the other session's client still answered."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import aiohttp
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from server import wire
from tests.fakes.listener import LoudListeners
from tests.fuzz_support import FUZZ, LiveServer, deep_json, json_values
from tests.server_support import check_message, make_avatar


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    avatars = tmp_path_factory.mktemp("avatars")
    make_avatar(avatars)
    live = LiveServer(avatars, max_text_chars=200).start(listener_factory=LoudListeners())
    yield live
    live.stop()


def _pcm(n: int) -> bytes:
    return bytes((i * 37) & 0xFF for i in range(n))


TYPES = ["speak", "stop", "ping", "audio_start", "audio_append", "audio_text", "audio_end",
         "user_audio", "nope", ""]
fields = {
    "text": st.text(max_size=30) | json_values | st.just("x" * 201),
    "barge_in": st.booleans() | json_values,
    "id": json_values,
    "sample_rate": st.sampled_from([8000, 16000, 48000, 7999, 48001, 0, -1, 2**63])
    | json_values,
    "channels": st.sampled_from([1, 2, 1.0, 2.0, 3, 0, True]) | json_values,
    "data": st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode())
    | st.text(max_size=10) | json_values,
}
#: Each type's own optional fields (a field its schema lacks stops a message at the first
#: check, so those go in only sometimes, through `stray`).
own_fields = {t: {k: v for k, v in fields.items() if k in wire.SCHEMAS[t]["properties"]}
              for t in TYPES if t in wire.SCHEMAS}
stray = st.fixed_dictionaries({}, optional={"bargein": st.booleans(), "data": fields["data"]})
commands = st.one_of(
    *[st.builds(lambda own, t=t: {"type": t, **own}, st.fixed_dictionaries({}, optional=own))
      for t, own in own_fields.items()],
    st.builds(lambda t, extra, more: {"type": t, **extra, **more},
              st.sampled_from(TYPES) | json_values,
              st.fixed_dictionaries({}, optional=fields), stray),
)
actions = st.one_of(
    commands.map(lambda c: ("json", json.dumps(c))),
    st.sampled_from([
        ("json", '{"type": "speak", "text": "Hello there."}'),
        ("json", '{"type": "speak", "text": "Again.", "barge_in": true}'),
        ("json", '{"type": "stop"}'),
        ("json", '{"type": "audio_start", "sample_rate": 16000}'),
        ("json", '{"type": "audio_end"}'),
        ("json", deep_json(5000)), ("json", deep_json(5000, "object")),
        ("json", "[]"), ("json", "null"), ("json", '"speak"'),
        ("bad_utf8", b'{"type": "ping", "id": "\xff\xfe"}'),
        ("huge", "x" * (2 * 1024 * 1024)),
    ]),
    st.text(max_size=40).map(lambda t: ("json", t)),
    st.integers(0, 2000).map(lambda n: ("binary", _pcm(n))),
)
endings = st.sampled_from(["close", "abort", "delete", "barge_in_then_delete",
                           "barge_in_then_close"])
#: Close codes the server may answer a protocol violation with (RFC 6455).
VIOLATIONS = {1007, 1009}


async def _drain_until_pong(ws: aiohttp.ClientWebSocketResponse, rid: str) -> int | None:
    """Read (schema-checking) until our pong; the close code if the socket closed first."""
    await ws.send_json({"type": "ping", "id": rid})
    while True:
        msg = await asyncio.wait_for(ws.receive(), 20)
        if msg.type == aiohttp.WSMsgType.TEXT:
            data = json.loads(msg.data)
            check_message(data)
            if data["type"] == "pong" and data.get("id") == rid:
                return None
        elif msg.type == aiohttp.WSMsgType.BINARY:
            wire.decode_audio(msg.data)
        else:
            return ws.close_code


async def _read_until_closed(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    while (await ws.receive()).type not in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                            aiohttp.WSMsgType.ERROR):
        pass
    return ws.close_code


async def _episode(server: LiveServer, provider: str, steps: list[tuple[str, Any]],
                   ending: str) -> None:
    sid = await server.new_session(provider=provider)
    http = server.http
    assert http is not None
    ws = await http.ws_connect(f"/session-2d/{sid}/ws")
    closed: int | None = None
    try:
        for kind, data in steps:  # sent without waiting for hello or any reply
            if kind == "binary":
                await ws.send_bytes(data)
            elif kind == "bad_utf8":
                await ws.send_frame(data, aiohttp.WSMsgType.TEXT)
            else:
                await ws.send_str(data)
        closed = await _drain_until_pong(ws, "fz-end")
    except (ConnectionError, aiohttp.ClientConnectionError):
        # the server closed it while we were still sending (its close frame maybe unread)
        closed = ws.close_code or 1006
    if closed is not None:
        # only a socket that broke the protocol is closed (1006: the server dropped it
        # before its close frame was read)
        assert closed in VIOLATIONS | {1006}, f"the server closed the socket with {closed}"
        assert any(kind in ("bad_utf8", "huge") for kind, _ in steps), closed
        # a protocol violation ends that socket only: the session answers a new one
        await ws.close()
        ws = await http.ws_connect(f"/session-2d/{sid}/ws")
        assert await _drain_until_pong(ws, "fz-again") is None
    if ending.startswith("barge_in"):
        await ws.send_json({"type": "speak", "text": "Stop that.", "barge_in": True})
    if ending.endswith("delete"):
        reader = asyncio.create_task(_read_until_closed(ws))  # as a real client reads
        r = await http.delete(f"/session-2d/{sid}")
        assert r.status == 200
        assert await asyncio.wait_for(reader, 10) == 4000
        return
    if ending == "abort":
        ws._response.connection.transport.abort()  # type: ignore[union-attr]
    await ws.close()
    # the session outlives its socket: a new client is answered, then the session ends
    again = await http.ws_connect(f"/session-2d/{sid}/ws")
    assert await _drain_until_pong(again, "fz-next") is None
    await again.close()
    assert (await http.delete(f"/session-2d/{sid}")).status == 200


@FUZZ
@given(provider=st.sampled_from(["espeak", "audio"]),
       steps=st.lists(actions, max_size=8), ending=endings)
@example(provider="espeak", steps=[("json", '{"type": "speak", "text": "Hi."}')] * 2
         + [("json", '{"type": "stop"}')] * 2, ending="barge_in_then_close")
# channels 2.0 passed audio_start and its first frame crashed the socket's handler
@example(provider="audio", steps=[("binary", _pcm(64)),
                                  ("json", '{"type": "audio_start", "channels": 2.0}'),
                                  ("binary", _pcm(64)), ("json", '{"type": "audio_end"}'),
                                  ("json", '{"type": "audio_end"}')], ending="abort")
@example(provider="espeak", steps=[("huge", "x" * (2 * 1024 * 1024))] * 2,
         ending="abort")  # the second frame meets a socket the server closed (1009)
def test_message_sequences(server, provider, steps, ending):
    server.call(_episode, server, provider, steps, ending)
    server.check_healthy()
