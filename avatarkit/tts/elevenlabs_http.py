"""ElevenLabs over plain HTTP: `POST .../stream/with-timestamps`, streamed JSON lines.

The fallback for networks that block WebSockets. One request carries the whole text; the
response streams one JSON object per line with `audio_base64` and an `alignment` in seconds
(snake_case), which we turn into the same `SpeechChunk`s as the WebSocket transport.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp

from avatarkit.tts.elevenlabs_api import (
    ChunkAssembler,
    ElevenLabsOptions,
    classify,
    decode,
    error_details,
    error_fields,
    provider_error,
)
from avatarkit.tts.provider import SpeechChunk

#: Largest single JSON line accepted (a few seconds of 44.1 kHz audio in base64).
MAX_LINE_BYTES = 32 * 1024 * 1024


async def stream_http(
    session: aiohttp.ClientSession, options: ElevenLabsOptions, text: str
) -> AsyncIterator[SpeechChunk]:
    """Speak `text` through the HTTP streaming endpoint; yield chunks as lines arrive."""
    o = options
    body: dict[str, object] = {"text": text, "model_id": o.model_id,
                               "voice_settings": o.voice_settings.to_json()}
    if o.language_code:
        body["language_code"] = o.language_code
    try:
        async with asyncio.timeout(o.connect_timeout_s):
            resp = await session.post(o.http_url(), json=body, headers=o.headers)
    except TimeoutError as exc:
        raise provider_error("timeout", f"no HTTP response within {o.connect_timeout_s:g} s",
                             o) from exc
    except aiohttp.ClientError as exc:
        raise provider_error("connection_lost", f"could not reach the HTTP endpoint "
                             f"({type(exc).__name__})", o) from exc
    async with resp:
        if resp.status != 200:
            raw = await _read_error(resp)
            error, message = error_details(raw)
            code = classify(resp.status, error, message)
            raise provider_error(code, message or f"HTTP {resp.status}", o,
                                 detail=f"HTTP {resp.status}{f', {error}' if error else ''}")
        chunks = ChunkAssembler(o.sample_rate, o)
        async for line in _lines(resp, o):
            data = decode(line, o)
            if data.get("error") or data.get("detail"):
                error, message = error_fields(data) or (None, line.decode("utf-8", "replace")[:200])
                raise provider_error(classify(None, error, message), message or str(error), o)
            chunk = chunks.chunk(data, "audio_base64")
            if chunk is not None:
                yield chunk


async def _read_error(resp: aiohttp.ClientResponse) -> str:
    try:
        return (await resp.content.read(64 * 1024)).decode("utf-8", "replace")
    except (aiohttp.ClientError, TimeoutError):
        return ""


async def _lines(resp: aiohttp.ClientResponse, o: ElevenLabsOptions) -> AsyncIterator[bytes]:
    """Non-empty lines of the body, each within the receive timeout; drops become errors."""
    buf = b""
    received_bytes = 0
    while True:
        try:
            async with asyncio.timeout(o.receive_timeout_s):
                data = await resp.content.readany()
        except TimeoutError as exc:
            raise provider_error("timeout", f"no data for {o.receive_timeout_s:g} s "
                                 "(receive_timeout_s)", o) from exc
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
            raise provider_error("connection_lost", f"the HTTP stream broke off after "
                                 f"{received_bytes} bytes ({type(exc).__name__})", o) from exc
        if not data:
            break
        received_bytes += len(data)
        buf += data
        *lines, buf = buf.split(b"\n")
        for line in lines:
            if line.strip():
                yield line
        if len(buf) > MAX_LINE_BYTES:
            raise provider_error("provider_error", "streamed a line over 32 MiB", o)
    if buf.strip():
        yield buf
