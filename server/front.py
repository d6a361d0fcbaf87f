"""The front of `avatarkit serve --workers N`: it owns the public port, accepts each
connection, peeks at its request line (MSG_PEEK: nothing is consumed) to find the session id
in the path, and hands the socket itself to that session's worker over a Unix socket
(SCM_RIGHTS). It never copies a byte of the traffic, so one front keeps up with many workers.

Routing rule (the same for N machines behind a load balancer, docs/protocol.md): a path
`/session-2d/<letters><i>_.../...` goes to worker i; everything else (creating a session,
the player, avatars, /health, /metrics) to the next worker in turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import multiprocessing
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from avatarkit.errors import AvatarkitError
from server.children import end_process
from server.config import ServerConfig
from server.workers import fd_socket_path, run_worker

_SESSION_PATH = re.compile(rb"^[A-Z]+ /session-2d/[a-z]+(\d+)_")
MAX_HEAD = 8192  # the request line must arrive within this many bytes
HEAD_TIMEOUT_S = 10.0  # a connection that sends no request line by then is closed
WORKER_START_S = 120.0


def worker_for(head: bytes, count: int, turn: Iterator[int]) -> int:
    """The worker for a connection whose first bytes are `head`."""
    match = _SESSION_PATH.match(head)
    if match:
        index = int(match[1])
        if index < count:
            return index
    return next(turn)


class Front:
    """The public listener and its N worker processes."""

    def __init__(self, config: ServerConfig, host: str, port: int, count: int) -> None:
        self.count = count
        self.run_dir = Path(tempfile.mkdtemp(prefix="avatarkit-workers-"))
        self.avatars_tmp: Path | None = None
        if config.avatars_dir is None:  # one folder all workers see: uploads meet sessions
            self.avatars_tmp = Path(tempfile.mkdtemp(prefix="avatarkit-avatars-"))
            config = replace(config, avatars_dir=self.avatars_tmp)
        self.config = config.checked()
        try:
            self.listener = socket.create_server((host, port), backlog=4096)
        except OSError as exc:
            self._remove_dirs()
            raise AvatarkitError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc} - is another "
                "server running there? pick another --port") from None
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self.processes: list[multiprocessing.process.BaseProcess] = []
        self.channels: list[socket.socket] = []
        self._turn = itertools.cycle(range(count))

    def start_workers(self) -> None:
        """Spawn the workers and connect to each one's connection channel."""
        context = multiprocessing.get_context("spawn")
        for i in range(self.count):
            p = context.Process(target=run_worker, name=f"avatarkit-worker-{i}",
                                args=(self.config, i, self.count, self.run_dir))
            p.start()
            self.processes.append(p)
        deadline = time.monotonic() + WORKER_START_S
        for i, p in enumerate(self.processes):
            path = fd_socket_path(self.run_dir, i)
            while True:
                if not p.is_alive():
                    raise AvatarkitError(f"server worker {i} exited while starting "
                                         f"(exit code {p.exitcode}); see the lines above")
                channel = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                try:
                    channel.connect(str(path))
                    break
                except (FileNotFoundError, ConnectionRefusedError):
                    channel.close()
                    if time.monotonic() > deadline:
                        raise AvatarkitError(f"server worker {i} did not start in "
                                             f"{WORKER_START_S:.0f} s") from None
                    time.sleep(0.05)
            self.channels.append(channel)

    async def serve(self, stop: asyncio.Event) -> None:
        """Accept and hand over connections until `stop` is set."""
        loop = asyncio.get_running_loop()
        tasks: set[asyncio.Task[None]] = set()
        accepting = asyncio.ensure_future(self._accept(loop, tasks))
        await stop.wait()
        accepting.cancel()
        for t in list(tasks):
            t.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await accepting

    async def _accept(self, loop: asyncio.AbstractEventLoop,
                      tasks: set[asyncio.Task[None]]) -> None:
        while True:
            conn, _ = await loop.sock_accept(self.listener)
            task = asyncio.ensure_future(self._route(loop, conn))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    async def _route(self, loop: asyncio.AbstractEventLoop, conn: socket.socket) -> None:
        """Peek until the request line is there, then pass the socket on."""
        try:
            head = await asyncio.wait_for(_peek_request_line(loop, conn), HEAD_TIMEOUT_S)
            if head:
                index = worker_for(head, self.count, self._turn)
                socket.send_fds(self.channels[index], [b"c"], [conn.fileno()])
        except (TimeoutError, OSError):
            pass
        finally:
            conn.close()  # the worker holds its own descriptor of the connection now

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop accepting, let the workers finish their shutdown, then remove the run dir."""
        self.listener.close()
        for channel in self.channels:
            channel.close()  # a worker stops when its channel closes
        for p in self.processes:
            end_process(p, timeout_s)
        self._remove_dirs()

    def _remove_dirs(self) -> None:
        shutil.rmtree(self.run_dir, ignore_errors=True)
        if self.avatars_tmp is not None:
            shutil.rmtree(self.avatars_tmp, ignore_errors=True)


async def _peek_request_line(loop: asyncio.AbstractEventLoop, conn: socket.socket) -> bytes:
    """The connection's first bytes up to the end of the request line, left unread (b"" when
    the peer closed first)."""
    while True:
        readable = loop.create_future()
        loop.add_reader(conn.fileno(),
                        lambda f=readable: f.done() or f.set_result(None))
        try:
            await readable
        finally:
            loop.remove_reader(conn.fileno())
        head = conn.recv(MAX_HEAD, socket.MSG_PEEK)
        if not head or b"\n" in head or len(head) >= MAX_HEAD:
            return head
        await asyncio.sleep(0.005)  # part of a line: the rest is on its way


@contextmanager
def running_front(config: ServerConfig, host: str, port: int, count: int) -> Iterator[Front]:
    """A started Front, closed (workers stopped, run dir removed) on exit."""
    front = Front(config, host, port, count)
    try:
        front.start_workers()
        yield front
    finally:
        front.close()
