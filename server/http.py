"""HTTP plumbing: JSON errors, bearer-token auth, CORS, Host and Origin checks, and an access
log without secrets."""

from __future__ import annotations

import hmac
import ipaddress
import logging
import re
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

log = logging.getLogger("avatarkit.server")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_STATUS_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 413: "payload_too_large", 415: "unsupported_media_type",
    429: "too_many_requests",
}


class ApiError(Exception):
    """Raised by handlers; becomes `{"ok": false, "error": code, "message": ...}`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def json_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"ok": False, "error": code, "message": message}, status=status)


def errors_middleware(
    on_refused: Callable[[str], None] = lambda _code: None,
) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Every failure answers JSON with a stable code; the server keeps running. A request
    refused for load (429: a rate limit, a cap, a full queue) is also told to `on_refused`
    with its code, so /metrics shows refusals an operator would otherwise never see."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            if exc.status == 429:
                on_refused(exc.code)
            return json_error(exc.status, exc.code, exc.message)
        except web.HTTPException as exc:
            return _http_error(request, exc)
        except Exception:
            log.exception("internal error on %s %s", request.method, request.path)
            return json_error(500, "internal", "internal server error (logged on the server)")

    return middleware


def _http_error(request: web.Request, exc: web.HTTPException) -> web.Response:
    """aiohttp's own refusals (404, 405, 413...) as JSON; other HTTP exceptions go on."""
    if exc.status < 400 or exc.content_type == "application/json":
        raise exc
    code = _STATUS_CODES.get(exc.status, "http_error")
    message = {
        404: f"no such route or resource: {request.path}",
        405: f"{request.method} is not allowed on {request.path}",
        413: "the request body is too large",
    }.get(exc.status, exc.reason)
    return json_error(exc.status, code, message)


#: Routes of one session: its own token (POST /session-2d -> session_token) opens them.
_SESSION_ROUTE = re.compile(r"^/session-2d/([^/]+)(?:/(?:ws|speak|stop))?$")


def auth_middleware(
    token: str | None, session_token: Callable[[str], str | None] = lambda _sid: None,
) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Require `Authorization: Bearer <token>` or `?token=` on every request but preflight;
    a session's routes also take that session's token (`session_token(id)`)."""
    expected = (token or "").encode()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if expected and not _is_preflight(request):
            given = ""
            header = request.headers.get("Authorization", "")
            if header[:7].lower() == "bearer ":
                given = header[7:].strip()
            elif "token" in request.query:
                given = request.query["token"]
            route = _SESSION_ROUTE.match(request.path)
            own = session_token(route.group(1)) if route else None
            if own and hmac.compare_digest(given.encode(), own.encode()):
                return await handler(request)
            if not hmac.compare_digest(given.encode(), expected):
                return json_error(
                    401, "unauthorized",
                    "a valid token is required: send 'Authorization: Bearer <token>' or "
                    "add ?token=<token> to the URL",
                )
        return await handler(request)

    return middleware


def _is_preflight(request: web.Request) -> bool:
    return (request.method == "OPTIONS" and "Origin" in request.headers
            and "Access-Control-Request-Method" in request.headers)


def cors_middleware(origins: tuple[str, ...]) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Allow the listed browser origins (or `*`); answer preflight requests."""
    allowed = set(origins)
    any_origin = "*" in allowed

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        ok = origin is not None and (any_origin or origin in allowed)
        if _is_preflight(request):
            if not ok:
                return json_error(403, "bad_origin", f"origin {origin} is not allowed (--cors)")
            response: web.StreamResponse = web.Response(status=204)
        else:
            response = await handler(request)
        if ok and not response.prepared:
            response.headers["Access-Control-Allow-Origin"] = "*" if any_origin else origin
            response.headers["Vary"] = "Origin"
            if _is_preflight(request):
                response.headers["Access-Control-Allow-Methods"] = "GET, POST, DELETE, OPTIONS"
                response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
                response.headers["Access-Control-Max-Age"] = "600"
        return response

    return middleware


#: Methods that change state: a browser on another site must not be able to send them.
_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    """True for a `Host` header this server answers: an IP literal, `localhost`, or a name
    in `allowed` (`*` = any). DNS rebinding needs a hostname the attacker controls, so IP
    literals are always safe; any other name must be listed."""
    if "*" in allowed:
        return True
    name = _hostname(host)
    if not name:
        return False
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    return name in {a.lower().rstrip(".") for a in allowed}


def _hostname(host: str) -> str:
    """`Host` header -> lower-case name without port or IPv6 brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else ""
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def origin_allowed(origin: str, host: str, cors: tuple[str, ...]) -> bool:
    """Same origin (its host:port is this request's Host) or listed with `--cors`."""
    if "*" in cors or origin in cors:
        return True
    _, sep, rest = origin.partition("://")
    return bool(sep) and rest.lower().rstrip("/") == host.strip().lower()


def is_websocket(request: web.Request) -> bool:
    return (request.method == "GET"
            and request.headers.get("Upgrade", "").lower() == "websocket")


def origin_host_middleware(
    allowed_hosts: tuple[str, ...], cors: tuple[str, ...]
) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Refuse a `Host` this server was not started for (DNS rebinding), and state-changing
    requests and WebSocket upgrades whose browser `Origin` is neither this server nor a
    `--cors` origin: a website must not drive a server on the visitor's machine.

    Clients that are not browsers send no `Origin` and are not affected by the second check.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        host = request.headers.get("Host", "")
        if not host_allowed(host, allowed_hosts):
            return json_error(
                403, "bad_host",
                f"this server does not answer to the host name {_hostname(host)!r} "
                "(DNS rebinding protection) - open it by IP address or localhost, or start "
                f"it with --allowed-host {_hostname(host) or 'NAME'}")
        origin = request.headers.get("Origin")
        if (origin is not None and (request.method in _UNSAFE_METHODS or is_websocket(request))
                and not origin_allowed(origin, host, cors)):
            return json_error(
                403, "bad_origin",
                f"requests from the web page origin {origin} are not allowed - this server "
                "accepts its own pages and the origins listed with --cors")
        return await handler(request)

    return middleware


class RedactedAccessLogger(AbstractAccessLogger):
    """`METHOD /path STATUS ms` - never the query string (it may carry `?token=`)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info("%s %s %s %.1fms", request.method, request.path, response.status,
                         time * 1000)
