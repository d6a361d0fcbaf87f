"""`avatarkit serve`: run the live server (parse options, print the URL, nothing else)."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Annotated

import typer

from avatarkit.cli.app import app, console, guarded


@app.command()
@guarded
def serve(
    host: Annotated[str, typer.Option(
        help="Interface to listen on (0.0.0.0 = all).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
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
    voice_id: Annotated[str | None, typer.Option(
        help="Default ElevenLabs voice id (ElevenLabs is used when $ELEVENLABS_API_KEY is "
             "set; otherwise the embedded espeak-ng voice).", show_default=False)] = None,
    lang: Annotated[str, typer.Option(help="Default language (espeak-ng code).")] = "en-us",
    fps: Annotated[float, typer.Option(help="Viseme frames per second on the wire.")] = 60.0,
    max_sessions: Annotated[int, typer.Option(help="Open sessions allowed.")] = 500,
    max_text: Annotated[int, typer.Option(help="Longest text of one speak, characters.")] = 5000,
    idle_ttl: Annotated[float, typer.Option(
        help="Close sessions idle (no client, no command) this long, seconds.")] = 600.0,
    max_upload_mb: Annotated[float, typer.Option(help="Largest photo upload, MiB.")] = 20.0,
) -> None:
    """Run the live server: avatars, sessions, streamed audio + visemes, the browser player."""
    from aiohttp import web

    from avatarkit.errors import AvatarkitError
    from server.app import create_app
    from server.config import ServerConfig
    from server.http import RedactedAccessLogger

    config = ServerConfig.from_env(
        avatars_dir=avatars, token=token, cors_origins=tuple(cors or ()),
        elevenlabs_voice_id=voice_id, default_lang=lang, viseme_fps=fps,
        max_sessions=max_sessions, max_text_chars=max_text, session_idle_ttl_s=idle_ttl,
        max_upload_bytes=int(max_upload_mb * 1024 * 1024),
    )
    application = create_app(config)
    provider = "ElevenLabs" if config.elevenlabs_api_key else "embedded espeak-ng voice"
    shown = "localhost" if host in ("0.0.0.0", "::") else host
    logging.getLogger("aiohttp.access").setLevel(logging.INFO if os.environ.get(
        "AVATARKIT_ACCESS_LOG") else logging.WARNING)

    async def run() -> None:
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
            auth = " (token required)" if config.token else ""
            console.print(f"avatarkit serving on [bold]http://{shown}:{port}/[/]{auth} - "
                          f"voice: {provider}; avatars: {avatars or 'temporary folder'}; "
                          "Ctrl+C to stop")
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        console.print("stopped")
