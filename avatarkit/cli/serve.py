"""`avatarkit serve`: run the live server (parse options, print the URL, nothing else)."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from avatarkit.cli.root import app, console, guarded


@app.command()
@guarded
def serve(
    host: Annotated[str, typer.Option(
        help="Interface to listen on (0.0.0.0 = all).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(
        min=0, max=65535, help="TCP port.")] = 8000,
    avatars: Annotated[Path | None, typer.Option(
        "--avatars", metavar="DIR",
        help="Folder of avatars built earlier (`avatarkit build ... -o DIR`); each sub-folder "
             "is an avatar id. Uploads to /avatarize-2d are built into it too. Default: a "
             "temporary folder removed at exit.")] = None,
    token: Annotated[str | None, typer.Option(
        help="Bearer token every route and the WebSocket require (header or ?token=). "
             "Default: $AVATARKIT_TOKEN; none = open.", show_default=False)] = None,
    cors: Annotated[list[str] | None, typer.Option(
        "--cors", metavar="ORIGIN",
        help="Browser origin allowed to call the API (repeat; `*` = any). Default: none "
             "(same-origin only).")] = None,
    allowed_host: Annotated[list[str] | None, typer.Option(
        "--allowed-host", metavar="NAME",
        help="Host name the server answers to besides IP addresses and localhost (repeat; "
             "`*` = any). Other Host headers get 403 (DNS rebinding protection). Needed "
             "behind a reverse proxy that passes its own host name.")] = None,
    trusted_proxy: Annotated[list[str] | None, typer.Option(
        "--trusted-proxy", metavar="ADDR",
        help="Address of a reverse proxy whose X-Forwarded-For names the client for the "
             "per-client limits (repeat). Default: none (limits count the peer address).")
    ] = None,
    voice_id: Annotated[str | None, typer.Option(
        help="Default ElevenLabs voice id (ElevenLabs is used when $ELEVENLABS_API_KEY is "
             "set; otherwise the embedded espeak-ng voice).", show_default=False)] = None,
    lang: Annotated[str, typer.Option(help="Default language (espeak-ng code).")] = "en-us",
    fps: Annotated[float, typer.Option(help="Viseme frames per second on the wire.")] = 30.0,
    max_sessions: Annotated[int, typer.Option(help="Open sessions allowed.")] = 500,
    max_text: Annotated[int, typer.Option(help="Longest text of one speak, characters.")] = 5000,
    max_clients_per_session: Annotated[int, typer.Option(
        help="WebSocket clients watching one session.")] = 16,
    max_queue: Annotated[int, typer.Option(
        help="Utterances waiting behind the current one, per session.")] = 32,
    idle_ttl: Annotated[float, typer.Option(
        help="Close sessions idle (no client, no command) this long, seconds.")] = 600.0,
    max_upload_mb: Annotated[float, typer.Option(
        help="Largest upload request (the whole body), MiB.")] = 20.0,
    max_pending_builds: Annotated[int, typer.Option(
        help="Uploads received or built at once; more answer 429.")] = 2,
    build_timeout: Annotated[float, typer.Option(
        help="Stop a build running longer than this, seconds.")] = 300.0,
    max_uploads: Annotated[int, typer.Option(
        help="Avatars built from uploads kept on disk; the least recently uploaded one no "
             "session uses is deleted beyond it.")] = 100,
    lipsync_cache: Annotated[int, typer.Option(
        help="With --model: avatars whose decoded idle loop stays in memory.")] = 4,
    session_rate: Annotated[float, typer.Option(
        help="New sessions per client address per minute (0 = no limit).")] = 30.0,
    session_burst: Annotated[int, typer.Option(
        help="... of which this many at once.")] = 10,
    max_sessions_per_client: Annotated[int, typer.Option(
        help="Open sessions per client address.")] = 32,
    upload_rate: Annotated[float, typer.Option(
        help="Uploads per client address per minute (0 = no limit).")] = 6.0,
    speak_rate: Annotated[float, typer.Option(
        help="Speak commands per session per minute (0 = no limit).")] = 60.0,
    speak_burst: Annotated[int, typer.Option(
        help="... of which this many at once.")] = 10,
    ws_message_rate: Annotated[float, typer.Option(
        help="WebSocket messages per second one socket may send; beyond it the socket is "
             "read slower, nothing is dropped (0 = no limit).")] = 500.0,
    provider_timeout: Annotated[float, typer.Option(
        help="Longest silence of the voice provider mid-utterance before it fails "
             "(provider_timeout), seconds.")] = 15.0,
    provider_retries: Annotated[int, typer.Option(
        help="Retries of a voice request refused before any audio (429, 5xx, dropped or "
             "garbled), with backoff; never after audio went out.")] = 2,
    max_upstream: Annotated[int, typer.Option(
        help="Concurrent ElevenLabs streams for the whole server; more wait their turn "
             "(0 = no cap).")] = 4,
    upstream_wait: Annotated[float, typer.Option(
        help="Longest wait for an ElevenLabs stream slot, seconds.")] = 30.0,
    allow_voice: Annotated[list[str] | None, typer.Option(
        "--allow-voice", metavar="VOICE_ID",
        help="Voice id sessions may ask for (repeat). Default: any well-formed id.")] = None,
    speak_without_client: Annotated[bool, typer.Option(
        "--speak-without-client",
        help="Accept speak for sessions no WebSocket client watches (default: 409 "
             "no_client), and keep speaking when the last client leaves.")] = False,
    orphan_grace: Annotated[float, typer.Option(
        help="When a session's last client leaves and none is back within this, its "
             "speech and queue are stopped, seconds.")] = 10.0,
    model: Annotated[Path | None, typer.Option(
        "--model", metavar="M.onnx",
        help="A Wav2Lip-compatible ONNX model (docs/onnx.md): sessions may then ask for "
             "lipsync 'onnx' and receive mouth patches.", show_default=False)] = None,
    onnx_provider: Annotated[str, typer.Option(
        help="Execution provider for --model: auto (TensorRT -> CUDA -> CPU), tensorrt, "
             "cuda or cpu.")] = "auto",
    batch_frames: Annotated[int, typer.Option(
        help="Inference batch: run when this many frames wait (all sessions).")] = 32,
    batch_wait_ms: Annotated[float, typer.Option(
        help="... or when the oldest frame has waited this long, ms.")] = 8.0,
    patch_codec: Annotated[str, typer.Option(
        help="Mouth patch encoding: png (lossless) or webp (smaller, lossy).")] = "png",
    listen_workers: Annotated[int, typer.Option(
        help="Worker processes listening to audio-driven speech (pushed audio, OpenAI "
             "Realtime); 0 = threads of the server process.")] = 1,
    workers: Annotated[int, typer.Option(
        "--workers", min=1, metavar="N",
        help="Server processes behind the one port: a front process hands each connection "
             "to the worker that holds its session (the session id names it), others in "
             "turn. Limits such as --max-sessions apply per worker.")] = 1,
    session_prefix: Annotated[str, typer.Option(
        "--session-prefix", metavar="LETTERS",
        help="Session ids start with these letters (then the worker number with --workers): "
             "give each machine behind a load balancer its own, and route /session-2d/"
             "LETTERS... to it (docs/protocol.md).")] = "s",
    openai_model: Annotated[str, typer.Option(
        help="OpenAI Realtime model of provider 'openai' (needs $OPENAI_API_KEY).")
    ] = "gpt-realtime",
) -> None:
    """Run the live server: avatars, sessions, streamed audio + visemes, the browser player."""
    from aiohttp import web

    from avatarkit.errors import AvatarkitError
    from server.app import create_app
    from server.config import ServerConfig
    from server.http import RedactedAccessLogger
    from server.state import LIPSYNC

    if not re.fullmatch(r"[a-z]{1,8}", session_prefix):
        raise AvatarkitError(f"--session-prefix {session_prefix}: use 1-8 letters a-z")
    config = ServerConfig.from_env(
        session_id_prefix=f"{session_prefix}_",
        avatars_dir=avatars, token=token, cors_origins=tuple(cors or ()),
        elevenlabs_voice_id=voice_id, default_lang=lang, viseme_fps=fps,
        max_sessions=max_sessions, max_text_chars=max_text, session_idle_ttl_s=idle_ttl,
        max_upload_bytes=int(max_upload_mb * 1024 * 1024), model=model,
        onnx_provider=onnx_provider, batch_max_frames=batch_frames,
        batch_max_wait_ms=batch_wait_ms, patch_codec=patch_codec,
        allowed_hosts=tuple(allowed_host or ()), trusted_proxies=tuple(trusted_proxy or ()),
        max_clients_per_session=max_clients_per_session, max_queued_utterances=max_queue,
        client_session_rate=session_rate,
        client_session_burst=session_burst, max_sessions_per_client=max_sessions_per_client,
        client_upload_rate=upload_rate, session_speak_rate=speak_rate,
        session_speak_burst=speak_burst, max_upstream=max_upstream,
        ws_message_rate=ws_message_rate, provider_timeout_s=provider_timeout,
        provider_retries=provider_retries,
        upstream_wait_s=upstream_wait, allowed_voices=tuple(allow_voice or ()),
        speak_without_client=speak_without_client, orphan_grace_s=orphan_grace,
        max_pending_builds=max_pending_builds,
        build_timeout_s=build_timeout, max_uploaded_avatars=max_uploads,
        lipsync_avatar_cache=lipsync_cache,
        listen_workers=listen_workers, openai_model=openai_model,
    )
    provider = "ElevenLabs" if config.elevenlabs_api_key else "embedded espeak-ng voice"
    shown = "localhost" if host in ("0.0.0.0", "::") else host
    logging.getLogger("aiohttp.access").setLevel(logging.INFO if os.environ.get(
        "AVATARKIT_ACCESS_LOG") else logging.WARNING)
    if workers > 1:
        _serve_workers(config, host, port, workers, f"voice: {provider}; avatars: "
                       f"{escape(str(avatars or 'temporary folder'))}")
        return
    application = create_app(config)

    async def run() -> None:
        # SIGTERM (service managers, containers) and Ctrl+C both stop the server the way
        # web.run_app does: the app's cleanup runs and the worker processes exit with it
        # (killed by the default SIGTERM action, the blend worker and the resource tracker
        # were left running).
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        runner = web.AppRunner(application, access_log_class=RedactedAccessLogger)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            try:
                await site.start()
            except OSError as exc:
                raise AvatarkitError(
                    f"cannot listen on {host}:{port}: {exc.strerror or exc} - is another "
                    "server running there? pick another --port") from None
            auth = warn_if_open(host, config.token)
            lipsync = application.get(LIPSYNC)
            if lipsync is not None:
                console.print(f"lipsync onnx: {lipsync.describe()}, batches of up to "
                              f"{batch_frames} frames / {batch_wait_ms:g} ms")
            where = escape(str(avatars or "temporary folder"))
            console.print(f"avatarkit serving on [bold]http://{shown}:{port}/[/]{auth} - "
                          f"voice: {provider}; avatars: {where}; "
                          "Ctrl+C to stop")
            await stop.wait()
            console.print("stopping")
        finally:
            await runner.cleanup()

    try:
        asyncio.run(run())
    finally:
        from server.children import stop_children

        stop_children()
    console.print("stopped")


def _serve_workers(config: object, host: str, port: int, count: int, what: str) -> None:
    """`--workers N`: this process is the front (server/front.py), N workers serve."""
    from server.front import running_front

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        with running_front(config, host, port, count) as front:  # type: ignore[arg-type]
            shown = "localhost" if host in ("0.0.0.0", "::") else host
            auth = warn_if_open(host, config.token)  # type: ignore[attr-defined]
            console.print(f"avatarkit serving on [bold]http://{shown}:{front.port}/[/]{auth} "
                          f"- {count} workers; {what}; Ctrl+C to stop")
            await front.serve(stop)
            console.print("stopping")

    asyncio.run(run())
    console.print("stopped")


def warn_if_open(host: str, token: str | None) -> str:
    """The red warning for a tokenless server beyond loopback; the URL line's auth note."""
    if not token and not is_loopback(host):
        console.print(
            f"[bold red]warning: listening on {escape(host)} without a token - anyone "
            "who can reach this machine can build avatars and spend the voice "
            "provider's budget; set --token or AVATARKIT_TOKEN (SECURITY.md)[/]")
    return " (token required)" if token else ""


def is_loopback(host: str) -> bool:
    """True when `host` only listens on this machine (127.x, ::1, localhost)."""
    import ipaddress

    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
