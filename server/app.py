"""The aiohttp application factory: typed state, resources in cleanup_ctx, middlewares, routes.

    app = create_app(ServerConfig(avatars_dir=Path("out")))
    web.run_app(app)   # or `avatarkit serve`
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
from aiohttp import web

from avatarkit.build import BuildOptions
from server import routes
from server.avatars import AvatarStore, Builder
from server.config import ServerConfig
from server.http import auth_middleware, cors_middleware, errors_middleware
from server.lipsync import LipsyncService
from server.listen import ListenerFactory
from server.metrics import Metrics
from server.providers import ProviderFactory, make_default_factory
from server.sessions import SessionManager
from server.state import AVATARS, BUILDER, CONFIG, HTTP, LIPSYNC, METRICS, SESSIONS

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
            cors_middleware(config.cors_origins),
            auth_middleware(config.token),
            errors_middleware,
        ],
        client_max_size=1024 * 1024,
    )
    app[CONFIG] = config
    app[METRICS] = Metrics()

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
        app[BUILDER] = Builder(config.build_workers, BuildOptions(max_side=config.build_max_side))
        http = aiohttp.ClientSession()
        app[HTTP] = http
        executor = ThreadPoolExecutor(config.viseme_threads, thread_name_prefix="visemes")
        factory = provider_factory or make_default_factory(config, lambda: http)
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
    routes.add_routes(app)
    return app
