"""The aiohttp application factory: typed state, resources in cleanup_ctx, middlewares, routes.

    app = create_app(ServerConfig(avatars_dir=Path("out")))
    web.run_app(app)   # or `avatarkit serve`
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
from aiohttp import web

from avatarkit.build import BuildOptions
from avatarkit.tts.provider import Provider
from server import routes
from server.avatars import AvatarStore, Builder
from server.config import ServerConfig
from server.http import (
    auth_middleware,
    cors_middleware,
    errors_middleware,
    origin_host_middleware,
)
from server.limits import GuardedProvider, RateLimiter, UpstreamGate
from server.lipsync import LipsyncService
from server.listen import ListenerFactory
from server.metrics import Metrics
from server.providers import ProviderFactory, VoiceRequest, make_default_factory
from server.sessions import SessionManager
from server.state import (
    AVATARS,
    BUILDER,
    CONFIG,
    HTTP,
    LIMITS,
    LIPSYNC,
    METRICS,
    SESSIONS,
    Limits,
)

__all__ = ["AVATARS", "CONFIG", "METRICS", "SESSIONS", "ServerConfig", "create_app"]


def create_app(
    config: ServerConfig, *, provider_factory: ProviderFactory | None = None,
    listener_factory: ListenerFactory | None = None,
) -> web.Application:
    """Build the application; `provider_factory` replaces the real TTS providers and
    `listener_factory` the acoustic front end of audio-driven speech (tests)."""
    config = config.checked()
    app = web.Application(
        middlewares=[
            origin_host_middleware(config.allowed_hosts, config.cors_origins),
            cors_middleware(config.cors_origins),
            auth_middleware(config.token, lambda sid: _session_token(app, sid)),
            errors_middleware(lambda code: app[METRICS].refuse(code)),
        ],
        client_max_size=1024 * 1024,
    )
    app[CONFIG] = config
    app[METRICS] = Metrics()
    app[LIMITS] = Limits(
        sessions=RateLimiter(config.client_session_rate, config.client_session_burst),
        uploads=RateLimiter(config.client_upload_rate, 3),
        speak=RateLimiter(config.session_speak_rate, config.session_speak_burst),
        upstream=UpstreamGate(config.max_upstream, config.upstream_wait_s),
    )

    async def resources(app: web.Application) -> AsyncIterator[None]:
        # the model first: a file that does not fit fails startup before anything is opened
        lipsync = None
        if config.model is not None:
            lipsync = await LipsyncService.open(config, app[METRICS])
            app[LIPSYNC] = lipsync
            app[METRICS].lipsync = lipsync.stats
        tmp = None
        root = config.avatars_dir
        if root is None:
            tmp = Path(tempfile.mkdtemp(prefix="avatarkit-avatars-"))
            root = tmp
        app[AVATARS] = AvatarStore(root)
        app[BUILDER] = Builder(config.build_workers, BuildOptions(max_side=config.build_max_side),
                               config.build_timeout_s)
        http = aiohttp.ClientSession()
        app[HTTP] = http
        executor = ThreadPoolExecutor(config.viseme_threads, thread_name_prefix="visemes")
        factory = _guarded(provider_factory or make_default_factory(config, lambda: http),
                           app[LIMITS].upstream)
        manager = SessionManager(config, app[METRICS], factory, executor, listener_factory)
        app[SESSIONS] = manager
        await manager.start()
        try:
            yield
        finally:
            await manager.stop()
            if lipsync is not None:
                await lipsync.close()
            await http.close()
            executor.shutdown(wait=False, cancel_futures=True)
            app[BUILDER].close()
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)

    app.cleanup_ctx.append(resources)
    app.on_shutdown.append(_close_sessions)
    routes.add_routes(app)
    return app


def _guarded(factory: ProviderFactory, gate: UpstreamGate) -> ProviderFactory:
    """Every session's provider behind the server's limits (server/limits.py); only
    networked providers take an upstream slot."""

    def make(req: VoiceRequest) -> Provider:
        inner = factory(req)
        return GuardedProvider(inner, req.provider,  # type: ignore[return-value]
                               gate if req.provider != "espeak" else None)

    return make


def _session_token(app: web.Application, session_id: str) -> str | None:
    """The token of an open session (a closed session's token opens nothing)."""
    manager = app.get(SESSIONS)
    if manager is None or manager.get(session_id) is None:
        return None
    return app[LIMITS].session_tokens.get(session_id)


async def _close_sessions(app: web.Application) -> None:
    """On shutdown, before aiohttp waits for open handlers: close every WebSocket with 1001
    (server shutting down: clients may reconnect to a restarted server) and end the
    sessions - otherwise each open socket held the exit for up to the runner's 60 s
    shutdown timeout."""
    for task in list(app[LIMITS].orphan_checks):
        task.cancel()
    manager = app.get(SESSIONS)
    if manager is None:
        return

    async def going_away(ws: web.WebSocketResponse) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(code=1001, message=b"server shutting down"), 2.0)

    clients = [c for s in manager.sessions.values() for c in s.clients if not c.closed]
    for c in clients:
        c.closed = True  # nothing more is written to it
    await asyncio.gather(*(going_away(c.ws) for c in clients))
    await manager.stop()
