"""`avatarkit serve --workers 2` as a user runs it: a real front process and two workers on a
real port. A session created on one connection is reached by speak, WebSocket and delete on
other connections, whichever worker those land on; /health and /metrics count both workers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from server.front import worker_for
from server.workers import merge_metrics
from tests.server_support import make_avatar
from tests.test_cli_serve import _alive, _descendants

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    avatars = tmp_path_factory.mktemp("avatars")
    make_avatar(avatars, "hero")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "400", "AVATARKIT_TOKEN": "",
           "ELEVENLABS_API_KEY": ""}
    code = "import sys; from avatarkit.cli import main; sys.argv[0] = 'avatarkit'; main()"
    proc = subprocess.Popen([sys.executable, "-c", code, "serve", "--port", "0", "--workers",
                             "2", "--avatars", str(avatars)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    out, deadline = "", time.monotonic() + 180
    while "serving on" not in out:
        assert proc.poll() is None and time.monotonic() < deadline, out
        out += proc.stdout.readline()
    port = int(out.split("http://127.0.0.1:")[1].split("/")[0])
    assert "2 workers" in out
    yield f"http://127.0.0.1:{port}"
    children = _descendants(proc.pid)
    assert len(children) >= 2  # the two workers (and their helpers)
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out + rest
    assert "stopped" in rest
    time.sleep(1.0)
    left = [pid for pid in children if _alive(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, "worker processes outlived the server"


async def _fresh(method: str, url: str, **kwargs) -> tuple[int, dict | str]:
    """One request on its own new connection (so the front routes it afresh)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        async with http.request(method, url, **kwargs) as resp:
            body = await resp.text()
            try:
                return resp.status, json.loads(body)
            except ValueError:
                return resp.status, body


async def _speak_and_hear(base: str, sid: str) -> list[str]:
    """Open the session's WebSocket on one connection, speak on another: the message types
    the WebSocket receives until the utterance ends."""
    kinds: list[str] = []
    async with aiohttp.ClientSession() as http, http.ws_connect(
            f"{base}/session-2d/{sid}/ws") as ws:
        status, body = await _fresh("POST", f"{base}/session-2d/{sid}/speak",
                                    json={"text": "Hello there."})
        assert status in (200, 202), body
        while True:
            msg = await asyncio.wait_for(ws.receive(), 60)
            if msg.type == aiohttp.WSMsgType.BINARY:
                kinds.append("audio")
            elif msg.type == aiohttp.WSMsgType.TEXT:
                kinds.append(json.loads(msg.data)["type"])
                if kinds[-1] == "utterance_end":
                    break
            else:
                break
    return kinds


async def test_sessions_are_reached_from_any_connection(two_workers):
    base = two_workers
    created = []
    for _ in range(4):
        status, body = await _fresh("POST", f"{base}/session-2d", json={"avatar_id": "hero"})
        assert status in (200, 201), body
        created.append(body["session_id"])
    assert {sid[:3] for sid in created} == {"s0_", "s1_"}  # both workers hold sessions
    for sid in created[:2]:
        kinds = await _speak_and_hear(base, sid)
        assert kinds[0] == "hello" and kinds[-1] == "utterance_end", kinds
        assert {"utterance_start", "audio", "viseme"} <= set(kinds), kinds
    status, health = await _fresh("GET", f"{base}/health")
    assert status == 200
    assert (health["ok"], health["workers"], health["workers_answering"]) == (True, 2, 2)
    assert health["sessions"] == 4
    status, text = await _fresh("GET", f"{base}/metrics")
    assert "avatarkit_sessions_created_total 4" in text.splitlines()
    # a kept-alive client may reuse connections across sessions of both workers
    async with aiohttp.ClientSession() as http:
        for sid in created:
            async with http.delete(f"{base}/session-2d/{sid}") as resp:
                assert resp.status in (200, 204), await resp.text()
        async with http.delete(f"{base}/session-2d/{created[0]}") as resp:
            assert resp.status == 404
    status, health = await _fresh("GET", f"{base}/health")
    assert health["sessions"] == 0


async def test_http_responses_say_connection_close(two_workers):
    """A client must not send its next request on a connection routed for the previous one."""
    async with aiohttp.ClientSession() as http, http.get(f"{two_workers}/health") as resp:
        assert resp.headers["Connection"] == "close"


def test_bad_session_prefix_is_one_red_line():
    from typer.testing import CliRunner

    from avatarkit.cli import app

    result = CliRunner().invoke(app, ["serve", "--session-prefix", "A1"])
    assert result.exit_code == 1
    assert result.stderr == "error: --session-prefix A1: use 1-8 letters a-z\n"


def test_routing_rule():
    turn = iter([7, 8])
    assert worker_for(b"GET /session-2d/s1_abc/ws HTTP/1.1\r\n", 2, turn) == 1
    assert worker_for(b"POST /session-2d/s0_abc/speak HTTP/1.1\r\n", 2, turn) == 0
    assert worker_for(b"POST /session-2d HTTP/1.1\r\n", 2, turn) == 7
    assert worker_for(b"GET /session-2d/s9_abc/ws HTTP/1.1\r\n", 2, turn) == 8  # no such worker
    assert worker_for(b"GET /session-2d/eu1_abc/ws HTTP/1.1\r\n", 2, turn) == 1  # prefix eu


def test_metrics_of_workers_add_up():
    a = ("# HELP x X.\n# TYPE x counter\nx 2\ny{le=\"0.1\"} 1\ny_sum 0.250000\n"
         "avatarkit_onnx_max_batch 8\n")
    b = ("# HELP x X.\n# TYPE x counter\nx 3\ny{le=\"0.1\"} 4\ny_sum 0.500000\n"
         "avatarkit_onnx_max_batch 5\n")
    assert merge_metrics([a, b]) == (
        "# HELP x X.\n# TYPE x counter\nx 5\ny{le=\"0.1\"} 5\ny_sum 0.750000\n"
        "avatarkit_onnx_max_batch 8\n")
