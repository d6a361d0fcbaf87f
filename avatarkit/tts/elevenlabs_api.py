"""What the ElevenLabs API takes and sends, shared by both transports.

Options (voice, model, format, endpoints), the decoding of a streamed message (a WebSocket
message or an HTTP line: the same JSON object), the assembly of messages into `SpeechChunk`s
and the parsing and wording of errors. `elevenlabs.py` (the provider and its WebSocket
transport) and `elevenlabs_http.py` (the HTTP fallback) both import this module, never each
other's internals.
"""

from __future__ import annotations

import binascii
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import pybase64

from avatarkit.errors import AvatarkitError
from avatarkit.tts.alignment import AlignmentChunk, CharAlignment, parse_alignment
from avatarkit.tts.provider import ProviderError, SpeechChunk

log = logging.getLogger("avatarkit.tts.elevenlabs")

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
    found = error_fields(data) if isinstance(data, Mapping) else None
    return found if found is not None else (None, body[:200])


def error_fields(data: Mapping[str, Any]) -> tuple[str | None, str] | None:
    """(error name, message) of a decoded error object: `detail` (an object, a string or a
    list of validation errors) or the object itself; None when it is none of these."""
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
    return None


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
            # lenient as base64.b64decode (valid base64 decodes the same; malformed input may
            # decode differently or raise), ~5x faster: every chunk of every relayed stream
            raw = self._carry + pybase64.b64decode(audio)
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


def decode(data: str | bytes, options: ElevenLabsOptions) -> dict[str, Any]:
    """One streamed message (a WebSocket text message or an HTTP line) as a JSON object."""
    try:
        obj = json.loads(data)
    except json.JSONDecodeError as exc:
        raise provider_error("provider_error", f"sent a message that is not JSON "
                             f"({exc.msg})", options) from exc
    if not isinstance(obj, dict):
        raise provider_error("provider_error", "sent a JSON message that is not an object",
                             options)
    return obj


def ws_error(data: Mapping[str, Any], options: ElevenLabsOptions) -> ProviderError:
    """`{"message", "error", "code"}` -> the matching `ProviderError`."""
    message = str(data.get("message") or "")
    error = str(data.get("error") or "")
    ws_code = data.get("code")
    status = ws_code if isinstance(ws_code, int) else None
    code = classify(status, error, message)
    detail = ", ".join(x for x in (f"error {error}" if error else "",
                                   f"code {ws_code}" if ws_code is not None else "") if x)
    return provider_error(code, message or error, options, detail=detail)
