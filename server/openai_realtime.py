"""The OpenAI Realtime API as a session's voice: a speech-to-speech model whose audio has no
timing, so the session listens to it for visemes (server/listen.py).

One WebSocket to `wss://api.openai.com/v1/realtime?model=...` per avatarkit session, opened
on first use, with the key in the `Authorization` header only (never in a message, log line
or anything a client receives). What it maps:

- every model response (`response.created`) becomes one utterance: its
  `response.output_audio.delta` audio (`response.audio.delta` on the older API; base64 PCM16,
  24 kHz mono) is the utterance's speech, its `response.output_audio_transcript.delta`
  (`response.audio_transcript.delta`) text sharpens the listener's shapes, and
  `response.done` ends it. A response the session asked for (`speak`: the text goes in as a
  user message, then `response.create`) fills that utterance; one the model starts by itself
  (server VAD answering the user's microphone) is queued as a new utterance.
- the user's microphone, pushed by a client as `user_audio`, goes to
  `input_audio_buffer.append`.
- `input_audio_buffer.speech_started` (the user talks over the avatar) is a barge-in: the
  mouth ramps to Rest and the utterance ends as for `stop`; the model is told how much of its
  answer was heard (`conversation.item.truncate`), so the conversation matches what the user
  heard. Stopping an utterance cancels its response (`response.cancel`).
- an `error` event fails the utterance it belongs to (`error {code: provider_...}`, then
  `utterance_end {reason: error}`); a lost connection fails the ones in progress and the next
  use reconnects.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

import aiohttp
import pybase64

from avatarkit.tts.provider import ProviderError, SpeechChunk
from avatarkit.tts.sockets import close_quietly
from server.listen import AudioTurn
from server.wire import WireError

if TYPE_CHECKING:
    from server.config import ServerConfig
    from server.session import Session

log = logging.getLogger("avatarkit.server.openai")

#: The Realtime API's PCM: 16-bit mono at 24 kHz, both ways.
SAMPLE_RATE = 24000
AUDIO_DELTAS = ("response.output_audio.delta", "response.audio.delta")
TRANSCRIPT_DELTAS = ("response.output_audio_transcript.delta", "response.audio_transcript.delta")
AUDIO_DONE = ("response.output_audio.done", "response.audio.done")


@dataclass(frozen=True)
class RealtimeOptions:
    """How to reach the Realtime API and what to ask of it."""

    #: The account's key; sent only in the `Authorization` header, hidden from repr.
    api_key: str = field(repr=False)
    model: str = "gpt-realtime"
    #: WebSocket endpoint (tests point it at a fake on loopback).
    ws_base_url: str = "wss://api.openai.com/v1/realtime"
    #: Voice of the model (None: its default) and instructions for `session.update`.
    voice: str | None = None
    instructions: str | None = None
    connect_timeout_s: float = 10.0
    #: Longest response, seconds (a runaway answer ends as an error).
    max_response_s: float = 600.0
    #: Longest silence of the model while an answer is awaited or under way, seconds.
    stall_timeout_s: float = 15.0
    #: Retries of a connection refused with 429 or 5xx, after `retry_backoff_s`, twice that...
    retries: int = 2
    retry_backoff_s: float = 0.5

    @classmethod
    def from_config(cls, config: ServerConfig) -> RealtimeOptions:
        assert config.openai_api_key
        return cls(api_key=config.openai_api_key, model=config.openai_model,
                   ws_base_url=config.openai_ws_base_url, voice=config.openai_voice,
                   instructions=config.openai_instructions,
                   max_response_s=config.max_audio_turn_s,
                   stall_timeout_s=config.provider_timeout_s, retries=config.provider_retries)

    def url(self) -> str:
        return f"{self.ws_base_url}?{urlencode({'model': self.model})}"

    def session_update(self) -> dict[str, Any]:
        """PCM out at 24 kHz (the format the session forwards and listens to)."""
        output: dict[str, Any] = {"format": {"type": "audio/pcm", "rate": SAMPLE_RATE}}
        if self.voice:
            output["voice"] = self.voice
        session: dict[str, Any] = {
            "type": "realtime", "output_modalities": ["audio"],
            "audio": {"input": {"format": {"type": "audio/pcm", "rate": SAMPLE_RATE}},
                      "output": output},
        }
        if self.instructions:
            session["instructions"] = self.instructions
        return {"type": "session.update", "session": session}


class _Response(AudioTurn):
    """One model response as an utterance's chunk source; with `prompt` (a `speak`), the
    prompt is sent when the utterance's turn comes, and the next response fills it."""

    empty_message = "the model's response had no audio"

    def __init__(self, owner: OpenAIRealtimeProvider, max_ms: float, prompt: str = "") -> None:
        super().__init__(SAMPLE_RATE, 1, max_ms=max_ms,
                         stall_s=owner.options.stall_timeout_s)
        self.owner = owner
        self.prompt = prompt
        self.response_id: str | None = None
        self.item_id: str | None = None
        self.done = False

    async def __aiter__(self) -> AsyncIterator[SpeechChunk]:
        if self.prompt:
            await self.owner.ask(self)
        async for chunk in super().__aiter__():
            yield chunk

    def close(self) -> None:
        """The utterance is over here (completed, stopped, barge-in): stop the model too."""
        if not self.closed and not self.done:
            if self.response_id is not None:
                self.owner.cancel_soon(self.response_id)
            self.owner.forget(self)
        super().close()


class _Busy(Exception):
    """The service refused a connection with 429 or 5xx: worth another try."""

    def __init__(self, error: ProviderError) -> None:
        super().__init__(str(error))
        self.error = error


def _named(response_id: Any, kind: str) -> bool:
    """True for a usable response id; an event without one belongs to no answer (ignored:
    as a new answer it would hold the session's queue until it timed out)."""
    if isinstance(response_id, str) and response_id:
        return True
    log.warning("OpenAI Realtime sent %s without a response id; ignored", kind)
    return False


def _object(value: Any) -> dict[str, Any]:
    """A field the service documents as an object; anything else reads as an empty one
    (one malformed event must not end the reader, and with it the connection)."""
    return value if isinstance(value, dict) else {}


_ERROR_CODES = {"invalid_request_error": "bad_request", "authentication_error": "unauthorized",
                "rate_limit_exceeded": "rate_limited", "insufficient_quota": "quota_exceeded"}


class OpenAIRealtimeProvider:
    """A session's voice backed by one Realtime API connection (see the module docstring)."""

    sample_rate = SAMPLE_RATE
    speaks_text = True

    def __init__(self, options: RealtimeOptions,
                 session: aiohttp.ClientSession | None = None) -> None:
        self.options = options
        self._http = session
        self._own_http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._session: Session | None = None
        self._waiting: deque[_Response] = deque()  # asked for, no response.created yet
        self._by_id: dict[str, _Response] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    # ------------------------------------------------------------------ session side
    def attach(self, session: Session) -> None:
        """Responses the model starts by itself become utterances of `session`."""
        self._session = session

    def utterance_source(self, text: str) -> _Response:
        """`speak`: the source of an utterance that is the model's answer to `text` (sent as
        the user's message when the utterance's turn comes)."""
        return _Response(self, self.options.max_response_s * 1000.0, prompt=text)

    async def stream(self, text: str) -> AsyncIterator[SpeechChunk]:
        """The `Provider` form of `utterance_source` (audio of the model's answer)."""
        turn = self.utterance_source(text)
        try:
            async for chunk in turn:
                yield chunk
        finally:
            turn.close()

    async def ask(self, turn: _Response) -> None:
        """Send `turn.prompt` as a user message and ask for a response; it fills `turn`."""
        await self._ensure()
        self._waiting.append(turn)
        try:
            await self._send({"type": "conversation.item.create", "item": {
                "type": "message", "role": "user",
                "content": [{"type": "input_text", "text": turn.prompt}]}})
            await self._send({"type": "response.create"})
        except BaseException:
            with contextlib.suppress(ValueError):
                self._waiting.remove(turn)
            raise

    async def send_user_audio(self, pcm: bytes) -> None:
        """The user's microphone (PCM16 24 kHz mono) into the model's input buffer."""
        await self._ensure()
        await self._send({"type": "input_audio_buffer.append",
                          "audio": base64.b64encode(pcm).decode("ascii")})

    def forget(self, turn: _Response) -> None:
        with contextlib.suppress(ValueError):
            self._waiting.remove(turn)

    def cancel_soon(self, response_id: str) -> None:
        if self._ws is None or self._ws.closed:
            return
        task = asyncio.get_running_loop().create_task(
            self._send({"type": "response.cancel", "response_id": response_id}, quiet=True))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        self._closed = True
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._ws is not None:
            await close_quietly(self._ws)
        if self._own_http is not None:
            await self._own_http.close()
        self._fail_open(ProviderError("the session closed", "connection_lost"))

    # ------------------------------------------------------------------ connection
    async def _ensure(self) -> None:
        async with self._lock:
            if self._ws is not None and not self._ws.closed:
                return
            if self._closed:
                raise ProviderError("the session is closed", "connection_lost")
            o = self.options
            for attempt in range(o.retries + 1):
                try:
                    ws = await self._connect()
                    break
                except _Busy as exc:  # nothing was asked yet: another try is safe
                    if attempt == o.retries:
                        raise exc.error from None
                    await asyncio.sleep(o.retry_backoff_s * 2 ** attempt)
            self._ws = ws
            await self._send(o.session_update())
            self._reader = asyncio.create_task(self._read(ws), name="openai-realtime")

    async def _connect(self) -> aiohttp.ClientWebSocketResponse:
        o = self.options
        http = self._http
        if http is None:
            http = self._own_http = self._own_http or aiohttp.ClientSession()
        try:
            async with asyncio.timeout(o.connect_timeout_s):
                return await http.ws_connect(
                    o.url(), headers={"Authorization": f"Bearer {o.api_key}"},
                    heartbeat=30.0, max_msg_size=16 * 1024 * 1024)
        except aiohttp.WSServerHandshakeError as exc:
            code = {401: "unauthorized", 403: "unauthorized", 429: "rate_limited"}.get(
                exc.status, "provider_error")
            error = ProviderError(f"OpenAI Realtime refused the connection with HTTP "
                                  f"{exc.status}", code)
            if exc.status == 429 or exc.status >= 500:
                raise _Busy(error) from None
            raise error from None
        except TimeoutError:
            raise ProviderError(f"no connection to OpenAI Realtime within "
                                f"{o.connect_timeout_s:g} s", "timeout") from None
        except aiohttp.ClientError as exc:
            raise ProviderError(f"could not connect to {urlsplit(o.ws_base_url).netloc} "
                                f"({type(exc).__name__})", "connection_lost") from None

    async def _send(self, event: dict[str, Any], quiet: bool = False) -> None:
        ws = self._ws
        try:
            if ws is None or ws.closed:
                raise ConnectionResetError
            await ws.send_str(json.dumps(event, separators=(",", ":")))
        except (aiohttp.ClientError, ConnectionError, RuntimeError):
            if not quiet:
                raise ProviderError("the connection to OpenAI Realtime was lost",
                                    "connection_lost") from None

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                try:
                    event = json.loads(msg.data)
                except ValueError:
                    log.warning("OpenAI Realtime sent a message that is not JSON; ignored")
                    continue
                if isinstance(event, dict):
                    await self._on_event(event)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("OpenAI Realtime reader failed")
        finally:
            if not self._closed:
                self._fail_open(ProviderError("the connection to OpenAI Realtime was lost",
                                              "connection_lost"))

    def _fail_open(self, error: ProviderError) -> None:
        for turn in list(self._waiting) + list(self._by_id.values()):
            if not turn.done:
                turn.done = True
                turn.fail(error)
        self._waiting.clear()
        self._by_id.clear()

    # ------------------------------------------------------------------ events
    async def _on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "response.created":
            response_id = _object(event.get("response")).get("id")
            if _named(response_id, kind):
                await self._started(response_id)
        elif kind in AUDIO_DELTAS or kind in TRANSCRIPT_DELTAS:
            if not _named(event.get("response_id"), kind):
                return
            turn = await self._started(event["response_id"])
            if turn.item_id is None and isinstance(event.get("item_id"), str):
                turn.item_id = event["item_id"]
            delta = event.get("delta")
            if not isinstance(delta, str):
                return
            if kind in TRANSCRIPT_DELTAS:
                turn.add_text(delta)
                return
            try:
                turn.feed(pybase64.b64decode(delta, validate=True))
            except (binascii.Error, ValueError, WireError) as exc:
                self._finish(turn, ProviderError(f"bad audio from OpenAI Realtime: {exc}"))
        elif kind in AUDIO_DONE:
            turn = self._by_id.get(str(event.get("response_id", "")))
            if turn is not None:  # all its audio is here: nothing left to cancel
                turn.done = True
                turn.end()
        elif kind == "response.done":
            response = _object(event.get("response"))
            turn = self._by_id.get(str(response.get("id", "")))
            if turn is not None:
                error = None
                if response.get("status") == "failed":
                    details = _object(_object(response.get("status_details")).get("error"))
                    message = str(details.get("message") or "the response failed")
                    code = _ERROR_CODES.get(str(details.get("type")), "provider_error")
                    error = ProviderError(f"OpenAI Realtime: {message}", code)
                self._finish(turn, error)
        elif kind == "input_audio_buffer.speech_started":
            await self._barge_in()
        elif kind == "error":
            self._on_error(_object(event.get("error")))

    async def _started(self, response_id: str) -> _Response:
        """The turn of `response_id`: a waiting `speak`, else a new utterance of the session."""
        turn = self._by_id.get(response_id)
        if turn is not None:
            return turn
        if self._waiting:
            turn = self._waiting.popleft()
        else:
            turn = _Response(self, self.options.max_response_s * 1000.0)
            if self._session is not None and not self._session.closed:
                try:
                    await self._session.enqueue("", turn)
                except WireError as exc:  # queue full: this answer is not played
                    log.warning("OpenAI Realtime response %s dropped: %s", response_id,
                                exc.message)
                    turn.response_id = response_id
                    self._by_id[response_id] = turn  # its further deltas are dropped
                    turn.close()  # and it is cancelled upstream
                    return turn
        turn.response_id = response_id
        self._by_id[response_id] = turn
        return turn

    def _finish(self, turn: _Response, error: ProviderError | None) -> None:
        turn.done = True
        if turn.response_id is not None:
            self._by_id.pop(turn.response_id, None)
        if error is not None:
            turn.fail(error)
        else:
            turn.end()

    def _on_error(self, err: dict[str, Any]) -> None:
        message = str(err.get("message") or "unknown error")
        code = _ERROR_CODES.get(str(err.get("code")), _ERROR_CODES.get(str(err.get("type")),
                                                                        "provider_error"))
        if err.get("code") == "response_cancel_not_active":
            return  # our cancel raced the response's end: nothing to report
        turns = list(self._waiting) or list(self._by_id.values())
        if not turns:
            log.warning("OpenAI Realtime error outside a response: %s", message)
            return
        turn = turns[0]
        with contextlib.suppress(ValueError):
            self._waiting.remove(turn)
        self._finish(turn, ProviderError(f"OpenAI Realtime: {message}", code))

    async def _barge_in(self) -> None:
        """The user started talking: stop the avatar and tell the model what was heard."""
        session = self._session
        if session is None:
            return
        u = session.playing
        if u is not None and isinstance(u.source, _Response) and u.source.item_id \
                and u.t0 is not None:
            heard = (session.loop.time() - u.t0) * 1000.0
            heard = int(min(max(0.0, heard), u.audio_end_ms))
            await self._send({"type": "conversation.item.truncate", "item_id": u.source.item_id,
                              "content_index": 0, "audio_end_ms": heard}, quiet=True)
        await session.interrupt("barge_in")
