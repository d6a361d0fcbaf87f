"""Helpers for the server tests: a minimal avatar folder, a JSON Schema checker for the
protocol's schemas, and a client that records what a WebSocket receives."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema

from server import wire


def make_avatar(root: Path, avatar_id: str = "hero") -> Path:
    """An avatar folder with a manifest and small files (the live path never reads pixels)."""
    folder = root / avatar_id
    folder.mkdir(parents=True)
    files = {"atlas.json": b"{}", "meshdef.json": b"{}", "track.json": b"[]",
             "atlas.png": b"\x89PNG-not-really", "mask_mouth.png": b"png",
             "mouth_interior.png": b"png", "idle.mp4": bytes(range(256)) * 64}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    manifest = {"format": 1, "roi": {"x": 10, "y": 20, "w": 30, "h": 40},
                "frame": {"w": 320, "h": 400}, "files": sorted(files)}
    (folder / "avatar.json").write_text(json.dumps(manifest))
    return folder


async def recording_client(aiohttp_client: Any, avatars: Path, **cfg: Any) -> Any:
    """An in-process server over `avatars` whose sessions speak with a RecordingVoice."""
    from server.app import create_app
    from server.config import ServerConfig

    app = create_app(ServerConfig(avatars_dir=avatars, **cfg), provider_factory=RecordingVoice())
    return await aiohttp_client(app)


#: Draft 2020-12 with JSON integers only (the stock checker also takes 1.0 as an integer;
#: the server never sends one).
_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _checker, v: isinstance(v, int) and not isinstance(v, bool)))
_validators: dict[int, Any] = {}


def check_schema(value: Any, schema: dict[str, Any]) -> None:
    """Validate `value` against a JSON Schema of docs/protocol.md (raises AssertionError)."""
    validator = _validators.get(id(schema))
    if validator is None:
        validator = _validators[id(schema)] = _Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    assert error is None, f"{error.json_path}: {error.message}"


def check_message(msg: dict[str, Any]) -> None:
    """A server message must match the schema of its type."""
    assert msg.get("type") in wire.SERVER_MESSAGES, msg
    check_schema(msg, wire.SCHEMAS[msg["type"]])


@dataclass
class Received:
    """Everything one WebSocket got, in order, with arrival times (monotonic, s)."""

    events: list[tuple[float, Any]] = field(default_factory=list)
    close_code: int | None = None

    def json(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [m for _, m in self.events
                if isinstance(m, dict) and (kind is None or m["type"] == kind)]

    def audio(self, utterance_id: int | None = None) -> list[wire.AudioFrame]:
        return [m for _, m in self.events if isinstance(m, wire.AudioFrame)
                and (utterance_id is None or m.utterance_id == utterance_id)]

    def pcm(self, utterance_id: int) -> bytes:
        return b"".join(f.pcm for f in self.audio(utterance_id))

    def patches(self, utterance_id: int | None = None) -> list[wire.PatchFrame]:
        return [m for _, m in self.events if isinstance(m, wire.PatchFrame)
                and (utterance_id is None or m.utterance_id == utterance_id)]

    def kinds(self) -> list[str]:
        return [m["type"] if isinstance(m, dict) else
                "patch" if isinstance(m, wire.PatchFrame) else "audio" for _, m in self.events]


async def receive_until(ws: aiohttp.ClientWebSocketResponse, rec: Received, stop: Any,
                        timeout: float = 20.0) -> Received:
    """Read messages into `rec` until `stop(message)` is true (schema-checking each)."""
    async def run() -> None:
        while True:
            msg = await ws.receive()
            if msg.type == aiohttp.WSMsgType.TEXT:
                data = json.loads(msg.data)
                check_message(data)
                if data["type"] == "audio":
                    data = wire.AudioFrame(data["utterance_id"], data["sample_rate"],
                                           data["pts_ms"], base64.b64decode(data["data"]))
            elif msg.type == aiohttp.WSMsgType.BINARY:
                data = (wire.decode_patch(msg.data) if msg.data[:4] == wire.PATCH_MAGIC
                        else wire.decode_audio(msg.data))
            else:
                rec.close_code = ws.close_code
                if msg.type == aiohttp.WSMsgType.CLOSE:
                    rec.close_code = msg.data
                break
            rec.events.append((time.monotonic(), data))
            if stop(data):
                return

    await asyncio.wait_for(run(), timeout)
    return rec


def typed(kind: str):
    """Stop condition: a JSON message of this type."""
    return lambda m: isinstance(m, dict) and m["type"] == kind


def is_end(uid: int | None = None):
    def stop(m: Any) -> bool:
        return isinstance(m, dict) and m["type"] == "utterance_end" and (
            uid is None or m["utterance_id"] == uid)
    return stop


class RecordingVoice:
    """A provider factory around the real embedded voice that keeps what it spoke.

    espeak-ng's output varies by a few samples between runs of the same text, so the bytes
    on the wire are compared with what the server's own provider produced.
    """

    def __init__(self, delay_s: float = 0.0) -> None:
        self.spoken: list[tuple[str, list[Any]]] = []
        self.delay_s = delay_s

    def __call__(self, req: Any) -> Any:
        from avatarkit.tts.espeak_voice import EspeakOptions, EspeakProvider

        return _Recording(EspeakProvider(EspeakOptions(lang=req.lang)), self)

    def chunks(self, text: str, nth: int = 0) -> list[Any]:
        return [c for t, c in self.spoken if t == text][nth]

    def pcm(self, text: str, nth: int = 0) -> bytes:
        return b"".join(c.pcm for c in self.chunks(text, nth))

    def timeline(self, text: str, nth: int = 0, fps: float | None = None) -> Any:
        """The batch timeline of what was spoken (at the server's default fps)."""
        from avatarkit.visemes import CoarticulationOptions, timeline_from_phonemes
        from server.config import ServerConfig

        fps = fps or ServerConfig().viseme_fps

        chunks = self.chunks(text, nth)
        phonemes = [p for c in chunks for p in c.phonemes]
        return timeline_from_phonemes(phonemes, CoarticulationOptions(fps=fps),
                                      duration_ms=chunks[-1].end_ms)


class _Recording:
    def __init__(self, inner: Any, owner: RecordingVoice) -> None:
        self.inner = inner
        self.owner = owner
        self.sample_rate = inner.sample_rate

    async def stream(self, text: str):  # noqa: ANN201
        got: list[Any] = []
        self.owner.spoken.append((text, got))
        async for chunk in self.inner.stream(text):
            got.append(chunk)
            yield chunk
            if self.owner.delay_s:
                await asyncio.sleep(self.owner.delay_s)


def avatars_with_hero(hero_dir: Path, root: Path) -> Path:
    """`root` as an avatars directory holding a copy of the example avatar as `hero`."""
    shutil.copytree(hero_dir, root / "hero")
    return root


async def watch(client: Any, session_id: str, query: str = "") -> tuple[Any, Received]:
    """A session's WebSocket (`?query` appended) and what it received up to its `hello`."""
    ws = await client.ws_connect(f"/session-2d/{session_id}/ws{query}")
    return ws, await receive_until(ws, Received(), typed("hello"))


def parse_prometheus(text: str) -> dict[str, float]:
    """/metrics text -> {name{labels}: value}, checking every line is a typed sample."""
    samples: dict[str, float] = {}
    types: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            types[name] = kind
            continue
        if line.startswith("#") or not line:
            continue
        m = re.fullmatch(r'([a-zA-Z_:][\w:]*)(\{[^}]*\})? (\S+)', line)
        assert m, f"not a sample line: {line!r}"
        samples[m.group(1) + (m.group(2) or "")] = float(m.group(3))
        base = re.sub(r"_(bucket|sum|count)$", "", m.group(1))
        assert base in types or m.group(1) in types, line
    return samples
