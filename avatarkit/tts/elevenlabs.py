"""ElevenLabs streaming TTS: text in, PCM chunks with character alignment out, as they arrive.

The WebSocket `stream-input` endpoint is the main transport: we send the text sentence by
sentence (each flushed) while audio for earlier sentences is already coming back, so first
audio leaves as early as the service allows. The HTTP `stream/with-timestamps` endpoint is
the fallback (`elevenlabs_http`). Each received message becomes one `SpeechChunk` at once:
its PCM, where it starts on the stream clock, and its alignment exactly as the service sent
it (the viseme engine detects whether times restart per chunk). Stopping iteration (barge-in)
closes the socket immediately. Failures become `ProviderError` with a code for clients and
metrics; the API key travels only in the `xi-api-key` header and never appears in messages.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import aiohttp

from avatarkit.errors import AvatarkitError
from avatarkit.tts.provider import ProviderError, SpeechChunk
from avatarkit.tts.sentences import split_sentences
from avatarkit.visemes.alignment import AlignmentChunk, CharAlignment, parse_alignment

log = logging.getLogger(__name__)

#: "George", a premade voice every ElevenLabs account has (the docs' example voice).
DEFAULT_VOICE_ID = "JBFqnCBsd6RMkjVDRZzb"
#: Output formats we accept: raw PCM16 mono (we stream samples, never decode MP3).
OUTPUT_FORMATS: dict[str, int] = {
    "pcm_16000": 16000, "pcm_22050": 22050, "pcm_24000": 24000, "pcm_44100": 44100,
}
TRANSPORTS = ("ws", "http", "auto")
_VOICE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class VoiceSettings:
    """Per-request voice settings (ElevenLabs' own defaults)."""

    #: 0–1: higher is steadier and more monotone, lower more expressive.
    stability: float = 0.5
    #: 0–1: how closely to stick to the original voice.
    similarity_boost: float = 0.75

    def to_json(self) -> dict[str, float]:
        """The `voice_settings` object of the wire protocol."""
        return {"stability": self.stability, "similarity_boost": self.similarity_boost}


@dataclass(frozen=True)
class ElevenLabsOptions:
    """How to reach ElevenLabs and what to ask for (validated on construction)."""

    #: The account's API key; sent only in the `xi-api-key` header, hidden from repr/logs.
    api_key: str = field(repr=False)
    #: Voice to speak with (default: George, a premade voice on every account).
    voice_id: str = DEFAULT_VOICE_ID
    #: Model; `eleven_flash_v2_5` has the lowest latency (~75 ms) and 32 languages.
    model_id: str = "eleven_flash_v2_5"
    #: `pcm_16000`, `pcm_22050`, `pcm_24000` or `pcm_44100` (PCM16 mono at that rate).
    output_format: str = "pcm_16000"
    #: Base of the WebSocket endpoint (tests point it at a fake on loopback).
    ws_base_url: str = "wss://api.elevenlabs.io"
    #: Base of the HTTP endpoint used by the `http` transport and as the `auto` fallback.
    http_base_url: str = "https://api.elevenlabs.io"
    #: `ws`, `http`, or `auto` (WebSocket, falling back to HTTP when the handshake fails).
    transport: str = "ws"
    #: Seconds the service waits for more text before closing the socket (1–180).
    inactivity_timeout_s: int = 20
    #: Characters buffered before each generation step (first, second, ...): small first
    #: values give earlier first audio; each must be 50–500.
    chunk_length_schedule: tuple[int, ...] = (50, 90, 120, 150)
    #: Stability and similarity of the voice.
    voice_settings: VoiceSettings = field(default_factory=VoiceSettings)
    #: ISO 639-1 language to enforce (e.g. `de`; flash/turbo v2.5 only); None = detect.
    language_code: str | None = None
    #: Seconds allowed for the TCP/TLS connect and the WebSocket handshake.
    connect_timeout_s: float = 10.0
    #: Seconds allowed between two messages from the service before giving up.
    receive_timeout_s: float = 15.0
    #: Retries of a request the service refused before any audio came (rate limit, 5xx, a
    #: dropped or garbled answer), after `retry_backoff_s`, then twice that, ...; a stream
    #: that already yielded audio is never replayed (the listener heard it).
    retries: int = 2
    retry_backoff_s: float = 0.5

    def __post_init__(self) -> None:
        if not isinstance(self.api_key, str) or not self.api_key.strip():
            raise AvatarkitError(
                "the ElevenLabs API key is empty: set ELEVENLABS_API_KEY (or use the embedded "
                "voice with provider=espeak)"
            )
        if self.output_format not in OUTPUT_FORMATS:
            raise AvatarkitError(
                f"unsupported ElevenLabs output_format {self.output_format!r}: use one of "
                f"{', '.join(OUTPUT_FORMATS)} (raw PCM is streamed to clients; MP3/μ-law "
                "are not)"
            )
        if self.transport not in TRANSPORTS:
            raise AvatarkitError(
                f"unknown ElevenLabs transport {self.transport!r}: use ws, http or auto"
            )
        if not _VOICE_ID.match(self.voice_id):
            raise AvatarkitError(
                f"malformed ElevenLabs voice_id {self.voice_id!r}: expected the voice's id "
                f"(letters and digits, e.g. {DEFAULT_VOICE_ID}), not its name"
            )
        if self.language_code is not None and not re.fullmatch(r"[a-z]{2,3}",
                                                                self.language_code):
            raise AvatarkitError(
                f"language_code must be an ISO 639-1 code such as en, de or ja, got "
                f"{self.language_code!r}"
            )
        if not self.model_id.strip():
            raise AvatarkitError("the ElevenLabs model_id is empty (e.g. eleven_flash_v2_5)")
        if not 1 <= self.inactivity_timeout_s <= 180:
            raise AvatarkitError(
                f"inactivity_timeout_s must be 1–180 seconds, got {self.inactivity_timeout_s}"
            )
        sched = tuple(self.chunk_length_schedule)
        if not sched or any(not 50 <= int(n) <= 500 for n in sched):
            raise AvatarkitError(
                f"chunk_length_schedule must be 1+ values of 50–500 characters, got {sched}"
            )
        vs = self.voice_settings
        for name, value in (("stability", vs.stability), ("similarity_boost",
                                                             vs.similarity_boost)):
            if not 0.0 <= value <= 1.0:
                raise AvatarkitError(f"voice setting {name} must be 0–1, got {value}")
        if self.retries < 0 or self.retry_backoff_s < 0:
            raise AvatarkitError("retries and retry_backoff_s must be >= 0")
        if self.connect_timeout_s <= 0 or self.receive_timeout_s <= 0:
            raise AvatarkitError("connect_timeout_s and receive_timeout_s must be positive")
        _check_base(self.ws_base_url, ("ws", "wss"), "ws_base_url")
        _check_base(self.http_base_url, ("http", "https"), "http_base_url")

    @property
    def sample_rate(self) -> int:
        """Sample rate of the PCM this configuration yields, Hz."""
        return OUTPUT_FORMATS[self.output_format]

    @property
    def headers(self) -> dict[str, str]:
        """Request headers: the API key goes here, never into a URL."""
        return {"xi-api-key": self.api_key}

    def ws_url(self) -> str:
        """The `stream-input` URL with its query (no secrets in it)."""
        query = urlencode({
            "model_id": self.model_id,
            "output_format": self.output_format,
            "sync_alignment": "true",
            "inactivity_timeout": str(self.inactivity_timeout_s),
            **({"language_code": self.language_code} if self.language_code else {}),
        })
        return (f"{self.ws_base_url.rstrip('/')}/v1/text-to-speech/{quote(self.voice_id)}"
                f"/stream-input?{query}")

    def http_url(self) -> str:
        """The `stream/with-timestamps` URL with its query (no secrets in it)."""
        query = urlencode({"output_format": self.output_format})
        return (f"{self.http_base_url.rstrip('/')}/v1/text-to-speech/"
                f"{quote(self.voice_id)}/stream/with-timestamps?{query}")

    def init_message(self) -> dict[str, Any]:
        """First WebSocket message: a single space, voice settings and the chunk schedule."""
        return {
            "text": " ",
            "voice_settings": self.voice_settings.to_json(),
            "generation_config": {"chunk_length_schedule": list(self.chunk_length_schedule)},
        }


def _check_base(url: str, schemes: tuple[str, ...], name: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in schemes or not parts.netloc:
        raise AvatarkitError(
            f"malformed {name} {url!r}: expected {schemes[-1]}://host[:port]"
        )


# -- errors -----------------------------------------------------------------------------------
_AUTH_ERRORS = {"invalid_api_key", "unauthorized", "auth_error", "authentication_error",
                "invalid_authorization", "missing_api_key"}
_RATE_ERRORS = {"too_many_concurrent_requests", "rate_limited", "rate_limit_exceeded",
                "system_busy", "concurrent_limit_exceeded"}


#: Failures worth another try when no audio came yet: the service was busy or broke, not
#: the request (a bad key, quota or text fails the same way again; a timeout already waited).
RETRYABLE = frozenset({"rate_limited", "provider_error", "connection_lost"})


def classify(status: int | None, error: str | None, message: str) -> str:
    """A `ProviderError` code from an HTTP status / WebSocket error name and message."""
    e, m = (error or "").lower(), message.lower()
    if "quota" in e or "quota" in m or "credits remaining" in m:
        return "quota_exceeded"
    if status == 429 or e in _RATE_ERRORS or "rate limit" in m or "concurren" in m:
        return "rate_limited"
    if status in (401, 403) or e in _AUTH_ERRORS or "api key" in m or "api_key" in m:
        return "unauthorized"
    if "timeout" in e or "timeout" in m or "have not received" in m:
        return "timeout"
    if status is not None and 400 <= status < 500:
        return "bad_request"
    if status == 1008:  # WebSocket policy violation: the service refused the input
        return "bad_request"
    return "provider_error"


def provider_error(
    code: str, server_message: str, options: ElevenLabsOptions, *, detail: str = ""
) -> ProviderError:
    """An actionable `ProviderError` for `code`; any echo of the key is scrubbed."""
    said = server_message.replace(options.api_key, "***").strip() or "no details"
    what = f"{said}{f' ({detail})' if detail else ''}"
    text = {
        "unauthorized": f"ElevenLabs rejected the API key: {what}; check ELEVENLABS_API_KEY "
                        "(the key from your ElevenLabs profile, sent as xi-api-key)",
        "quota_exceeded": f"ElevenLabs quota exceeded: {what}; add credits to the account or "
                          "use the embedded voice (provider espeak)",
        "rate_limited": f"ElevenLabs is rate limiting this key: {what}; retry shortly or "
                        "speak fewer utterances at once",
        "bad_request": f"ElevenLabs refused the request: {what}; check the voice_id, "
                       "model_id and text",
        "timeout": f"ElevenLabs timed out: {what}; retry the utterance",
        "connection_lost": f"the connection to ElevenLabs was lost: {what}; retry the "
                           "utterance",
    }.get(code, f"ElevenLabs failed: {what}")
    return ProviderError(text, code)


def error_details(body: str) -> tuple[str | None, str]:
    """(error name, message) from an ElevenLabs JSON error body (`detail` or flat)."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, ValueError):
        return None, body[:200]
    if isinstance(data, Mapping):
        detail = data.get("detail", data)
        if isinstance(detail, Mapping):
            name = detail.get("status") or detail.get("error") or detail.get("code")
            return (str(name) if name else None), str(detail.get("message", ""))[:300]
        if isinstance(detail, str):
            return None, detail[:300]
        if isinstance(detail, list) and detail:  # validation errors (422)
            first = detail[0]
            if isinstance(first, Mapping):
                return "validation_error", str(first.get("msg", first))[:300]
    return None, body[:200]


# -- messages -> chunks -----------------------------------------------------------------------
class ChunkAssembler:
    """Turns decoded stream messages into `SpeechChunk`s on one stream clock.

    Keeps the clock (audio received so far) and an odd trailing byte, so every chunk holds
    whole 16-bit samples even if the service cut a sample between two messages.
    """

    def __init__(self, sample_rate: int, options: ElevenLabsOptions) -> None:
        self.sample_rate = sample_rate
        self.options = options
        self.clock_ms = 0.0
        self._carry = b""

    def chunk(self, msg: Mapping[str, Any], audio_key: str) -> SpeechChunk | None:
        """One message -> a chunk, or None when it carries neither audio nor alignment."""
        pcm = self._pcm(msg.get(audio_key))
        alignment = self._alignment(msg, "alignment")
        normalized = self._alignment(
            msg, "normalizedAlignment" if "normalizedAlignment" in msg else "normalized_alignment"
        )
        if not pcm and alignment is None and normalized is None:
            return None
        audio_ms = len(pcm) / 2 / self.sample_rate * 1000.0
        spoken = alignment or normalized
        out = SpeechChunk(
            pcm, self.sample_rate, self.clock_ms, (),
            AlignmentChunk(alignment, normalized, audio_ms),
            spoken.text if spoken is not None else "",
        )
        self.clock_ms += audio_ms
        return out

    def _pcm(self, audio: Any) -> bytes:
        if not audio:
            return b""
        if not isinstance(audio, str):
            raise provider_error("provider_error", "audio is not a base64 string",
                                 self.options)
        try:
            raw = self._carry + base64.b64decode(audio, validate=False)
        except (binascii.Error, ValueError) as exc:
            raise provider_error("provider_error", f"undecodable audio ({exc})",
                                 self.options) from exc
        cut = len(raw) - len(raw) % 2
        self._carry = raw[cut:]
        return raw[:cut]

    def _alignment(self, msg: Mapping[str, Any], key: str) -> CharAlignment | None:
        try:
            return parse_alignment(msg.get(key))
        except AvatarkitError as exc:
            # Audio matters more than lip timing: keep speaking, lose this chunk's alignment.
            log.warning("ElevenLabs sent a malformed %s (%s); ignoring it for this chunk",
                        key, exc)
            return None


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
        from avatarkit.tts.elevenlabs_http import stream_http

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
                    data = _decode(msg.data, o)
                    if data.get("error") or (data.get("message") and not data.get("audio")):
                        raise _ws_error(data, o)
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
            with contextlib.suppress(Exception):
                await ws.close()


def _decode(data: str, options: ElevenLabsOptions) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except json.JSONDecodeError as exc:
        raise provider_error("provider_error", f"sent a message that is not JSON "
                             f"({exc.msg})", options) from exc
    if not isinstance(obj, dict):
        raise provider_error("provider_error", "sent a JSON message that is not an object",
                             options)
    return obj


def _ws_error(data: Mapping[str, Any], options: ElevenLabsOptions) -> ProviderError:
    """`{"message", "error", "code"}` -> the matching `ProviderError`."""
    message = str(data.get("message") or "")
    error = str(data.get("error") or "")
    ws_code = data.get("code")
    status = ws_code if isinstance(ws_code, int) else None
    code = classify(status, error, message)
    detail = ", ".join(x for x in (f"error {error}" if error else "",
                                   f"code {ws_code}" if ws_code is not None else "") if x)
    return provider_error(code, message or error, options, detail=detail)
