"""Route handlers: parse the request, call the session/avatar layer, answer JSON.

The WebSocket handler accepts the same commands as the HTTP routes (docs/protocol.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import socket
import tempfile
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from avatarkit import __version__
from avatarkit.errors import AvatarkitError
from server import wire
from server.avatars import avatar_id_for
from server.http import ApiError
from server.listen import MAX_RATE, MIN_RATE, AudioTurn
from server.providers import PROVIDERS, VoiceRequest, default_provider_name
from server.session import Client, Session
from server.state import AVATARS, BUILDER, CONFIG, LIPSYNC, METRICS, SESSIONS

_STATUS_OF = {"too_many_sessions": 429, "queue_full": 429, "not_found": 404}
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


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
    path = (root / request.match_info["path"]).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise ApiError(404, "not_found", f"no such file: {request.path}")
    return web.FileResponse(path, headers={"Cache-Control": "no-cache"})


async def health(request: web.Request) -> web.Response:
    manager = request.app[SESSIONS]
    return web.json_response({
        "ok": True, "version": __version__, "sessions": len(manager.sessions),
        "clients": sum(len(s.clients) for s in manager.sessions.values()),
    })


async def metrics(request: web.Request) -> web.Response:
    return web.Response(text=request.app[METRICS].render(),
                        content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff"})


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
    config = request.app[CONFIG]
    limit = config.max_upload_bytes
    if request.content_length is not None and request.content_length > limit + 64 * 1024:
        raise _too_large(limit)
    if not request.content_type.startswith("multipart/"):
        raise ApiError(400, "no_photo",
                       "send the photo as multipart/form-data with a file field 'hero_image'")
    reader = await request.multipart()
    tmp = Path(tempfile.mkdtemp(prefix="avatarkit-upload-"))
    try:
        photo, digest = None, hashlib.sha256()
        while (part := await reader.next()) is not None:
            if getattr(part, "name", None) != "hero_image" or photo is not None:
                await part.release()  # type: ignore[union-attr]
                continue
            name = _SAFE_NAME.sub("_", Path(part.filename or "photo.jpg").name)  # type: ignore[union-attr]
            name = name.lstrip(".") or "photo.jpg"
            photo = tmp / name
            size = 0
            with photo.open("wb") as fh:
                while chunk := await part.read_chunk(256 * 1024):  # type: ignore[union-attr]
                    size += len(chunk)
                    if size > limit:
                        raise _too_large(limit)
                    digest.update(chunk)
                    fh.write(chunk)
        if photo is None:
            raise ApiError(400, "no_photo", "no file field 'hero_image' in the upload")
        if photo.stat().st_size == 0:
            raise ApiError(422, "bad_photo", f"could not read {photo.name}: the file is empty")
        avatar_id = avatar_id_for(digest.hexdigest())
        store, m = request.app[AVATARS], request.app[METRICS]
        if store.manifest(avatar_id) is None:
            try:
                result = await request.app[BUILDER].build(photo, store.root, avatar_id)
            except AvatarkitError as exc:
                m.builds["failed"] += 1
                raise ApiError(422, "bad_photo", str(exc)) from None
            except BrokenProcessPool:
                m.builds["failed"] += 1
                request.app[BUILDER].close()
                raise ApiError(500, "build_failed",
                               "the build worker died (out of memory?) - try a smaller photo"
                               ) from None
            m.builds[result.status] += 1
        else:
            m.builds["skipped"] += 1
        return web.json_response(_describe(request, avatar_id))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large",
                    f"the upload is over the {limit // (1024 * 1024)} MiB limit - "
                    "send a smaller photo (avatarkit downscales to 1024 px anyway)")


# ------------------------------------------------------------------ sessions


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json(loads=json.loads)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "bad_json", "the request body is not valid JSON") from None
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


async def create_session(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    body = await _json_body(request)
    avatar_id = body.get("avatar_id")
    if not isinstance(avatar_id, str) or not avatar_id:
        raise ApiError(400, "bad_message", "'avatar_id' (string) is required")
    if request.app[AVATARS].manifest(avatar_id) is None:
        raise ApiError(404, "not_found", f"no avatar {avatar_id!r} on this server")
    provider = _optional_str(body, "provider") or default_provider_name(config)
    if provider not in PROVIDERS:
        raise ApiError(400, "provider_unavailable",
                       f"unknown provider {provider!r}; use one of {', '.join(PROVIDERS)}")
    if provider == "elevenlabs" and not config.elevenlabs_api_key:
        raise ApiError(400, "provider_unavailable",
                       "provider 'elevenlabs' is not available: the server has no "
                       "ELEVENLABS_API_KEY - set it where the server runs, or use 'espeak'")
    rate = body.get("sample_rate")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int)
                             or not MIN_RATE <= rate <= MAX_RATE):
        raise ApiError(400, "bad_message", f"'sample_rate' must be an integer from {MIN_RATE} "
                       f"to {MAX_RATE} (Hz), for provider 'audio'")
    voice = VoiceRequest(provider, _optional_str(body, "voice_id"),
                         _optional_str(body, "lang") or config.default_lang, rate)
    lipsync = _optional_str(body, "lipsync") or "visemes"
    live_avatar, service = None, request.app.get(LIPSYNC)
    if lipsync not in ("visemes", "onnx"):
        raise ApiError(400, "bad_message", f"unknown lipsync {lipsync!r}; use 'visemes' or 'onnx'")
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
    extra: dict[str, Any] = {"lipsync": lipsync}
    if service is not None and live_avatar is not None:
        session.lipsync = service.attach(session, live_avatar)
        extra.update(session.lipsync.hello_fields())
    scheme = "wss" if (request.secure or
                       request.headers.get("X-Forwarded-Proto", "") == "https") else "ws"
    return web.json_response({
        "session_id": session.id,
        "ws_url": f"{scheme}://{request.host}/session-2d/{session.id}/ws",
        "avatar_id": avatar_id, "provider": provider, "sample_rate": session.sample_rate,
        "lang": voice.lang, "viseme_fps": config.viseme_fps,
        "idle_ttl_s": config.session_idle_ttl_s, **extra,
    })


async def delete_session(request: web.Request) -> web.Response:
    sid = request.match_info["session_id"]
    if not await request.app[SESSIONS].delete(sid):
        raise ApiError(404, "not_found", f"no session {sid!r} (it may have expired)")
    return web.json_response({"ok": True})


async def speak(request: web.Request) -> web.Response:
    session = _session(request)
    body = await _json_body(request)
    try:
        cmd = wire.parse_speak(body, max_chars=request.app[CONFIG].max_text_chars)
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
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                reply = await _command(session, pushing, msg.data, config.max_text_chars)
            elif msg.type == WSMsgType.BINARY:
                reply = pushing.feed(msg.data)
            else:
                continue
            if reply is not None and not client.closed:
                await ws.send_str(reply)
    finally:
        session.detach(client)
        pushing.hang_up()
    return ws


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


async def _command(session: Session, pushing: _Pushing, data: str,
                   max_chars: int) -> str | None:
    """One WebSocket command -> the reply text (ack, pong or error; None for audio)."""
    try:
        cmd = wire.parse_client_message(data, max_chars=max_chars)
        if isinstance(cmd, wire.Speak):
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
