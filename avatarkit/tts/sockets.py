"""Closing a client WebSocket to a speech service without leaving a reference cycle."""

from __future__ import annotations

import contextlib

import aiohttp


async def close_quietly(ws: aiohttp.ClientWebSocketResponse) -> None:
    """Close `ws`, whatever state the peer left it in, leaving no reference cycle behind.

    When the service has already torn the connection down, writing (or awaiting) the close
    frame fails and aiohttp keeps that error; its traceback holds the socket's own `close()`
    frame, so the socket, its response, connection and transport (~40 objects) become a
    cycle that only the collector's full passes free. Those passes scan every live session's
    objects with the server's event loop held (~140 ms at 750 relayed sessions); one such
    cycle per relayed utterance made them frequent (benchmarks/serve.py, BENCH_GC). Dropping
    the traceback lets reference counting free the socket as soon as it is closed; the error
    itself (`ws.exception()`) stays.
    """
    try:
        with contextlib.suppress(Exception):
            await ws.close()
    finally:
        exc = ws.exception()
        if exc is not None:
            exc.__traceback__ = None
