"""ElevenLabs streaming TTS: text in, PCM chunks with character alignment out, as they arrive.

The WebSocket `stream-input` endpoint is the main transport: we send the text sentence by
sentence (each flushed) while audio for earlier sentences is already coming back, so first
audio leaves as early as the service allows. The HTTP `stream/with-timestamps` endpoint is
the fallback (`elevenlabs_http`); what both share - options, message decoding, chunk
assembly, errors - is `elevenlabs_api`. Each received message becomes one `SpeechChunk` at once:
its PCM, where it starts on the stream clock, and its alignment exactly as the service sent
it (the viseme engine detects whether times restart per chunk). Stopping iteration (barge-in)
closes the socket immediately. Failures become `ProviderError` with a code for clients and
metrics; the API key travels only in the `xi-api-key` header and never appears in messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aiohttp

from avatarkit.errors import AvatarkitError
from avatarkit.tts.elevenlabs_api import (
    DEFAULT_VOICE_ID,
    OUTPUT_FORMATS,
    RETRYABLE,
    TRANSPORTS,
    ChunkAssembler,
    ElevenLabsOptions,
    VoiceSettings,
    classify,
    decode,
    provider_error,
    ws_error,
)
from avatarkit.tts.elevenlabs_http import stream_http
from avatarkit.tts.provider import ProviderError, SpeechChunk
from avatarkit.tts.sentences import split_sentences
from avatarkit.tts.sockets import close_quietly

__all__ = ["DEFAULT_VOICE_ID", "OUTPUT_FORMATS", "TRANSPORTS", "ChunkAssembler",
           "ElevenLabsOptions", "ElevenLabsProvider", "VoiceSettings"]

log = logging.getLogger(__name__)


# -- the provider ----------------------------------------------------------------------------
class ElevenLabsProvider:
    """`Provider` over ElevenLabs: one `SpeechChunk` per received audio/alignment message.

    One provider may serve many concurrent streams; each stream has its own socket. Pass a
    shared `aiohttp.ClientSession` to pool connections, or let the provider own one (closed
    by `aclose()`).
    """

    def __init__(
        self, options: ElevenLabsOptions, session: aiohttp.ClientSession | None = None
    ) -> None:
        self.options = options
        self.sample_rate = options.sample_rate
        self._session = session
        self._owns_session = session is None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            if not self._owns_session:
                raise AvatarkitError("the aiohttp session given to ElevenLabsProvider is closed")
            self._session = aiohttp.ClientSession()
        return self._session

    async def aclose(self) -> None:
        """Close the HTTP session if this provider created it."""
        if self._owns_session and self._session is not None and not self._session.closed:
            await self._session.close()
        if self._owns_session:
            self._session = None

    async def stream(self, text: str) -> AsyncIterator[SpeechChunk]:
        """Speak `text`; yield chunks as they arrive. Closing the iterator stops the service.

        A refusal before any audio (`RETRYABLE`) is retried with backoff; once a chunk went
        out, a failure ends the stream (replaying would repeat what was heard)."""
        sentences = split_sentences(text)
        if not sentences:
            raise AvatarkitError("no text to speak: the text is empty")
        o = self.options
        for attempt in range(o.retries + 1):
            yielded = False
            try:
                # closed here at once when the consumer stops (barge-in closes the socket)
                async with contextlib.aclosing(self._stream_once(sentences)) as chunks:
                    async for chunk in chunks:
                        yielded = True
                        yield chunk
                return
            except ProviderError as exc:
                if yielded or exc.code not in RETRYABLE or attempt == o.retries:
                    raise
                delay = o.retry_backoff_s * 2 ** attempt
                log.info("ElevenLabs refused before any audio (%s); retry %d of %d in %.1f s",
                         exc.code, attempt + 1, o.retries, delay)
                await asyncio.sleep(delay)

    async def _stream_once(self, sentences: list[str]) -> AsyncIterator[SpeechChunk]:
        transport = self.options.transport
        if transport == "http":
            async for chunk in self._stream_http(sentences):
                yield chunk
            return
        try:
            ws = await self._connect()
        except ProviderError as exc:
            if transport != "auto" or exc.code == "unauthorized":
                raise
            log.info("ElevenLabs WebSocket unavailable (%s); using the HTTP stream", exc.code)
            async for chunk in self._stream_http(sentences):
                yield chunk
            return
        async for chunk in self._stream_ws(ws, sentences):
            yield chunk

    def _stream_http(self, sentences: list[str]) -> AsyncIterator[SpeechChunk]:
        return stream_http(self._client(), self.options, " ".join(sentences))

    async def _connect(self) -> aiohttp.ClientWebSocketResponse:
        o = self.options
        try:
            async with asyncio.timeout(o.connect_timeout_s):
                return await self._client().ws_connect(
                    o.ws_url(), headers=o.headers, autoping=True, heartbeat=None,
                    max_msg_size=64 * 1024 * 1024,
                    timeout=aiohttp.ClientWSTimeout(ws_close=1.0),
                )
        except aiohttp.WSServerHandshakeError as exc:
            code = classify(exc.status, None, exc.message or "")
            raise provider_error(code, f"the WebSocket handshake was refused with HTTP "
                                 f"{exc.status}", o) from exc
        except TimeoutError as exc:
            raise provider_error("timeout", f"no WebSocket connection within "
                                 f"{o.connect_timeout_s:g} s", o) from exc
        except aiohttp.ClientError as exc:
            raise provider_error("connection_lost", f"could not connect to "
                                 f"{urlsplit(o.ws_base_url).netloc} ({type(exc).__name__})",
                                 o) from exc

    async def _send_text(
        self, ws: aiohttp.ClientWebSocketResponse, sentences: list[str], ending: asyncio.Event
    ) -> None:
        """Init, then each sentence flushed (ending in a space), then the closing message."""
        try:
            await ws.send_json(self.options.init_message())
            for sentence in sentences:
                await ws.send_json({"text": sentence + " ", "flush": True})
            ending.set()  # before the send: the service may answer before we resume
            await ws.send_json({"text": ""})
        except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
            # The receiver sees the close and reports it; nothing to add here.
            log.debug("ElevenLabs send stopped: %s", type(exc).__name__)

    async def _stream_ws(
        self, ws: aiohttp.ClientWebSocketResponse, sentences: list[str]
    ) -> AsyncIterator[SpeechChunk]:
        o = self.options
        ending = asyncio.Event()
        sender = asyncio.create_task(self._send_text(ws, sentences, ending))
        chunks = ChunkAssembler(self.sample_rate, o)
        try:
            while True:
                try:
                    msg = await ws.receive(timeout=o.receive_timeout_s)
                except TimeoutError as exc:
                    raise provider_error(
                        "timeout", f"no message for {o.receive_timeout_s:g} s (receive_timeout_s) "
                        f"after {chunks.clock_ms:.0f} ms of audio", o) from exc
                if msg.type == aiohttp.WSMsgType.TEXT:
                    data = decode(msg.data, o)
                    if data.get("error") or (data.get("message") and not data.get("audio")):
                        raise ws_error(data, o)
                    chunk = chunks.chunk(data, "audio")
                    if chunk is not None:
                        yield chunk
                    if data.get("isFinal") is True and ending.is_set():
                        return
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    raise provider_error("provider_error", "unexpected binary frame", o)
                else:  # CLOSE / CLOSING / CLOSED / ERROR
                    close = ws.close_code
                    reason = msg.extra if isinstance(msg.extra, str) else ""
                    if close == 1000 and ending.is_set():
                        return  # closed normally after all text was sent: done
                    if close is not None and close not in (1000, 1001, 1006):
                        code = classify(close, None, reason)
                        raise provider_error(code, reason or "closed the stream",
                                             o, detail=f"close code {close}")
                    raise provider_error(
                        "connection_lost", f"socket closed (code {close}) after "
                        f"{chunks.clock_ms:.0f} ms of audio", o)
        finally:
            sender.cancel()
            await asyncio.wait([sender])  # never raises the sender's own cancellation
            # Closing tells the service to stop generating (barge-in, errors, done).
            await close_quietly(ws)
