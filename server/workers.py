"""One worker process of `avatarkit serve --workers N`: the ordinary application, fed
connections the front process accepted (server/front.py) instead of listening on the public
port itself. Also what makes /health and /metrics cover every worker: each worker serves an
internal Unix socket its peers ask.

Worker i names its sessions `s<i>_...` (`<letters><i>_...` with --session-prefix); the
front hands every connection whose path names a session to that session's worker, so all of
a session's requests and WebSockets meet the process that holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import socket
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from server.children import stop_children
from server.config import ServerConfig

#: A request with this header is answered by the worker alone (how peers ask each other).
WORKER_ONLY = "X-Avatarkit-Worker-Only"


def fd_socket_path(run_dir: Path, index: int) -> Path:
    """Where worker `index` takes accepted connections from the front (SCM_RIGHTS)."""
    return run_dir / f"w{index}.fds"


def http_socket_path(run_dir: Path, index: int) -> Path:
    """Worker `index`'s internal HTTP socket (peers' /health and /metrics)."""
    return run_dir / f"w{index}.http"


def worker_config(config: ServerConfig, index: int, count: int, run_dir: Path) -> ServerConfig:
    """Worker `index`'s config: its session id prefix and its peers' sockets."""
    peers = tuple(str(http_socket_path(run_dir, i)) for i in range(count) if i != index)
    letters = config.session_id_prefix.rstrip("_")  # `s_` -> worker i names `s<i>_...`
    return dataclasses.replace(config, session_id_prefix=f"{letters}{index}_",
                               peer_sockets=peers)


def run_worker(config: ServerConfig, index: int, count: int, run_dir: Path) -> None:
    """Process entry point (spawned by the front)."""
    import logging

    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    try:
        asyncio.run(_serve(worker_config(config, index, count, run_dir), index, run_dir))
    except KeyboardInterrupt:
        pass
    finally:
        stop_children()


async def _serve(config: ServerConfig, index: int, run_dir: Path) -> None:
    from server.app import create_app
    from server.http import RedactedAccessLogger

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    app = create_app(config)
    app.on_response_prepare.append(_one_request_per_connection)
    runner = web.AppRunner(app, access_log_class=RedactedAccessLogger)
    await runner.setup()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        await web.UnixSite(runner, str(http_socket_path(run_dir, index))).start()
        listener.bind(str(fd_socket_path(run_dir, index)))
        listener.listen(1)
        listener.setblocking(False)
        channel, _ = await loop.sock_accept(listener)
        loop.add_reader(channel.fileno(), _take_connections, channel, runner, stop)
        await stop.wait()
        loop.remove_reader(channel.fileno())
        channel.close()
    finally:
        listener.close()
        await runner.cleanup()


def _take_connections(channel: socket.socket, runner: web.AppRunner,
                      stop: asyncio.Event) -> None:
    """Serve the connections the front passed; the front closing the channel stops us."""
    loop = asyncio.get_running_loop()
    try:
        message, fds, _, _ = socket.recv_fds(channel, 16, 16)
    except BlockingIOError:
        return
    if not message and not fds:
        stop.set()
        return
    for fd in fds:
        conn = socket.socket(fileno=fd)
        conn.setblocking(False)
        task = loop.create_task(loop.connect_accepted_socket(runner.server, conn))
        task.add_done_callback(_log_failure)


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        import logging

        logging.getLogger("avatarkit.server").warning(
            "could not serve a connection: %s", task.exception())


async def _one_request_per_connection(request: web.Request,
                                      response: web.StreamResponse) -> None:
    """The front routes a connection by its first request; a kept-alive connection's next
    request may name a session of another worker, so each HTTP connection carries one
    request (WebSockets are one request by nature)."""
    if not isinstance(response, web.WebSocketResponse):
        response.force_close()  # the server closes after it...
        response.headers["Connection"] = "close"  # ...and says so (headers are made by now)


# ------------------------------------------------------------------ all workers' view


async def ask_peers(config: ServerConfig, path: str) -> list[str | None]:
    """Each peer worker's answer to GET `path` (None: it did not answer)."""
    headers = {WORKER_ONLY: "1"}
    if config.token:
        headers["Authorization"] = f"Bearer {config.token}"

    async def ask(socket_path: str) -> str | None:
        with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError, OSError):
            async with aiohttp.ClientSession(
                    connector=aiohttp.UnixConnector(path=socket_path),
                    timeout=aiohttp.ClientTimeout(total=5)) as http, \
                    http.get(f"http://localhost{path}", headers=headers) as resp:
                if resp.status == 200:
                    return await resp.text()
        return None

    return list(await asyncio.gather(*(ask(p) for p in config.peer_sockets)))


#: Samples that are a maximum, not an amount: the largest over the workers.
MAXIMA = ("avatarkit_onnx_max_batch",)


def merge_metrics(texts: list[str]) -> str:
    """Prometheus texts of several workers as one: samples with the same name and labels are
    added (counters, gauges of open things and histogram buckets all add up), maxima kept."""
    lines: list[str] = []
    values: dict[str, float] = {}
    decimals: dict[str, bool] = {}
    for text in texts:
        for line in text.splitlines():
            if not line or line.startswith("#"):
                if line not in lines:
                    lines.append(line)
                continue
            key, _, value = line.rpartition(" ")
            if key not in values:
                lines.append(key)
                values[key] = 0.0
            values[key] = (max(values[key], float(value)) if key.startswith(MAXIMA)
                           else values[key] + float(value))
            decimals[key] = decimals.get(key, False) or "." in value
    out = []
    for line in lines:
        if line in values:
            v = values[line]
            out.append(f"{line} {v:.6f}" if decimals[line] else f"{line} {int(v)}")
        else:
            out.append(line)
    return "\n".join(out) + "\n"
