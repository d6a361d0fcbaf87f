"""Fan-out: a session's events to every client's socket, with our own flow control.

Events arrive pre-serialised (server/events.py); sending is one socket write per client,
straight to the transport, never suspending. A client whose kernel buffer backs up skips
viseme and patch frames (audio and control messages still go); one that falls further
behind is closed with 4008 and may reconnect to resume.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

from server import wire
from server.config import ServerConfig
from server.events import FRAME, KIND, PATCH, VISEME, Event, event_frame, viseme_frames
from server.metrics import Metrics

#: WebSocket close codes (docs/protocol.md "Close codes").
CLOSE_SESSION_ENDED = 4000
CLOSE_SLOW_CLIENT = 4008


@dataclass(eq=False)
class Client:
    """One WebSocket watching a session."""

    ws: web.WebSocketResponse
    transport: Any  # asyncio.Transport of the connection
    audio_json: bool = False
    closed: bool = False

    def backlog(self) -> int:
        """Bytes written to this client that the kernel has not taken yet."""
        t = self.transport
        return t.get_write_buffer_size() if t is not None and not t.is_closing() else 0


class Fanout:
    """The clients of one session."""

    def __init__(self, config: ServerConfig, metrics: Metrics) -> None:
        self.clients: list[Client] = []
        self.metrics = metrics
        self._drop_at = config.viseme_drop_bytes
        self._close_at = config.max_client_backlog_bytes
        self._tasks: set[asyncio.Task[None]] = set()

    def broadcast(self, events: list[Event]) -> None:
        """Write events to every client, one socket write per client; a client with a
        backlog skips viseme frames, and one whose backlog overflows is closed (4008)."""
        shared: bytes | None = None
        for c in self.clients:
            if c.closed:
                continue
            backlog = c.backlog()
            if backlog > self._drop_at:
                if backlog > self._close_at:
                    self.metrics.slow_clients_closed += 1
                    self._close_slow(c)
                    continue
                kept = [event_frame(ev, c.audio_json) for ev in events
                        if ev[KIND] != VISEME and ev[KIND] != PATCH]
                self.metrics.viseme_frames_dropped += sum(  # a bundle holds several
                    [viseme_frames(ev) if ev[KIND] == VISEME else 1 for ev in events
                     if ev[KIND] == VISEME or ev[KIND] == PATCH])
                send(c, b"".join(kept))
            elif c.audio_json:
                send(c, b"".join([event_frame(ev, True) for ev in events]))
            else:
                if shared is None:
                    shared = b"".join([ev[FRAME] for ev in events])
                send(c, shared)

    def _close_slow(self, c: Client) -> None:
        c.closed = True
        msg = wire.error(
            "slow_client",
            f"this client fell more than {self._close_at} bytes behind "
            "the audio; closing it (reconnect to resume)",
        )
        task = asyncio.create_task(close_client(c, CLOSE_SLOW_CLIENT, b"slow_client",
                                                msg.encode()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close_all(self) -> None:
        """The session ended: close every client (4000)."""
        for c in list(self.clients):
            await close_client(c, CLOSE_SESSION_ENDED, b"session closed")
        self.clients.clear()


def send(c: Client, data: bytes) -> None:
    """Whole frames straight to the transport (never suspends; flow control is ours)."""
    t = c.transport
    if not data:
        return
    if t is None or t.is_closing():
        c.closed = True
        return
    t.write(data)


async def close_client(c: Client, code: int, message: bytes, last: bytes | None = None) -> None:
    """Close `c` with `code` (after the text frame `last`), aborting a socket that hangs."""
    c.closed = True
    try:
        if last is not None:
            await c.ws.send_frame(last, WSMsgType.TEXT)
        await asyncio.wait_for(c.ws.close(code=code, message=message), 2.0)
    except (TimeoutError, ConnectionError, RuntimeError):
        if c.transport is not None:
            c.transport.abort()
