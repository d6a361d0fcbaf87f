"""`avatarkit serve`: run the live server (parse options, print the URL, nothing else)."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

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
    fps: Annotated[float, typer.Option(help="Viseme frames per second on the wire.")] = 30.0,
    max_sessions: Annotated[int, typer.Option(help="Open sessions allowed.")] = 500,
    max_text: Annotated[int, typer.Option(help="Longest text of one speak, characters.")] = 5000,
    idle_ttl: Annotated[float, typer.Option(
        help="Close sessions idle (no client, no command) this long, seconds.")] = 600.0,
    max_upload_mb: Annotated[float, typer.Option(help="Largest photo upload, MiB.")] = 20.0,
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

    config = ServerConfig.from_env(
        avatars_dir=avatars, token=token, cors_origins=tuple(cors or ()),
        elevenlabs_voice_id=voice_id, default_lang=lang, viseme_fps=fps,
        max_sessions=max_sessions, max_text_chars=max_text, session_idle_ttl_s=idle_ttl,
        max_upload_bytes=int(max_upload_mb * 1024 * 1024), model=model,
        onnx_provider=onnx_provider, batch_max_frames=batch_frames,
        batch_max_wait_ms=batch_wait_ms, patch_codec=patch_codec,
        listen_workers=listen_workers, openai_model=openai_model,
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
            lipsync = application.get(LIPSYNC)
            if lipsync is not None:
                console.print(f"lipsync onnx: {lipsync.describe()}, batches of up to "
                              f"{batch_frames} frames / {batch_wait_ms:g} ms")
            where = escape(str(avatars or "temporary folder"))
            console.print(f"avatarkit serving on [bold]http://{shown}:{port}/[/]{auth} - "
                          f"voice: {provider}; avatars: {where}; "
                          "Ctrl+C to stop")
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        console.print("stopped")
