"""Helpers for the fuzz tests: one real server per test module on a loopback port, driven
from Hypothesis' synchronous examples, with every log record and loop exception kept.

Hypothesis runs each example as a plain function call, so the server lives on an event loop
in a thread of its own and the examples hand it coroutines (`LiveServer.call`). The
invariants every example checks afterwards (`LiveServer.check_healthy`): no traceback or
error in the log, no exception left to the loop, the asyncio tasks back to the baseline,
and the server still answering - a watcher session keeps its socket open through all
examples and must still get a pong.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from server.app import create_app
from server.config import ServerConfig
from tests.server_support import RecordingVoice, check_message

#: Bounded, repeatable examples and no per-example deadline (a loaded machine must not fail
#: a run). AVATARKIT_FUZZ_EXAMPLES=N runs N fresh random examples per test instead (a longer
#: hunt, outside the suite's time budget).
_HUNT = int(os.environ.get("AVATARKIT_FUZZ_EXAMPLES", "0"))
FUZZ = settings(deadline=None, derandomize=not _HUNT, database=None,
                max_examples=_HUNT or 60,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

#: JSON values of every shape: the wrong types the server must refuse.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70)
    | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=4),
    max_leaves=12,
)


def deep_json(depth: int, kind: str = "list") -> str:
    """JSON nested `depth` levels (the parser's recursion limit is ~1000)."""
    return ("[" * depth + "]" * depth if kind == "list"
            else '{"a":' * depth + "1" + "}" * depth)


class Problems(logging.Handler):
    """Every log record at ERROR or above, or with a traceback, from any logger."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info:
            self.records.append(f"{record.name}: {record.getMessage()}\n"
                                f"{self.format(record) if record.exc_info else ''}")


class LiveServer:
    """A server on 127.0.0.1:<free port> in its own loop thread; `call` runs coroutines there."""

    def __init__(self, avatars: Path, **cfg: Any) -> None:
        cfg.setdefault("client_session_rate", 0)
        cfg.setdefault("session_speak_rate", 0)
        cfg.setdefault("max_sessions_per_client", 10_000)
        cfg.setdefault("speak_without_client", True)
        self.config = ServerConfig(avatars_dir=avatars, **cfg)
        self.factory_kwargs: dict[str, Any] = {"provider_factory": RecordingVoice()}
        self.loop = asyncio.new_event_loop()
        self.problems = Problems()
        self.loop_errors: list[str] = []
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.base = ""
        self.http: aiohttp.ClientSession | None = None
        self.baseline_tasks = 0

    # -- lifecycle
    def start(self, **factory_kwargs: Any) -> LiveServer:
        self.factory_kwargs.update(factory_kwargs)
        self._thread.start()
        self.loop.set_exception_handler(
            lambda _loop, ctx: self.loop_errors.append(str(ctx.get("message")) + " "
                                                       + repr(ctx.get("exception"))))
        logging.getLogger().addHandler(self.problems)
        self.call(self._start)
        return self

    async def _start(self) -> None:
        app = create_app(self.config, **self.factory_kwargs)
        self.runner = web.AppRunner(app, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base = f"http://127.0.0.1:{port}"
        # no keep-alive: an idle pooled connection is a server task the baseline would count
        self.http = aiohttp.ClientSession(self.base,
                                          connector=aiohttp.TCPConnector(force_close=True))
        # a session watched for the whole module: it must keep answering
        sid = await self.new_session()
        self.watcher = await self.http.ws_connect(f"/session-2d/{sid}/ws")
        hello = json.loads((await self.watcher.receive()).data)
        assert hello["type"] == "hello"
        await asyncio.sleep(0.05)
        self.baseline_tasks = self._tasks()

    def stop(self) -> None:
        async def stop() -> None:
            await self.watcher.close()
            assert self.http is not None
            await self.http.close()
            await self.runner.cleanup()

        try:
            self.call(stop)
        finally:
            logging.getLogger().removeHandler(self.problems)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)

    def call(self, fn: Callable[..., Awaitable[Any]], *args: Any, timeout: float = 60.0) -> Any:
        """Run `fn(*args)` on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(fn(*args), self.loop).result(timeout)

    # -- helpers for coroutines on the server's loop
    async def new_session(self, **body: Any) -> str:
        assert self.http is not None
        r = await self.http.post("/session-2d", json={"avatar_id": "hero", **body})
        assert r.status == 200, await r.text()
        return (await r.json())["session_id"]

    def _tasks(self) -> int:
        return len([t for t in asyncio.all_tasks(self.loop) if t is not asyncio.current_task()])

    async def settle(self, timeout: float = 10.0) -> int:
        """Wait until the loop's tasks are back to the baseline; the count it ended at."""
        deadline = self.loop.time() + timeout
        while self._tasks() > self.baseline_tasks and self.loop.time() < deadline:
            await asyncio.sleep(0.02)
        return self._tasks()

    async def _healthy(self) -> tuple[int, dict[str, Any], int]:
        assert self.http is not None
        left = await self.settle()
        r = await self.http.get("/health")
        await self.watcher.send_json({"type": "ping", "id": "alive"})
        while True:
            msg = await asyncio.wait_for(self.watcher.receive(), 10)
            assert msg.type == aiohttp.WSMsgType.TEXT, f"the watcher's socket died: {msg}"
            data = json.loads(msg.data)
            check_message(data)
            if data["type"] == "pong" and data.get("id") == "alive":
                break
        return r.status, await r.json(), left

    def check_healthy(self) -> None:
        """The invariants after an example (raises AssertionError)."""
        status, health, tasks = self.call(self._healthy)
        assert status == 200 and health["ok"]
        assert tasks <= self.baseline_tasks, (
            f"{tasks} asyncio tasks left, baseline {self.baseline_tasks}: "
            f"{[t.get_name() for t in asyncio.all_tasks(self.loop)]}")
        problems, self.problems.records = self.problems.records, []
        errors, self.loop_errors[:] = list(self.loop_errors), []
        assert not problems, "\n".join(problems)
        assert not errors, errors


def check_error_reply(status: int, body: bytes) -> dict[str, Any]:
    """A refusal: a 4xx status with a JSON `{error, message}` body."""
    assert 400 <= status < 500, (status, body[:300])
    data = json.loads(body)
    assert isinstance(data.get("error"), str) and isinstance(data.get("message"), str), data
    return data
