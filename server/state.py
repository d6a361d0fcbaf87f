"""Typed application state keys, shared by the app factory and the route handlers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from server.avatars import AvatarStore, Builder
from server.config import ServerConfig
from server.limits import RateLimiter, UpstreamGate
from server.lipsync import LipsyncService
from server.metrics import Metrics
from server.sessions import SessionManager


@dataclass
class Limits:
    """The server's rate limiters and upstream gate (server/limits.py)."""

    sessions: RateLimiter
    uploads: RateLimiter
    speak: RateLimiter
    upstream: UpstreamGate
    #: Uploads being received or built now.
    uploads_in_flight: int = 0
    #: Pending checks of sessions whose last client left (cancelled at shutdown).
    orphan_checks: set[asyncio.Task[None]] = field(default_factory=set)
    #: Each open session's own token (`session_token` of POST /session-2d), by id.
    session_tokens: dict[str, str] = field(default_factory=dict)
    #: Session ids each client address created (open ones are counted per client).
    by_client: dict[str, set[str]] = field(default_factory=dict)


CONFIG = web.AppKey("config", ServerConfig)
METRICS = web.AppKey("metrics", Metrics)
SESSIONS = web.AppKey("sessions", SessionManager)
AVATARS = web.AppKey("avatars", AvatarStore)
BUILDER = web.AppKey("builder", Builder)
HTTP = web.AppKey("http", aiohttp.ClientSession)
#: Present only when the server has a model (`ServerConfig.model`): variant C.
LIPSYNC = web.AppKey("lipsync", LipsyncService)
LIMITS = web.AppKey("limits", Limits)
