"""Route handlers: parse the request, call the session/avatar layer, answer JSON.

The WebSocket handler accepts the same commands as the HTTP routes (docs/protocol.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import secrets
import shutil
import socket
import tempfile
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from avatarkit.errors import AvatarkitError
from avatarkit.version import __version__
from server import wire
from server.avatars import BuildTimeout, avatar_id_for
from server.fanout import Client
from server.http import ApiError
from server.limits import RateLimiter
from server.listen import MAX_RATE, MIN_RATE, AudioTurn
from server.metrics import REFUSAL_CODES
from server.providers import VoiceRequest, check_available, default_provider_name
from server.session import Session
from server.state import AVATARS, BUILDER, CONFIG, LIMITS, LIPSYNC, METRICS, SESSIONS
from server.workers import WORKER_ONLY, ask_peers, merge_metrics

log = logging.getLogger("avatarkit.server")

_STATUS_OF = {"too_many_sessions": 429, "queue_full": 429, "not_found": 404,
              "rate_limited": 429}
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")
#: Voice ids: ElevenLabs ids are 20 alphanumerics; espeak-ng variants are short names. The
#: id becomes part of the provider's URL path, so nothing else may pass.
_VOICE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/static/{path:.+}", static_file)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/avatarize-2d", avatarize)
    app.router.add_get("/avatars/{avatar_id}", avatar_info)
    app.router.add_get("/avatars/{avatar_id}/{name}", avatar_file)
    app.router.add_post("/session-2d", create_session)
    app.router.add_delete("/session-2d/{session_id}", delete_session)
    app.router.add_post("/session-2d/{session_id}/speak", speak)
    app.router.add_post("/session-2d/{session_id}/stop", stop)
    app.router.add_get("/session-2d/{session_id}/ws", websocket)


# ------------------------------------------------------------------ pages and health


async def index(request: web.Request) -> web.StreamResponse:
    page = request.app[CONFIG].static_root / "index.html"
    if not page.is_file():
        return web.Response(
            text="<!doctype html><title>avatarkit</title><p>avatarkit server is running; "
                 "the browser player is not installed (server/static/index.html).</p>",
            content_type="text/html",
        )
    return web.FileResponse(page, headers={"Cache-Control": "no-cache"})


async def static_file(request: web.Request) -> web.StreamResponse:
    root = request.app[CONFIG].static_root.resolve()
    try:
        path = (root / request.match_info["path"]).resolve()
        found = path.is_relative_to(root) and path.is_file()
    except (ValueError, OSError):  # a NUL byte, a name too long: no such file either
        found = False
    if not found:
        raise ApiError(404, "not_found", f"no such file: {request.path}")
    return web.FileResponse(path, headers={"Cache-Control": "no-cache"})


async def health(request: web.Request) -> web.Response:
    manager = request.app[SESSIONS]
    body = {
        "ok": True, "version": __version__, "sessions": len(manager.sessions),
        "clients": sum(len(s.clients) for s in manager.sessions.values()),
    }
    if _for_all_workers(request):  # serve --workers N: every worker's sessions
        peers = [json.loads(t) if t else None
                 for t in await ask_peers(request.app[CONFIG], "/health")]
        body["ok"] = all(p is not None and p["ok"] for p in peers)
        body["workers"] = 1 + len(peers)
        body["workers_answering"] = 1 + sum(p is not None for p in peers)
        for key in ("sessions", "clients"):
            body[key] += sum(p[key] for p in peers if p is not None)
    return web.json_response(body, status=200 if body["ok"] else 503)


async def metrics(request: web.Request) -> web.Response:
    text = request.app[METRICS].render()
    if _for_all_workers(request):
        peers = await ask_peers(request.app[CONFIG], "/metrics")
        text = merge_metrics([text, *(t for t in peers if t is not None)])
    return web.Response(text=text, content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff"})


def _for_all_workers(request: web.Request) -> bool:
    """With `serve --workers N`, /health and /metrics answer for all workers, unless a peer
    worker is asking for this one's own figures."""
    return bool(request.app[CONFIG].peer_sockets) and WORKER_ONLY not in request.headers


# ------------------------------------------------------------------ avatars


def _describe(request: web.Request, avatar_id: str) -> dict[str, Any]:
    body = request.app[AVATARS].describe(avatar_id)
    if body is None:
        raise ApiError(404, "not_found", f"no avatar {avatar_id!r} on this server")
    return body


async def avatar_info(request: web.Request) -> web.Response:
    return web.json_response(_describe(request, request.match_info["avatar_id"]))


async def avatar_file(request: web.Request) -> web.StreamResponse:
    avatar_id, name = request.match_info["avatar_id"], request.match_info["name"]
    path = request.app[AVATARS].file(avatar_id, name)
    if path is None:
        raise ApiError(404, "not_found", f"no file {name!r} in avatar {avatar_id!r}")
    # FileResponse answers If-None-Match / If-Modified-Since with 304 and serves ranges
    return web.FileResponse(path, headers={"Cache-Control": "no-cache"})


async def avatarize(request: web.Request) -> web.Response:
    """Upload a photo (multipart `hero_image`), build it in a worker process."""
    config, limits = request.app[CONFIG], request.app[LIMITS]
    limit = config.max_upload_bytes
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    if not request.content_type.startswith("multipart/"):
        raise ApiError(400, "no_photo",
                       "send the photo as multipart/form-data with a file field 'hero_image'")
    if limits.uploads_in_flight >= config.max_pending_builds:
        raise ApiError(429, "busy", f"the server is already receiving or building "
                                    f"{limits.uploads_in_flight} photos (the limit is "
                                    f"{config.max_pending_builds}) - retry in a minute")
    if wait := limits.uploads.take(client_key(request)):
        raise _rate_limited(wait, "uploads from this client")
    limits.uploads_in_flight += 1
    tmp = Path(tempfile.mkdtemp(prefix="avatarkit-upload-"))
    try:
        return await _receive_and_build(request, tmp, limit)
    finally:
        limits.uploads_in_flight -= 1
        shutil.rmtree(tmp, ignore_errors=True)


async def _receive_and_build(request: web.Request, tmp: Path, limit: int) -> web.Response:
    reader = await request.multipart()
    photo, digest, size = None, hashlib.sha256(), 0
    while (part := await reader.next()) is not None:
        # every byte of every part counts against the limit, not only the photo's
        keep = getattr(part, "name", None) == "hero_image" and photo is None
        if keep:
            name = _SAFE_NAME.sub("_", Path(part.filename or "photo.jpg").name)  # type: ignore[union-attr]
            photo = tmp / (name.lstrip(".") or "photo.jpg")
        with photo.open("wb") if keep else contextlib.nullcontext() as fh:  # type: ignore[union-attr]
            while chunk := await part.read_chunk(256 * 1024):  # type: ignore[union-attr]
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                if fh is not None:
                    digest.update(chunk)
                    fh.write(chunk)
    if photo is None:
        raise ApiError(400, "no_photo", "no file field 'hero_image' in the upload")
    if photo.stat().st_size == 0:
        raise ApiError(422, "bad_photo", f"could not read {photo.name}: the file is empty")
    avatar_id = avatar_id_for(digest.hexdigest())
    store, m, config = request.app[AVATARS], request.app[METRICS], request.app[CONFIG]
    if store.manifest(avatar_id) is None:
        try:
            result = await request.app[BUILDER].build(photo, store.root, avatar_id)
        except AvatarkitError as exc:
            m.builds["failed"] += 1
            raise ApiError(422, "bad_photo", str(exc)) from None
        except BuildTimeout as exc:
            m.builds["failed"] += 1
            raise ApiError(504, "build_timeout", str(exc)) from None
        except BrokenProcessPool:
            m.builds["failed"] += 1
            request.app[BUILDER].close()
            raise ApiError(500, "build_failed",
                           "the build worker died (out of memory?) - try a smaller photo"
                           ) from None
        m.builds[result.status] += 1
        store.mark_uploaded(avatar_id)
        in_use = {s.avatar_id for s in request.app[SESSIONS].sessions.values()}
        for gone in store.evict_uploads(config.max_uploaded_avatars, in_use | {avatar_id}):
            service = request.app.get(LIPSYNC)
            if service is not None:
                service.forget(gone)
    else:
        m.builds["skipped"] += 1
        store.mark_uploaded(avatar_id, refresh_only=True)
    return web.json_response(_describe(request, avatar_id))


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large",
                    f"the upload is over the {limit // (1024 * 1024)} MiB limit - "
                    "send a smaller photo (avatarkit downscales to 1024 px anyway)")


# ------------------------------------------------------------------ sessions


async def _json_body(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        # text/plain and form bodies are what a cross-site page can send without a CORS
        # preflight; JSON routes take JSON only.
        raise ApiError(415, "unsupported_media_type",
                       f"send the body as JSON with 'Content-Type: application/json' (got "
                       f"{request.content_type!r}; with curl: --json '{{...}}')")
    try:
        body = await request.json(loads=json.loads)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "bad_json", "the request body is not valid JSON") from None
    except RecursionError:
        raise ApiError(400, "bad_json", "the request body is nested too deeply") from None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_message", "the request body must be a JSON object")
    return body


def _optional_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise ApiError(400, "bad_message", f"'{key}' must be a string")
    return value or None


def _session(request: web.Request) -> Session:
    sid = request.match_info["session_id"]
    session = request.app[SESSIONS].get(sid)
    if session is None:
        raise ApiError(404, "not_found", f"no session {sid!r} (it may have expired)")
    return session


def _wire_error(exc: wire.WireError) -> ApiError:
    return ApiError(_STATUS_OF.get(exc.code, 400), exc.code, exc.message)


def client_key(request: web.Request) -> str:
    """Who the per-client limits count against: the peer address, or behind a trusted
    reverse proxy the address it saw (the last `X-Forwarded-For` entry: earlier ones are
    whatever the client wrote)."""
    peer = request.remote or "unknown"
    if peer in request.app[CONFIG].trusted_proxies:
        forwarded = request.headers.get("X-Forwarded-For", "").split(",")[-1].strip()
        if forwarded:
            return forwarded
    return peer


def _rate_limited(wait_s: float, what: str) -> ApiError:
    return ApiError(429, "rate_limited",
                    f"too many {what}; retry in {max(1, round(wait_s + 0.5))} s")


async def create_session(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    body = await _json_body(request)
    limits, who = request.app[LIMITS], client_key(request)
    mine = limits.by_client.pop(who, set()) & request.app[SESSIONS].sessions.keys()
    if mine:  # only clients with open sessions stay in the table
        limits.by_client[who] = mine
    if len(mine) >= config.max_sessions_per_client:
        raise ApiError(429, "too_many_sessions",
                       f"this client already has {len(mine)} open sessions (the limit is "
                       f"{config.max_sessions_per_client}) - close one (DELETE "
                       "/session-2d/ID) or reuse it")
    avatar_id = body.get("avatar_id")
    if not isinstance(avatar_id, str) or not avatar_id:
        raise ApiError(400, "bad_message", "'avatar_id' (string) is required")
    if request.app[AVATARS].manifest(avatar_id) is None:
        raise ApiError(404, "not_found", f"no avatar {avatar_id!r} on this server")
    provider = _optional_str(body, "provider") or default_provider_name(config)
    try:
        check_available(provider, config)
    except AvatarkitError as exc:
        raise ApiError(400, "provider_unavailable", str(exc)) from None
    rate = body.get("sample_rate")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int)
                             or not MIN_RATE <= rate <= MAX_RATE):
        raise ApiError(400, "bad_message", f"'sample_rate' must be an integer from {MIN_RATE} "
                       f"to {MAX_RATE} (Hz), for provider 'audio'")
    voice = VoiceRequest(provider, _voice_id(body, config.allowed_voices),
                         _language(_optional_str(body, "lang") or config.default_lang), rate)
    lipsync = _optional_str(body, "lipsync") or "visemes"
    live_avatar, service = None, request.app.get(LIPSYNC)
    if lipsync not in ("visemes", "onnx"):
        raise ApiError(400, "bad_message", f"unknown lipsync {lipsync!r}; use 'visemes' or 'onnx'")
    if wait := limits.sessions.take(who):  # only valid requests count (and before the
        raise _rate_limited(wait, "new sessions from this client")  # model decodes a loop)
    if lipsync == "onnx":
        if service is None:
            raise ApiError(400, "lipsync_unavailable",
                           "lipsync 'onnx' needs a model and this server has none - start it "
                           "with `avatarkit serve --model wav2lip.onnx`, or use 'visemes'")
        try:
            live_avatar = await service.avatar(avatar_id, request.app[AVATARS].folder(avatar_id))
        except AvatarkitError as exc:
            raise ApiError(422, "avatar_unusable", f"lipsync 'onnx': {exc}") from None
    try:
        session = request.app[SESSIONS].create(avatar_id, provider, voice)
    except wire.WireError as exc:
        raise _wire_error(exc) from None
    except AvatarkitError as exc:
        raise ApiError(400, "provider_unavailable", str(exc)) from None
    limits.by_client.setdefault(who, mine).add(session.id)
    tokens = limits.session_tokens
    for sid in [s for s in tokens if s not in request.app[SESSIONS].sessions]:
        del tokens[sid]  # closed or expired sessions
    tokens[session.id] = secrets.token_urlsafe(18)
    extra: dict[str, Any] = {"lipsync": lipsync}
    if service is not None and live_avatar is not None:
        session.lipsync = service.attach(session, live_avatar)
        extra.update(session.lipsync.hello_fields())
    scheme = "wss" if (request.secure or
                       request.headers.get("X-Forwarded-Proto", "") == "https") else "ws"
    return web.json_response({
        "session_id": session.id,
        # opens this session's routes only (ws, speak, stop, delete) - what a server that
        # creates sessions for browsers hands them instead of its own token
        "session_token": tokens[session.id],
        "ws_url": f"{scheme}://{request.host}/session-2d/{session.id}/ws",
        "avatar_id": avatar_id, "provider": provider, "sample_rate": session.sample_rate,
        "lang": voice.lang, "viseme_fps": config.viseme_fps,
        "idle_ttl_s": config.session_idle_ttl_s, **extra,
    })


def _voice_id(body: dict[str, Any], allowed: tuple[str, ...]) -> str | None:
    """The session's `voice_id`: well-formed, and in `--allow-voice` when that is set."""
    voice_id = _optional_str(body, "voice_id")
    if voice_id is None:
        return None
    if not _VOICE_ID.fullmatch(voice_id):
        raise ApiError(400, "bad_voice", "'voice_id' must be 1-64 characters of A-Z, a-z, "
                                         "0-9, '_' and '-'")
    if allowed and voice_id not in allowed:
        raise ApiError(400, "bad_voice", f"voice {voice_id!r} is not offered by this server; "
                                         f"use one of {', '.join(allowed)}")
    return voice_id


def _language(lang: str) -> str:
    """A language espeak-ng knows (it also turns ElevenLabs alignment into phonemes):
    checked here, before a session exists, not per utterance on a billed connection."""
    from avatarkit.tts.espeak_lib import check_language

    try:
        return check_language(lang)
    except AvatarkitError as exc:
        raise ApiError(400, "provider_unavailable", str(exc)) from None


async def delete_session(request: web.Request) -> web.Response:
    sid = request.match_info["session_id"]
    if not await request.app[SESSIONS].delete(sid):
        raise ApiError(404, "not_found", f"no session {sid!r} (it may have expired)")
    request.app[LIMITS].speak.forget(sid)
    return web.json_response({"ok": True})


def check_speak_rate(app: web.Application, session: Session) -> None:
    """Speak commands per session (HTTP and WebSocket together): raises WireError."""
    if wait := app[LIMITS].speak.take(session.id):
        raise wire.WireError("rate_limited",
                             f"too many speak commands on this session; retry in "
                             f"{max(1, round(wait + 0.5))} s")


async def speak(request: web.Request) -> web.Response:
    session = _session(request)
    body = await _json_body(request)
    config = request.app[CONFIG]
    if not getattr(session.provider, "speaks_text", True):  # the same refusal as speak()
        raise ApiError(400, "no_voice", f"this session's provider ({session.provider_name}) "
                       "has no text voice - push its audio instead (docs/protocol.md "
                       "\"Pushing audio\")")
    if not session.clients and not config.speak_without_client:
        raise ApiError(409, "no_client",
                       "no client is connected to this session: connect its WebSocket "
                       "(ws_url) first, then speak (nothing is synthesised for nobody; "
                       "`avatarkit serve --speak-without-client` allows it)")
    try:
        cmd = wire.parse_speak(body, max_chars=config.max_text_chars)
        check_speak_rate(request.app, session)
        uid = await session.speak(cmd.text, cmd.barge_in)
    except wire.WireError as exc:
        raise _wire_error(exc) from None
    return web.json_response({"ok": True, "utterance_id": uid})


async def stop(request: web.Request) -> web.Response:
    session = _session(request)
    return web.json_response({"ok": True, "interrupted": await session.interrupt("stop")})


# ------------------------------------------------------------------ the WebSocket


async def websocket(request: web.Request) -> web.StreamResponse:
    config = request.app[CONFIG]
    session = _session(request)
    audio = request.query.get("audio", "binary")
    if audio not in ("binary", "json"):
        raise ApiError(400, "bad_request", "audio must be 'binary' or 'json'")
    if len(session.clients) >= config.max_clients_per_session:
        raise ApiError(429, "too_many_clients",
                       f"this session already has {len(session.clients)} clients "
                       f"(the limit is {config.max_clients_per_session})")
    # 1 MiB: a pushed audio frame of a few seconds (a pipeline sending a file in pieces)
    ws = web.WebSocketResponse(heartbeat=30.0, compress=False,
                               max_msg_size=max(1024 * 1024, config.max_text_chars * 4 + 4096))
    await ws.prepare(request)
    transport = request.transport
    if transport is not None:
        # flow control is ours (Client.backlog): the transport must never pause a send
        transport.set_write_buffer_limits(high=config.max_client_backlog_bytes * 4)
        sock = transport.get_extra_info("socket")
        if sock is not None and config.socket_send_buffer_bytes:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF,
                                config.socket_send_buffer_bytes)
    client = Client(ws, transport, audio_json=audio == "json")
    session.attach(client)
    pushing = _Pushing(session, config.max_audio_turn_s * 1000.0)
    # per socket: a flood is read slower (the kernel's window pushes back), never dropped
    pace = RateLimiter(config.ws_message_rate * 60.0, max(1, int(config.ws_message_rate)))
    try:
        async for msg in ws:
            while wait := pace.take(""):
                await asyncio.sleep(wait)
            if msg.type == WSMsgType.TEXT:
                reply = await _command(request.app, session, pushing, msg.data,
                                       config.max_text_chars)
            elif msg.type == WSMsgType.BINARY:
                reply = pushing.feed(msg.data)
            else:
                continue
            if reply is not None and not client.closed:
                await ws.send_str(reply)
    finally:
        session.detach(client)
        pushing.hang_up()
        if not session.clients and not config.speak_without_client:
            _stop_if_still_alone(request.app, session)
    return ws


def _stop_if_still_alone(app: web.Application, session: Session) -> None:
    """The last client left: if none is back within `orphan_grace_s` (a reconnect resumes),
    stop what the session is saying and has queued - synthesis for nobody costs the same."""
    grace = app[CONFIG].orphan_grace_s
    tasks = app[LIMITS].orphan_checks

    async def check() -> None:
        await asyncio.sleep(grace)
        if not session.clients and not session.closed and session.busy():
            log.info("session %s: no client for %.0f s, its speech stopped", session.id, grace)
            await session.interrupt("stop")

    task = asyncio.create_task(check(), name=f"orphan-{session.id}")
    tasks.add(task)
    task.add_done_callback(tasks.discard)


class _Pushing:
    """The audio turn a socket is pushing (docs/protocol.md "Pushing audio"), if any."""

    def __init__(self, session: Session, max_ms: float) -> None:
        self.session = session
        self.max_ms = max_ms
        self.turn: AudioTurn | None = None
        self.uid = 0

    async def start(self, cmd: wire.AudioStart) -> str:
        turn = AudioTurn(cmd.sample_rate or self.session.sample_rate, cmd.channels,
                         max_ms=self.max_ms, text=cmd.text)
        if self.turn is not None:  # a new turn ends the open one (it plays out first)
            self.turn.end()
        self.uid = await self.session.enqueue(cmd.text, turn, cmd.barge_in)
        self.turn = turn
        return wire.ack("audio_start", request_id=cmd.request_id, utterance_id=self.uid)

    def feed(self, data: bytes) -> str | None:
        """PCM for the open turn; an error reply (and nothing fed) when it is malformed."""
        try:
            if self.turn is None:
                raise wire.WireError("no_audio_turn", "no audio turn is open on this socket: "
                                     "send audio_start before the audio")
            self.turn.feed(data)
        except wire.WireError as exc:
            return wire.error(exc.code, exc.message,
                              utterance_id=self.uid if self.turn is not None else None)
        return None

    def text(self, text: str) -> str | None:
        if self.turn is None:
            return wire.error("no_audio_turn", "no audio turn is open on this socket")
        self.turn.add_text(text)
        return None

    def end(self, cmd: wire.AudioEnd) -> str:
        if self.turn is None:
            raise wire.WireError("no_audio_turn", "no audio turn is open on this socket",
                                 cmd.request_id)
        self.turn.end()
        self.turn = None
        return wire.ack("audio_end", request_id=cmd.request_id, utterance_id=self.uid)

    def hang_up(self) -> None:
        """The socket closed: what it pushed still plays out, as after audio_end."""
        if self.turn is not None:
            self.turn.end()
            self.turn = None


async def _command(app: web.Application, session: Session, pushing: _Pushing, data: str,
                   max_chars: int) -> str | None:
    """One WebSocket command -> the reply text (ack, pong or error; None for audio)."""
    try:
        cmd = wire.parse_client_message(data, max_chars=max_chars)
        if isinstance(cmd, wire.Speak):
            try:
                check_speak_rate(app, session)
            except wire.WireError as exc:
                exc.request_id = cmd.request_id
                raise
            uid = await session.speak(cmd.text, cmd.barge_in)
            return wire.ack("speak", request_id=cmd.request_id, utterance_id=uid)
        if isinstance(cmd, wire.Stop):
            done = await session.interrupt("stop")
            return wire.ack("stop", request_id=cmd.request_id, interrupted=done)
        if isinstance(cmd, wire.AudioStart):
            return await pushing.start(cmd)
        if isinstance(cmd, wire.AudioAppend):
            return pushing.feed(cmd.pcm)
        if isinstance(cmd, wire.AudioText):
            return pushing.text(cmd.text)
        if isinstance(cmd, wire.AudioEnd):
            return pushing.end(cmd)
        if isinstance(cmd, wire.UserAudio):
            return await _user_audio(session, cmd.pcm)
        return wire.pong(cmd.request_id)
    except wire.WireError as exc:
        if exc.code in REFUSAL_CODES:
            app[METRICS].refuse(exc.code)
        return wire.error(exc.code, exc.message, request_id=exc.request_id)


async def _user_audio(session: Session, pcm: bytes) -> str | None:
    """The user's microphone, for a provider that listens to it (OpenAI Realtime)."""
    send = getattr(session.provider, "send_user_audio", None)
    if send is None:
        raise wire.WireError("bad_message", f"user_audio needs a speech-to-speech provider "
                             f"('openai'); this session's is {session.provider_name!r}")
    if len(pcm) % 2:
        raise wire.WireError("bad_audio", "user_audio must be whole PCM16 samples")
    await send(pcm)
    return None
