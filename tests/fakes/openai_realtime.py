"""A fake OpenAI Realtime API: a real aiohttp WebSocket server on loopback speaking the
Realtime protocol, with real speech.

`GET /v1/realtime?model=...` with `Authorization: Bearer KEY` (401 otherwise). It answers
`session.update` with `session.updated`; a user message (`conversation.item.create`) plus
`response.create` with a response that speaks the message's text back with the embedded
espeak-ng voice resampled to 24 kHz: `response.created`, transcript deltas word by word
interleaved with `chunk_ms` audio deltas (paced at `pace` x real time, 0 = at once),
`response.output_audio.done`, `response.done`. `legacy=True` uses the older event names
(`response.audio.delta`, `response.audio_transcript.delta`, `response.audio.done`).
`input_audio_buffer.append` runs a tiny server VAD: loud audio (RMS over 1000) sends
`input_audio_buffer.speech_started` and cancels the response in progress (as
`interrupt_response` does); the quiet audio after it sends `speech_stopped` and a response
speaking `vad_reply`, as the real service answers the user. `fail="error"` answers
`response.create` with an `error` event, `fail="failed"` with a failed `response.done`,
`fail="drop"` closes the connection after the third audio delta of the first response,
`fail="stall"` sends nothing more after it (the socket stays open), `fail="garbage"` sends a
message that is not JSON and events with wrong field types there, then goes on.
`handshake_status` refuses the first `fail_times` upgrades (None: all) with that HTTP status.
Everything a client sends is kept in `received` (per connection) with its headers.
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiohttp import WSMsgType, web
from scipy.signal import resample_poly

RATE = 24000


async def speech_24k(text: str) -> bytes:
    """`text` spoken by the embedded voice, PCM16 mono at 24 kHz."""
    from avatarkit.tts.espeak_voice import EspeakOptions, EspeakProvider

    voice = EspeakProvider(EspeakOptions())
    pcm = b"".join([c.pcm async for c in voice.stream(text)])
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    y = resample_poly(x, RATE // 150, voice.sample_rate // 150)  # 22050 -> 24000: 160/147
    return np.clip(np.round(y), -32768, 32767).astype("<i2").tobytes()


@dataclass
class SentResponse:
    id: str
    item_id: str
    text: str
    pcm: bytes = b""  # the audio actually sent
    status: str = "in_progress"


@dataclass
class FakeRealtime:
    api_key: str = "sk-test-fake"
    legacy: bool = False
    chunk_ms: float = 100.0
    pace: float = 0.0
    vad_reply: str = "I hear you."
    fail: str | None = None
    handshake_status: int | None = None
    fail_times: int | None = None
    refused: int = 0
    received: list[list[dict[str, Any]]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    responses: list[SentResponse] = field(default_factory=list)
    sockets: list[web.WebSocketResponse] = field(default_factory=list)

    async def __aenter__(self) -> FakeRealtime:
        app = web.Application()
        app.router.add_get("/v1/realtime", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"ws://127.0.0.1:{port}/v1/realtime"
        return self

    async def __aexit__(self, *exc: object) -> None:
        for ws in self.sockets:  # else cleanup waits for the clients to hang up
            await ws.close()
        await self._runner.cleanup()

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [e for conn in self.received for e in conn if e.get("type") == kind]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.headers.append(dict(request.headers))
        if self.handshake_status is not None and (self.fail_times is None
                                                  or self.refused < self.fail_times):
            self.refused += 1
            return web.json_response({"error": {"type": "server_error", "message": "busy"}},
                                     status=self.handshake_status)
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response({"error": {"type": "invalid_request_error",
                                                "code": "invalid_api_key",
                                                "message": "Incorrect API key provided."}},
                                     status=401)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.append(ws)
        conn: list[dict[str, Any]] = []
        self.received.append(conn)
        state: dict[str, Any] = {"task": None, "speech": False, "text": "", "ws": ws}
        await self._send(ws, {"type": "session.created", "session": {"type": "realtime"}})
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            event = json.loads(msg.data)
            conn.append(event)
            kind = event.get("type")
            if kind == "session.update":
                await self._send(ws, {"type": "session.updated", "session": event["session"]})
            elif kind == "conversation.item.create":
                state["text"] = event["item"]["content"][0]["text"]
            elif kind == "response.create":
                if self.fail == "error":
                    await self._send(ws, {"type": "error", "error": {
                        "type": "invalid_request_error", "code": "unknown_parameter",
                        "message": "Unknown parameter: 'session.bogus'."}})
                    continue
                self._start(ws, state, state["text"])
            elif kind == "response.cancel":
                await self._cancel(state)
            elif kind == "input_audio_buffer.append":
                x = np.frombuffer(base64.b64decode(event["audio"]), dtype="<i2")
                loud = x.size and float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) > 1000
                if loud and not state["speech"]:
                    state["speech"] = True
                    await self._send(ws, {"type": "input_audio_buffer.speech_started",
                                          "audio_start_ms": 0, "item_id": "item_user"})
                    await self._cancel(state)
                elif not loud and state["speech"]:
                    state["speech"] = False
                    await self._send(ws, {"type": "input_audio_buffer.speech_stopped",
                                          "audio_end_ms": 0, "item_id": "item_user"})
                    self._start(ws, state, self.vad_reply)
            elif kind == "conversation.item.truncate":
                await self._send(ws, {"type": "conversation.item.truncated",
                                      "item_id": event["item_id"], "content_index": 0,
                                      "audio_end_ms": event["audio_end_ms"]})
        await self._cancel(state)
        return ws

    def _start(self, ws: web.WebSocketResponse, state: dict[str, Any], text: str) -> None:
        n = len(self.responses) + 1
        resp = SentResponse(f"resp_{n}", f"item_{n}", text)
        self.responses.append(resp)
        state["task"] = asyncio.create_task(self._respond(ws, resp))
        state["resp"] = resp

    async def _cancel(self, state: dict[str, Any]) -> None:
        task = state.get("task")
        if task is None or task.done():
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        resp = state["resp"]
        resp.status = "cancelled"
        ws = state.get("ws")
        if ws is not None:
            await self._send(ws, {"type": "response.done",
                                  "response": {"id": resp.id, "status": "cancelled"}})

    async def _send(self, ws: web.WebSocketResponse, event: dict[str, Any]) -> None:
        if not ws.closed:
            await ws.send_str(json.dumps(event))

    async def _respond(self, ws: web.WebSocketResponse, resp: SentResponse) -> None:
        audio_delta = "response.audio.delta" if self.legacy else "response.output_audio.delta"
        text_delta = ("response.audio_transcript.delta" if self.legacy
                      else "response.output_audio_transcript.delta")
        audio_done = "response.audio.done" if self.legacy else "response.output_audio.done"
        ids = {"response_id": resp.id, "item_id": resp.item_id, "output_index": 0,
               "content_index": 0}
        await self._send(ws, {"type": "response.created",
                              "response": {"id": resp.id, "status": "in_progress"}})
        # the bookkeeping events the real service sends around the audio (ignored by clients
        # that only want the audio and transcript)
        item = {"id": resp.item_id, "type": "message", "role": "assistant",
                "status": "in_progress", "content": []}
        await self._send(ws, {"type": "response.output_item.added", "response_id": resp.id,
                              "output_index": 0, "item": item})
        await self._send(ws, {"type": "conversation.item.added", "item": item})
        await self._send(ws, {"type": "response.content_part.added", **ids,
                              "part": {"type": "audio", "transcript": ""}})
        if self.fail == "failed":
            await self._send(ws, {"type": "response.done", "response": {
                "id": resp.id, "status": "failed", "status_details": {
                    "type": "failed", "error": {"type": "server_error",
                                                "message": "The server had an error."}}}})
            resp.status = "failed"
            return
        pcm = await speech_24k(resp.text)
        words = resp.text.split(" ")
        step = int(RATE * self.chunk_ms / 1000) * 2
        pieces = [pcm[i:i + step] for i in range(0, len(pcm), step)]
        for i, piece in enumerate(pieces):
            if i < len(words):
                await self._send(ws, {"type": text_delta, **ids,
                                      "delta": words[i] + (" " if i + 1 < len(words) else "")})
            await self._send(ws, {"type": audio_delta, **ids,
                                  "delta": base64.b64encode(piece).decode()})
            resp.pcm += piece
            if i == 2 and len(self.responses) == 1:
                if self.fail == "drop":
                    await ws.close()
                    return
                if self.fail == "stall":
                    await asyncio.Event().wait()  # until cancelled or the client leaves
                if self.fail == "garbage":
                    await ws.send_str("<html>502 Bad Gateway</html>")
                    for bad in ({"type": "response.done", "response": "oops"},
                                {"type": "response.created", "response": ["x"]},
                                {"type": audio_delta, **ids, "delta": 42}):
                        await self._send(ws, bad)
            if self.pace:
                await asyncio.sleep(self.chunk_ms / 1000 / self.pace)
        rest = " ".join(words[len(pieces):])
        if rest:
            await self._send(ws, {"type": text_delta, **ids, "delta": rest})
        await self._send(ws, {"type": audio_done, **ids})
        await self._send(ws, {"type": text_delta.replace(".delta", ".done"), **ids,
                              "transcript": resp.text})
        await self._send(ws, {"type": "response.content_part.done", **ids,
                              "part": {"type": "audio", "transcript": resp.text}})
        await self._send(ws, {"type": "response.output_item.done", "response_id": resp.id,
                              "output_index": 0, "item": {**item, "status": "completed"}})
        await self._send(ws, {"type": "rate_limits.updated", "rate_limits": [
            {"name": "tokens", "limit": 40000, "remaining": 39000, "reset_seconds": 1.5}]})
        resp.status = "completed"
        await self._send(ws, {"type": "response.done",
                              "response": {"id": resp.id, "status": "completed"}})
