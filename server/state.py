"""Typed application state keys, shared by the app factory and the route handlers."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from server.avatars import AvatarStore, Builder
from server.config import ServerConfig
from server.lipsync import LipsyncService
from server.metrics import Metrics
from server.sessions import SessionManager

CONFIG = web.AppKey("config", ServerConfig)
METRICS = web.AppKey("metrics", Metrics)
SESSIONS = web.AppKey("sessions", SessionManager)
AVATARS = web.AppKey("avatars", AvatarStore)
BUILDER = web.AppKey("builder", Builder)
HTTP = web.AppKey("http", aiohttp.ClientSession)
#: Present only when the server has a model (`ServerConfig.model`): variant C.
LIPSYNC = web.AppKey("lipsync", LipsyncService)
