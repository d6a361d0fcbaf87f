"""A fake ElevenLabs: a real aiohttp server on loopback speaking the real TTS protocols.

WebSocket `GET /v1/text-to-speech/{voice_id}/stream-input` and HTTP
`POST /v1/text-to-speech/{voice_id}/stream/with-timestamps`, with real speech: each flushed
piece of text is spoken by the embedded espeak-ng voice, resampled to the requested
`pcm_*` rate, cut into chunks every `chunk_chars` characters (so words straddle chunks), and
sent with a character alignment that is consistent with the audio. The ground truth (word
and phoneme times on the stream clock) is kept in `truth_words` / `truth_phonemes`.

Constructor switches reproduce what the real service does or has done: times restarting per
chunk or running over the stream, null alignments, a spurious leading space in
`normalizedAlignment`, each spelling of the durations field, alignment and audio in separate
messages, error messages with close code 1008, 401 on a bad `xi-api-key`, quota and rate
errors, a dropped connection, the inactivity close, a stalled stream, per-chunk delay.
Everything a client sends is recorded (`ws_sessions`, `http_requests`) for assertions on
the bytes on the wire.

Use from a test::

    from tests.fakes.elevenlabs import FakeElevenLabs

    async with FakeElevenLabs(time_base="chunk") as fake:
        provider = ElevenLabsProvider(fake.options())
        ...

or the `fake_elevenlabs` fixture (a factory: `fake = await fake_elevenlabs(**switches)`),
imported into a test module or a conftest.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pytest
from aiohttp import WSMsgType, web
from scipy.signal import resample_poly

from avatarkit.tts.elevenlabs import ElevenLabsOptions
from avatarkit.tts.espeak_lib import engine
from avatarkit.tts.sentences import split_sentences
from avatarkit.visemes.g2p import espeak_lexicon
from avatarkit.visemes.phonemes import TimedPhoneme

PCM_RATES = {"pcm_16000": 16000, "pcm_22050": 22050, "pcm_24000": 24000, "pcm_44100": 44100}
DURATION_KEYS = ("charDurationsMs", "charsDurationsMs", "char_durations_ms")
FAILURES = ("bad_request", "quota", "rate_limit", "unauthorized", "inactivity", "drop", "stall",
            "garbage", "server_error")
INACTIVITY_REASON = (
    "Have not received a new text input within the timeout of {n} seconds. Streaming input "
    'terminated. Please make sure to either feed the input in the timely manner, or to send '
    'the end of input text (empty string "") when done.'
)
QUOTA_MESSAGE = (
    "This request exceeds your quota of 10000. You have 12 credits remaining, while 41 "
    "credits are required for this request."
)
BAD_INPUT_MESSAGE = (
    "Could not parse input message, make sure it is a json and follows the schema outlined "
    "in protocol."
)
RATE_MESSAGE = "Too many concurrent requests for this API key; try again later."
_PATH = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class TruthWord:
    """A spoken word and when espeak-ng spoke it, on the stream clock (ms)."""

    text: str
    start_ms: float
    end_ms: float


@dataclass
class WsSession:
    """What one WebSocket client did: its request, every frame it sent, how it left."""

    voice_id: str
    path_qs: str
    query: dict[str, str]
    headers: dict[str, str]
    frames: list[str] = field(default_factory=list)
    #: For each frame: how many audio chunks had been sent when it arrived.
    frame_chunks: list[int] = field(default_factory=list)
    messages: list[Any] = field(default_factory=list)
    chunks_sent: int = 0
    #: Loop time when the client's close frame (or the broken connection) was seen.
    closed_at: float | None = None
    client_close_code: int | None = None
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    first_chunk_sent: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def init(self) -> Any:
        """The first message (the `{"text": " ", ...}` init)."""
        return self.messages[0] if self.messages else None

    @property
    def texts(self) -> list[Any]:
        """Messages after the init (text pieces, flushes and the closing `{"text": ""}`)."""
        return self.messages[1:]


@dataclass
class HttpRequest:
    """One HTTP request to the streaming endpoint."""

    voice_id: str
    path_qs: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass(frozen=True)
class _Chunk:
    """A slice of a spoken piece: PCM and its characters (piece-relative ms)."""

    pcm: bytes
    audio_start_ms: float
    chars: tuple[str, ...]
    starts: tuple[float, ...]
    durations: tuple[float, ...]


@dataclass(frozen=True)
class _Piece:
    """A flushed piece of text, spoken: audio at the output rate, timing piece-relative."""

    pcm: bytes
    duration_ms: float
    chunks: tuple[_Chunk, ...]
    words: tuple[TruthWord, ...]
    phonemes: tuple[TimedPhoneme, ...]


@lru_cache(maxsize=512)
def speak_piece(text: str, rate: int, chunk_chars: int, wpm: int = 175) -> _Piece:
    """Speak `text` with espeak-ng; character times follow its phoneme timing (blocking).

    Cached, so many sessions speaking the same text (benchmarks) cost one synthesis.
    """
    syn = engine().synthesize(text, "en-us", rate_wpm=wpm)
    pcm16 = np.frombuffer(syn.pcm, dtype="<i2").astype(np.float32)
    g = math.gcd(rate, syn.sample_rate)
    out = resample_poly(pcm16, rate // g, syn.sample_rate // g) if rate != syn.sample_rate \
        else pcm16
    pcm = np.clip(np.round(out), -32768, 32767).astype("<i2").tobytes()
    duration = len(pcm) / 2 / rate * 1000.0
    words = _word_spans(text, syn.phonemes, duration)
    starts, durs = _char_times(text, words, duration)
    chunks = []
    cuts = list(range(0, len(text), max(1, chunk_chars)))
    for i, a in enumerate(cuts):
        b = cuts[i + 1] if i + 1 < len(cuts) else len(text)
        s0 = 0 if i == 0 else round(starts[a] * rate / 1000.0)
        s1 = len(pcm) // 2 if b == len(text) else round(starts[b] * rate / 1000.0)
        chunks.append(_Chunk(pcm[2 * s0 : 2 * s1], s0 / rate * 1000.0, tuple(text[a:b]),
                             tuple(starts[a:b]), tuple(durs[a:b])))
    return _Piece(pcm, duration, tuple(chunks), tuple(w for w, _, _ in words),
                  tuple(syn.phonemes))


def _word_spans(
    text: str, phonemes: tuple[TimedPhoneme, ...], duration: float
) -> list[tuple[TruthWord, int, int]]:
    """Words of `text` with espeak's timing: each consumes its own phoneme count in order."""
    lex = espeak_lexicon("en-us")
    spoken = [p for p in phonemes if p.symbol != "_"]
    matches = [m for m in re.finditer(r"[\w'’-]+", text)]
    counts = [len(lex(m.group())) for m in matches]
    out: list[tuple[TruthWord, int, int]] = []
    if sum(counts) == len(spoken):
        i = 0
        for m, n in zip(matches, counts, strict=True):
            if n:
                out.append((TruthWord(m.group(), spoken[i].start_ms, spoken[i + n - 1].end_ms),
                            m.start(), m.end()))
            i += n
        return out
    # Phonemes merged across words: spread the speech over the words by their length.
    t0 = spoken[0].start_ms if spoken else 0.0
    t1 = spoken[-1].end_ms if spoken else duration
    total = sum(len(m.group()) for m in matches) or 1
    t = t0
    for m in matches:
        d = (t1 - t0) * len(m.group()) / total
        out.append((TruthWord(m.group(), t, t + d), m.start(), m.end()))
        t += d
    return out


def _char_times(
    text: str, words: list[tuple[TruthWord, int, int]], duration: float
) -> tuple[list[float], list[float]]:
    """Start and duration of every character (ms, whole numbers like the real service)."""
    bounds: list[tuple[int, int, float, float]] = []  # char span -> time span
    pos, t = 0, 0.0
    for w, a, b in words:
        bounds.append((pos, a, t, w.start_ms))  # separators before the word
        bounds.append((a, b, w.start_ms, w.end_ms))
        pos, t = b, w.end_ms
    bounds.append((pos, len(text), t, duration))
    starts = [0.0] * len(text)
    ends = [0.0] * len(text)
    for a, b, t0, t1 in bounds:
        n = b - a
        for k in range(n):
            starts[a + k] = t0 + (t1 - t0) * k / n
            ends[a + k] = t0 + (t1 - t0) * (k + 1) / n
    s = [float(round(x)) for x in starts]
    d = [float(max(0, round(e) - round(x))) for x, e in zip(starts, ends, strict=True)]
    return s, d


class FakeElevenLabs:
    """The fake service; start with `async with` (or `start()`/`close()`)."""

    def __init__(
        self,
        *,
        api_key: str = "fake-xi-key-7f3a",
        time_base: str = "chunk",
        durations_key: str = "charDurationsMs",
        chunk_chars: int = 11,
        alignment_nulls: Collection[int] = (),
        normalized_nulls: Collection[int] = (),
        normalized_leading_space: bool = False,
        separate_alignment: bool = False,
        chunk_delay_s: float = 0.0,
        fail: str | None = None,
        fail_after_chunks: int = 0,
        fail_times: int | None = None,
        auth_failure: str = "http",
        ws_handshake_status: int | None = None,
        rate_wpm: int = 175,
        cache_messages: bool = False,
        end_with_drop: bool = False,
    ) -> None:
        """Switches (all default to a well-behaved service).

        - `api_key`: the only key accepted in the `xi-api-key` header.
        - `time_base`: `"chunk"` (times restart at 0 in every chunk, as documented) or
          `"stream"` (cumulative over the whole stream, as some clients observe).
        - `durations_key`: `charDurationsMs`, `charsDurationsMs` or `char_durations_ms`
          (the last also renames starts to `char_start_times_ms`).
        - `chunk_chars`: characters per audio chunk; cuts words across chunks.
        - `alignment_nulls` / `normalized_nulls`: chunk indices (over the stream) whose
          `alignment` / `normalizedAlignment` is null.
        - `normalized_leading_space`: `normalizedAlignment` starts with an extra " ".
        - `separate_alignment`: each chunk's alignment comes in a message of its own
          (audio null) right before its audio (alignment null).
        - `chunk_delay_s`: sleep before each chunk (0 for benchmarks).
        - `fail` + `fail_after_chunks`: after that many chunks, `bad_request` (error message
          + close 1008), `quota`, `rate_limit`, `unauthorized` (error messages + 1008),
          `inactivity` (close 1008 with the service's inactivity reason), `drop` (connection
          cut without a close frame), `stall` (stays open, sends nothing more), `garbage` (a
          message that is not JSON), `server_error` (the service's internal error + close
          1011). Over HTTP, `quota`/`rate_limit`/`bad_request`/`server_error` (503) are error
          statuses before any audio, and `garbage` a line that is not JSON.
        - `fail_times`: carry out the failure (or the handshake refusal) on this many requests
          only, then behave (a busy service that recovers); None = every request.
        - `auth_failure`: a bad key is answered with HTTP 401 at the handshake (`"http"`) or
          with an error message + close 1008 after it (`"message"`).
        - `ws_handshake_status`: refuse every WebSocket upgrade with this HTTP status
          (e.g. 503 from a proxy that blocks WebSockets; 429 for a rate limit).
        - `cache_messages`: serialise each WebSocket message once and resend the same text
          for the same chunk at the same stream offset, and keep no ground truth or audio
          (load benchmarks: hundreds of streams of one text; the bytes sent are unchanged).
        - `end_with_drop`: after the final message, cut the connection instead of closing
          it with a close frame (the client's own close frame then finds it gone).
        """
        if time_base not in ("chunk", "stream"):
            raise ValueError(f"time_base must be 'chunk' or 'stream', not {time_base!r}")
        if durations_key not in DURATION_KEYS:
            raise ValueError(f"durations_key must be one of {DURATION_KEYS}")
        if fail is not None and fail not in FAILURES:
            raise ValueError(f"fail must be one of {FAILURES}")
        self.api_key = api_key
        self.end_with_drop = end_with_drop
        self.time_base = time_base
        self.durations_key = durations_key
        self.chunk_chars = chunk_chars
        self.alignment_nulls = frozenset(alignment_nulls)
        self.normalized_nulls = frozenset(normalized_nulls)
        self.normalized_leading_space = normalized_leading_space
        self.separate_alignment = separate_alignment
        self.chunk_delay_s = chunk_delay_s
        self.fail = fail
        self.fail_after_chunks = fail_after_chunks
        self.fail_times = fail_times
        #: Failures (and handshake refusals) carried out so far.
        self.failures = 0
        self.auth_failure = auth_failure
        self.ws_handshake_status = ws_handshake_status
        self.rate_wpm = rate_wpm
        self.cache_messages = cache_messages
        self._texts_cache: dict[tuple[_Chunk, float, int], list[str]] = {}
        #: Every WebSocket connection that got past the handshake, in order.
        self.ws_sessions: list[WsSession] = []
        #: Every handshake attempt: (path with query, headers), including refused ones.
        self.ws_attempts: list[tuple[str, dict[str, str]]] = []
        self.http_requests: list[HttpRequest] = []
        #: Ground truth of the last stream, on its clock.
        self.truth_words: list[TruthWord] = []
        self.truth_phonemes: list[TimedPhoneme] = []
        self.audio = bytearray()
        self._runner: web.AppRunner | None = None
        self._open: set[web.WebSocketResponse] = set()
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> FakeElevenLabs:
        """Listen on 127.0.0.1 (a free port)."""
        app = web.Application()
        app.router.add_get("/v1/text-to-speech/{voice_id}/stream-input", self._ws)
        app.router.add_post("/v1/text-to-speech/{voice_id}/stream/with-timestamps", self._http)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def close(self) -> None:
        """Close open sockets and stop listening."""
        for ws in list(self._open):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeElevenLabs:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def ws_base_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def options(self, **overrides: Any) -> ElevenLabsOptions:
        """Provider options pointing at this fake, with its key (override any field)."""
        fields: dict[str, Any] = {"api_key": self.api_key, "ws_base_url": self.ws_base_url,
                                  "http_base_url": self.http_base_url,
                                  "receive_timeout_s": 5.0, "connect_timeout_s": 5.0}
        fields.update(overrides)
        return ElevenLabsOptions(**fields)

    @property
    def last(self) -> WsSession:
        """The most recent WebSocket session."""
        return self.ws_sessions[-1]

    # -- message building --------------------------------------------------------------------
    def _alignment(self, chunk: _Chunk, offset_ms: float, http: bool) -> dict[str, Any]:
        base = offset_ms if self.time_base == "stream" else -chunk.audio_start_ms
        starts = [max(0.0, s + base) for s in chunk.starts]
        if http:
            return {"characters": list(chunk.chars),
                    "character_start_times_seconds": [round(s / 1000, 3) for s in starts],
                    "character_end_times_seconds": [round((s + d) / 1000, 3) for s, d in
                                                    zip(starts, chunk.durations, strict=True)]}
        start_key = "char_start_times_ms" if "_" in self.durations_key else "charStartTimesMs"
        return {"chars": list(chunk.chars), start_key: [int(s) for s in starts],
                self.durations_key: [int(d) for d in chunk.durations]}

    def _messages(
        self, index: int, chunk: _Chunk, offset_ms: float, *, http: bool
    ) -> list[dict[str, Any]]:
        """The message(s) for one chunk; `offset_ms` is where its piece starts in the stream."""
        raw = None if index in self.alignment_nulls else self._alignment(chunk, offset_ms, http)
        norm = None if index in self.normalized_nulls else self._alignment(chunk, offset_ms,
                                                                          http)
        if norm is not None and self.normalized_leading_space:
            chars_key = "characters" if http else "chars"
            for key, values in norm.items():
                norm[key] = [" " if key == chars_key else values[0] if values else 0, *values]
            if http:  # a zero-length space
                norm["character_end_times_seconds"][0] = norm["character_start_times_seconds"][0]
            else:
                norm[self.durations_key][0] = 0
        audio = base64.b64encode(chunk.pcm).decode()
        if http:
            return [{"audio_base64": audio, "alignment": raw, "normalized_alignment": norm}]
        if self.separate_alignment:
            return [{"audio": None, "isFinal": None, "alignment": raw,
                     "normalizedAlignment": norm},
                    {"audio": audio, "isFinal": None, "alignment": None,
                     "normalizedAlignment": None}]
        return [{"audio": audio, "isFinal": None, "alignment": raw, "normalizedAlignment": norm}]

    def _texts(self, index: int, chunk: _Chunk, offset_ms: float) -> list[str]:
        """The WebSocket message texts for one chunk (serialised once with `cache_messages`)."""
        if not self.cache_messages:
            return [json.dumps(m) for m in self._messages(index, chunk, offset_ms, http=False)]
        nulls = (index in self.alignment_nulls) + 2 * (index in self.normalized_nulls)
        key = (chunk, offset_ms, nulls)
        texts = self._texts_cache.get(key)
        if texts is None:
            if len(self._texts_cache) > 4096:
                self._texts_cache.clear()
            texts = [json.dumps(m) for m in self._messages(index, chunk, offset_ms, http=False)]
            self._texts_cache[key] = texts
        return texts

    async def _speak(self, text: str, rate: int) -> _Piece:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            None, speak_piece, text, rate, self.chunk_chars, self.rate_wpm)

    def _record_truth(self, piece: _Piece, offset_ms: float) -> None:
        self.truth_words += [TruthWord(w.text, w.start_ms + offset_ms, w.end_ms + offset_ms)
                             for w in piece.words]
        self.truth_phonemes += [TimedPhoneme(p.symbol, p.start_ms + offset_ms,
                                             p.end_ms + offset_ms) for p in piece.phonemes]

    def _key_ok(self, request: web.Request) -> bool:
        return request.headers.get("xi-api-key") == self.api_key

    # -- WebSocket ---------------------------------------------------------------------------
    async def _ws(self, request: web.Request) -> web.StreamResponse:
        self.ws_attempts.append((request.path_qs, dict(request.headers)))
        if self.ws_handshake_status is not None and self._failing():
            self.failures += 1
            return _json_error(self.ws_handshake_status, "service_unavailable"
                               if self.ws_handshake_status >= 500 else
                               "too_many_concurrent_requests", "refused")
        if not self._key_ok(request) and self.auth_failure == "http":
            return _json_error(401, "invalid_api_key", "Invalid API key")
        fmt = request.query.get("output_format", "mp3_44100")
        ws = web.WebSocketResponse(max_msg_size=16 * 1024 * 1024)
        await ws.prepare(request)
        self._open.add(ws)
        session = WsSession(request.match_info["voice_id"], request.path_qs,
                            dict(request.query), dict(request.headers))
        self.ws_sessions.append(session)
        self.truth_words, self.truth_phonemes, self.audio = [], [], bytearray()
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        gen = asyncio.create_task(self._generate(ws, request, session, queue, fmt))
        buffer = ""
        loop = asyncio.get_running_loop()
        try:
            if not self._key_ok(request):
                await _ws_error(ws, "Invalid API key", "invalid_api_key")
            elif fmt not in PCM_RATES:
                await _ws_error(ws, f"the fake only speaks PCM, not {fmt}", "invalid_format")
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                session.frames.append(msg.data)
                session.frame_chunks.append(session.chunks_sent)
                try:
                    data = json.loads(msg.data)
                except json.JSONDecodeError:
                    await _ws_error(ws, BAD_INPUT_MESSAGE, "invalid_input_message")
                    break
                session.messages.append(data)
                if not isinstance(data, dict) or not isinstance(data.get("text"), str) or (
                        len(session.messages) == 1 and data["text"] != " "):
                    await _ws_error(ws, BAD_INPUT_MESSAGE, "invalid_input_message")
                    break
                if len(session.messages) == 1:
                    continue
                if data["text"] == "":
                    if buffer.strip():
                        queue.put_nowait(buffer)
                    queue.put_nowait(None)
                    buffer = ""
                    continue
                buffer += data["text"]
                if data.get("flush") and buffer.strip():
                    queue.put_nowait(buffer)
                    buffer = ""
        finally:
            if session.closed_at is None:
                session.closed_at = loop.time()
                session.client_close_code = ws.close_code
                session.closed.set()
            gen.cancel()
            try:
                await gen
            except (asyncio.CancelledError, ConnectionError, RuntimeError):
                pass
            self._open.discard(ws)
        return ws

    async def _generate(
        self, ws: web.WebSocketResponse, request: web.Request, session: WsSession,
        queue: asyncio.Queue[str | None], fmt: str,
    ) -> None:
        rate = PCM_RATES.get(fmt, 16000)
        offset_ms = 0.0
        index = 0
        while True:
            text = await queue.get()
            if text is None:
                if await self._maybe_fail(ws, request, session):
                    return
                await ws.send_str(json.dumps({"isFinal": True}))
                if self.end_with_drop and request.transport is not None:
                    request.transport.abort()
                else:
                    await ws.close()
                return
            piece = await self._speak(text, rate)
            if not self.cache_messages:
                self._record_truth(piece, offset_ms)
            for chunk in piece.chunks:
                if await self._maybe_fail(ws, request, session):
                    return
                if self.chunk_delay_s:
                    await asyncio.sleep(self.chunk_delay_s)
                for message in self._texts(index, chunk, offset_ms):
                    await ws.send_str(message)
                if not self.cache_messages:
                    self.audio += chunk.pcm
                index += 1
                session.chunks_sent = index
                session.first_chunk_sent.set()
            offset_ms += piece.duration_ms

    async def _maybe_fail(
        self, ws: web.WebSocketResponse, request: web.Request, session: WsSession
    ) -> bool:
        """Carry out the configured failure once `fail_after_chunks` chunks went out."""
        if not self._failing() or session.chunks_sent < self.fail_after_chunks:
            return False
        self.failures += 1
        if self.fail == "bad_request":
            await _ws_error(ws, BAD_INPUT_MESSAGE, "invalid_input_message")
        elif self.fail == "quota":
            await _ws_error(ws, QUOTA_MESSAGE, "quota_exceeded")
        elif self.fail == "rate_limit":
            await _ws_error(ws, RATE_MESSAGE, "too_many_concurrent_requests")
        elif self.fail == "unauthorized":
            await _ws_error(ws, "Invalid API key", "invalid_api_key")
        elif self.fail == "inactivity":
            n = request.query.get("inactivity_timeout", "20")
            # Close reasons are capped at 123 bytes; the service's long reason gets cut too.
            await ws.close(code=1008, message=INACTIVITY_REASON.format(n=n).encode()[:123])
        elif self.fail == "drop":
            if request.transport is not None:
                request.transport.abort()
        elif self.fail == "stall":
            await asyncio.Event().wait()  # until the client leaves
        elif self.fail == "garbage":
            await ws.send_str("<html>502 Bad Gateway</html>")
            await asyncio.Event().wait()  # the client gives up on it
        elif self.fail == "server_error":
            await ws.send_str(json.dumps({"message": "An internal server error occurred.",
                                          "error": "internal_error", "code": 1011}))
            await ws.close(code=1011, message=b"internal error")
        return True

    def _failing(self) -> bool:
        return (self.fail is not None or self.ws_handshake_status is not None) and (
            self.fail_times is None or self.failures < self.fail_times)

    # -- HTTP --------------------------------------------------------------------------------
    async def _http(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        self.http_requests.append(HttpRequest(request.match_info["voice_id"], request.path_qs,
                                              dict(request.query), dict(request.headers), body))
        if not self._key_ok(request):
            return _json_error(401, "invalid_api_key", "Invalid API key")
        failing = self._failing()
        if failing and self.fail in ("quota", "rate_limit", "server_error", "bad_request"):
            self.failures += 1
        if failing and self.fail == "quota":
            return _json_error(401, "quota_exceeded", QUOTA_MESSAGE)
        if failing and self.fail == "rate_limit":
            return _json_error(429, "too_many_concurrent_requests", RATE_MESSAGE)
        if failing and self.fail == "server_error":
            return _json_error(503, "service_unavailable", "The service is overloaded.")
        fmt = request.query.get("output_format", "mp3_44100")
        if (failing and self.fail == "bad_request") or fmt not in PCM_RATES \
                or not isinstance(body, dict) or not isinstance(body.get("text"), str) \
                or not body["text"].strip():
            return _json_error(400, "invalid_request", "text is required and output_format "
                               "must be pcm_*")
        if not _PATH.match(request.match_info["voice_id"]):
            return _json_error(404, "voice_not_found", "A voice with that id was not found.")
        rate = PCM_RATES[fmt]
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        self.truth_words, self.truth_phonemes, self.audio = [], [], bytearray()
        offset_ms, index = 0.0, 0
        sentences = split_sentences(body["text"])
        for i, sentence in enumerate(sentences):
            piece = await self._speak(sentence + (" " if i + 1 < len(sentences) else ""), rate)
            self._record_truth(piece, offset_ms)
            for chunk in piece.chunks:
                if self.fail in ("drop", "stall", "garbage") and failing \
                        and index >= self.fail_after_chunks:
                    self.failures += 1
                    if self.fail == "drop" and request.transport is not None:
                        request.transport.abort()
                        return resp
                    if self.fail == "garbage":
                        await resp.write(b"<html>502 Bad Gateway</html>\n")
                    await asyncio.Event().wait()
                if self.chunk_delay_s:
                    await asyncio.sleep(self.chunk_delay_s)
                for message in self._messages(index, chunk, offset_ms, http=True):
                    await resp.write(json.dumps(message).encode() + b"\n")
                self.audio += chunk.pcm
                index += 1
            offset_ms += piece.duration_ms
        await resp.write_eof()
        return resp


def _json_error(status: int, name: str, message: str) -> web.Response:
    return web.json_response({"detail": {"status": name, "message": message}}, status=status)


async def _ws_error(ws: web.WebSocketResponse, message: str, error: str) -> None:
    """The service's error shape, then close code 1008 (policy violation)."""
    await ws.send_str(json.dumps({"message": message, "error": error, "code": 1008}))
    await ws.close(code=1008, message=message.encode()[:123])


@pytest.fixture
async def fake_elevenlabs() -> AsyncIterator[Callable[..., Awaitable[FakeElevenLabs]]]:
    """Factory fixture: `fake = await fake_elevenlabs(**switches)`; all closed after the test."""
    fakes: list[FakeElevenLabs] = []

    async def start(**switches: Any) -> FakeElevenLabs:
        fake = await FakeElevenLabs(**switches).start()
        fakes.append(fake)
        return fake

    yield start
    for fake in fakes:
        await fake.close()
