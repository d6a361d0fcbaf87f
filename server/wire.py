"""The live wire protocol: typed messages and their bytes, apart from any socket.

Everything a session sends is serialised here exactly once and then written to every
client as is (pre-built text or bytes), so the per-client, per-event cost is one socket
write. `docs/protocol.md` documents these shapes; `SCHEMAS` holds the JSON Schema of every
message and a test checks that the document shows exactly these schemas.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from avatarkit.visemes.classes import VISEME_CLASSES

#: Protocol version, sent in `hello` and in every binary audio frame.
PROTOCOL_VERSION = 1

# ---------------------------------------------------------------- binary audio frames

#: First four bytes of every binary audio frame.
AUDIO_MAGIC = b"AKAU"
#: magic, version u8, flags u8, header length u16, utterance id u32, sample rate u32,
#: pts_ms float64 - all little-endian; PCM16LE mono samples follow the header.
_AUDIO_HEADER = struct.Struct("<4sBBHIId")
AUDIO_HEADER_SIZE = _AUDIO_HEADER.size  # 24


@dataclass(frozen=True)
class AudioFrame:
    """A decoded binary audio frame (what clients and tests see)."""

    utterance_id: int
    sample_rate: int
    pts_ms: float
    pcm: bytes
    version: int = PROTOCOL_VERSION

    @property
    def duration_ms(self) -> float:
        return len(self.pcm) / 2 / self.sample_rate * 1000.0


def encode_audio(utterance_id: int, pts_ms: float, sample_rate: int, pcm: bytes) -> bytes:
    """One binary audio frame: the 24-byte header, then the PCM16LE samples."""
    header = _AUDIO_HEADER.pack(
        AUDIO_MAGIC, PROTOCOL_VERSION, 0, AUDIO_HEADER_SIZE, utterance_id, sample_rate, pts_ms
    )
    return header + pcm


def decode_audio(data: bytes) -> AudioFrame:
    """Parse a binary audio frame; raises WireError if it is not one."""
    if len(data) < AUDIO_HEADER_SIZE or data[:4] != AUDIO_MAGIC:
        raise WireError("bad_audio_frame", "not an avatarkit audio frame (magic 'AKAU')")
    magic, version, _flags, header_len, uid, rate, pts = _AUDIO_HEADER.unpack_from(data)
    if header_len < AUDIO_HEADER_SIZE or (len(data) - header_len) % 2:
        raise WireError("bad_audio_frame", "audio frame header length or payload is invalid")
    return AudioFrame(uid, rate, pts, bytes(data[header_len:]), version)


def encode_audio_json(utterance_id: int, pts_ms: float, sample_rate: int, pcm: bytes) -> str:
    """The JSON/base64 form of an audio frame (`?audio=json`)."""
    data = base64.b64encode(pcm).decode("ascii")
    return (
        f'{{"type":"audio","utterance_id":{utterance_id},"pts_ms":{_num(pts_ms)},'
        f'"sample_rate":{sample_rate},"data":"{data}"}}'
    )


def ws_frame(payload: bytes, *, binary: bool) -> bytes:
    """One unmasked, uncompressed WebSocket frame (RFC 6455 section 5.2), as a server sends.

    Events are framed once and the same bytes are written to every client, several frames
    per socket write, which is what keeps the per-event cost to a fraction of a syscall.
    """
    first = 0x82 if binary else 0x81
    n = len(payload)
    if n < 126:
        header = bytes((first, n))
    elif n < 65536:
        header = struct.pack("!BBH", first, 126, n)
    else:
        header = struct.pack("!BBQ", first, 127, n)
    return header + payload


# ---------------------------------------------------------------- binary mouth patch frames

#: First four bytes of every binary mouth-patch frame (variant C, `lipsync: "onnx"`).
PATCH_MAGIC = b"AKMP"
#: Image codecs of patch frames, by the id in the header.
PATCH_CODECS = {1: "png", 2: "webp"}
_CODEC_IDS = {v: k for k, v in PATCH_CODECS.items()}
#: magic, version u8, codec u8, header length u16, utterance id u32, idle frame u32,
#: pts_ms float64, width u16, height u16, frame index u32 - all little-endian; the encoded
#: RGBA image (ROI-sized, photo-ROI coordinates) follows the header.
_PATCH_HEADER = struct.Struct("<4sBBHIIdHHI")
PATCH_HEADER_SIZE = _PATCH_HEADER.size  # 32


@dataclass(frozen=True)
class PatchFrame:
    """A decoded binary mouth-patch frame."""

    utterance_id: int
    pts_ms: float
    index: int  # frame number within the utterance: pts_ms = index * 1000 / patch_fps
    idle_frame: int  # the idle-loop frame the server rendered it over
    width: int
    height: int
    codec: str  # "png" | "webp"
    image: bytes
    version: int = PROTOCOL_VERSION


def encode_patch(utterance_id: int, pts_ms: float, index: int, idle_frame: int, width: int,
                 height: int, codec: str, image: bytes) -> bytes:
    """One binary patch frame: the 32-byte header, then the encoded RGBA image."""
    return _PATCH_HEADER.pack(PATCH_MAGIC, PROTOCOL_VERSION, _CODEC_IDS[codec],
                              PATCH_HEADER_SIZE, utterance_id, idle_frame, pts_ms, width,
                              height, index) + image


def decode_patch(data: bytes) -> PatchFrame:
    """Parse a binary patch frame; raises WireError if it is not one."""
    if len(data) < PATCH_HEADER_SIZE or data[:4] != PATCH_MAGIC:
        raise WireError("bad_patch_frame", "not an avatarkit patch frame (magic 'AKMP')")
    _m, version, codec, header_len, uid, idle, pts, w, h, index = _PATCH_HEADER.unpack_from(data)
    if header_len < PATCH_HEADER_SIZE or codec not in PATCH_CODECS:
        raise WireError("bad_patch_frame", "patch frame header length or codec is invalid")
    return PatchFrame(uid, pts, index, idle, w, h, PATCH_CODECS[codec],
                      bytes(data[header_len:]), version)


# ---------------------------------------------------------------- server -> client JSON


def _num(x: float) -> str:
    """A finite float as compact JSON (3 decimals; integers without a fraction)."""
    r = round(float(x), 3)
    i = int(r)
    return str(i) if r == i else repr(r)


def _dumps(obj: Mapping[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


#: Weights are multiples of 0.001 in [0, 1] (visemes/coarticulation.py rounds them): their
#: JSON text, looked up instead of formatted, 30 times a second per session.
_WEIGHT_TEXT = {i / 1000: _num(i / 1000) for i in range(1001)}


def encode_viseme(utterance_id: int, pts_ms: int, weights: Mapping[str, float]) -> str:
    """`{"type":"viseme",...}` built by hand: this is the hottest message on the wire."""
    return (
        f'{{"type":"viseme","utterance_id":{utterance_id},"pts_ms":{int(pts_ms)},'
        f'"weights":{{{viseme_body(weights.items())}}}}}'
    )


#: `"class":weight` for every class and every weight multiple of 0.001, looked up.
_PAIR_TEXT = {(k, v): f'"{k}":{t}' for k in VISEME_CLASSES for v, t in _WEIGHT_TEXT.items()}


def viseme_body(items: Iterable[tuple[str, float]]) -> str:
    """The inside of a viseme message's `weights` object."""
    pairs = _PAIR_TEXT
    return ",".join([pairs.get(kv) or f'"{kv[0]}":{_num(kv[1])}' for kv in items])


def hello(
    *, session_id: str, avatar_id: str, provider: str, sample_rate: int, viseme_fps: float,
    audio: str, send_ahead_ms: float, lipsync: str = "visemes",
    patch_fps: float | None = None, patch_codec: str | None = None,
) -> str:
    """First message on every WebSocket: what the session is and how audio will arrive
    (and, for `lipsync: "onnx"`, the rate and codec of the mouth patches)."""
    msg: dict[str, Any] = {
        "type": "hello", "protocol": PROTOCOL_VERSION, "session_id": session_id,
        "avatar_id": avatar_id, "provider": provider, "sample_rate": sample_rate,
        "viseme_fps": viseme_fps, "classes": list(VISEME_CLASSES), "audio": audio,
        "send_ahead_ms": send_ahead_ms, "lipsync": lipsync,
    }
    if patch_fps is not None:
        msg.update(patch_fps=patch_fps, patch_codec=patch_codec)
    return _dumps(msg)


def utterance_start(
    utterance_id: int, text: str, sample_rate: int, *, pts_ms: float = 0.0,
    resumed: bool = False,
) -> str:
    """An utterance begins (or, for a client that joined late, resumes at `pts_ms`)."""
    return _dumps({
        "type": "utterance_start", "utterance_id": utterance_id, "text": text,
        "sample_rate": sample_rate, "pts_ms": round(pts_ms, 3), "resumed": resumed,
    })


def utterance_end(
    utterance_id: int, *, interrupted: bool, pts_ms: float, reason: str,
) -> str:
    """An utterance is over; its audio ends at `pts_ms` on its own clock."""
    return _dumps({
        "type": "utterance_end", "utterance_id": utterance_id, "interrupted": interrupted,
        "pts_ms": round(pts_ms, 3), "reason": reason,
    })


def error(
    code: str, message: str, *, utterance_id: int | None = None, request_id: Any = None,
) -> str:
    """A JSON error event; the socket stays open."""
    msg: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if utterance_id is not None:
        msg["utterance_id"] = utterance_id
    if request_id is not None:
        msg["id"] = request_id
    return _dumps(msg)


def ack(command: str, *, request_id: Any = None, **fields: Any) -> str:
    """Reply to a WebSocket command: the same body the HTTP route returns, plus `type`."""
    msg: dict[str, Any] = {"type": "ack", "command": command, "ok": True, **fields}
    if request_id is not None:
        msg["id"] = request_id
    return _dumps(msg)


def pong(request_id: Any = None) -> str:
    msg: dict[str, Any] = {"type": "pong"}
    if request_id is not None:
        msg["id"] = request_id
    return _dumps(msg)


# ---------------------------------------------------------------- client -> server


class WireError(Exception):
    """A message that cannot be accepted: `code` for programs, `message` for people."""

    def __init__(self, code: str, message: str, request_id: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


@dataclass(frozen=True)
class Speak:
    text: str
    barge_in: bool = False
    request_id: Any = None


@dataclass(frozen=True)
class Stop:
    request_id: Any = None


@dataclass(frozen=True)
class Ping:
    request_id: Any = None


@dataclass(frozen=True)
class AudioStart:
    """Open an audio turn on this socket: PCM follows (binary messages or audio_append)."""

    sample_rate: int | None = None  # None: the session's rate
    channels: int = 1
    text: str = ""
    barge_in: bool = False
    request_id: Any = None


@dataclass(frozen=True)
class AudioAppend:
    """PCM16LE for the open audio turn, base64 in JSON (the binary message's twin)."""

    pcm: bytes


@dataclass(frozen=True)
class AudioText:
    """Transcript (whole or a delta) of the open audio turn."""

    text: str


@dataclass(frozen=True)
class AudioEnd:
    request_id: Any = None


@dataclass(frozen=True)
class UserAudio:
    """The user's microphone for a speech-to-speech provider (OpenAI Realtime)."""

    pcm: bytes


Command = Speak | Stop | Ping | AudioStart | AudioAppend | AudioText | AudioEnd | UserAudio
CLIENT_TYPES = ("speak", "stop", "ping", "audio_start", "audio_append", "audio_text",
                "audio_end", "user_audio")


def _request_id(obj: Mapping[str, Any]) -> Any:
    """The client's optional correlation `id` (string or integer), echoed in replies."""
    rid = obj.get("id")
    if isinstance(rid, bool) or not isinstance(rid, str | int):
        return None
    return rid[:128] if isinstance(rid, str) else rid


def parse_speak(obj: Any, *, max_chars: int, request_id: Any = None) -> Speak:
    """Validate a speak body (HTTP JSON or WebSocket message)."""
    if not isinstance(obj, Mapping):
        raise WireError("bad_message", "expected a JSON object", request_id)
    text = obj.get("text")
    if not isinstance(text, str):
        raise WireError("bad_message", "'text' must be a string", request_id)
    if not text.strip():
        raise WireError("text_empty", "'text' is empty: give the words to speak", request_id)
    if len(text) > max_chars:
        raise WireError(
            "text_too_long",
            f"'text' has {len(text)} characters; the limit is {max_chars} - split it into "
            "several speak commands (they queue)",
            request_id,
        )
    barge_in = obj.get("barge_in", False)
    if not isinstance(barge_in, bool):
        raise WireError("bad_message", "'barge_in' must be true or false", request_id)
    return Speak(text, barge_in, request_id)


def parse_client_message(data: str, *, max_chars: int) -> Command:
    """A WebSocket text message -> command; raises WireError with a clear reason.

    Checked by hand, not with a JSON Schema validator: this builds the typed command and
    says what to fix in one pass; `jsonschema` over the same `SCHEMAS` took ~8x as long for
    a speak message and still left both to write (`benchmarks/libraries.py`). The tests
    check every message against `SCHEMAS` with jsonschema."""
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        raise WireError("bad_json", "message is not valid JSON") from None
    if not isinstance(obj, dict):
        raise WireError("bad_message", "message must be a JSON object with a 'type'")
    rid = _request_id(obj)
    kind = obj.get("type")
    fields = _CLIENT_FIELDS.get(kind) if isinstance(kind, str) else None
    if fields is not None and not fields.issuperset(obj):
        extra = sorted(set(obj) - fields)[0]
        raise WireError("bad_message", f"unknown field {extra[:40]!r} in a {kind} message; it "
                        f"takes {', '.join(sorted(fields))}", rid)
    if kind == "speak":
        return parse_speak(obj, max_chars=max_chars, request_id=rid)
    if kind == "stop":
        return Stop(rid)
    if kind == "ping":
        return Ping(rid)
    if kind == "audio_start":
        return _audio_start(obj, max_chars, rid)
    if kind in ("audio_append", "user_audio"):
        pcm = _base64_pcm(obj.get("data"), rid)
        return AudioAppend(pcm) if kind == "audio_append" else UserAudio(pcm)
    if kind == "audio_text":
        text = obj.get("text")
        if not isinstance(text, str) or len(text) > max_chars:
            raise WireError("bad_message", f"'text' must be a string of at most {max_chars} "
                            "characters", rid)
        return AudioText(text)
    if kind == "audio_end":
        return AudioEnd(rid)
    shown = kind if isinstance(kind, str) else json.dumps(kind)
    raise WireError(
        "unknown_type",
        f"unknown message type {shown[:40]!r}; expected one of {', '.join(CLIENT_TYPES)}",
        rid,
    )


def _audio_start(obj: Mapping[str, Any], max_chars: int, rid: Any) -> AudioStart:
    rate = obj.get("sample_rate")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int)):
        raise WireError("bad_message", "'sample_rate' must be an integer (Hz)", rid)
    channels = obj.get("channels", 1)
    if type(channels) is not int or channels not in (1, 2):  # not True, not 2.0
        raise WireError("bad_message", "'channels' must be 1 or 2", rid)
    text = obj.get("text", "")
    if not isinstance(text, str) or len(text) > max_chars:
        raise WireError("bad_message", f"'text' must be a string of at most {max_chars} "
                        "characters", rid)
    barge_in = obj.get("barge_in", False)
    if not isinstance(barge_in, bool):
        raise WireError("bad_message", "'barge_in' must be true or false", rid)
    return AudioStart(rate, channels, text, barge_in, rid)


def _base64_pcm(data: Any, rid: Any) -> bytes:
    if not isinstance(data, str):
        raise WireError("bad_message", "'data' must be a base64 string of PCM16LE samples", rid)
    try:
        return base64.b64decode(data, validate=True)
    except ValueError:
        raise WireError("bad_audio", "'data' is not valid base64", rid) from None


# ---------------------------------------------------------------- JSON Schemas

_UID = {"type": "integer", "minimum": 1}
_PTS = {"type": "number", "minimum": 0}
_REQ_ID = {"type": ["string", "integer"]}
_WEIGHTS = {
    "type": "object",
    "properties": {c: {"type": "number", "minimum": 0, "maximum": 1} for c in VISEME_CLASSES},
    "additionalProperties": False,
    "minProperties": 1,
}


def _obj(type_: str, props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"type": {"const": type_}, **props},
        "required": ["type", *required],
        "additionalProperties": False,
    }


#: JSON Schema (draft 2020-12 subset) of every JSON message, by `type`.
SCHEMAS: dict[str, dict[str, Any]] = {
    # server -> client
    "hello": _obj("hello", {
        "protocol": {"const": PROTOCOL_VERSION},
        "session_id": {"type": "string"},
        "avatar_id": {"type": "string"},
        "provider": {"enum": ["espeak", "elevenlabs", "audio", "openai", "custom"]},
        "sample_rate": {"type": "integer", "minimum": 8000},
        "viseme_fps": {"type": "number", "exclusiveMinimum": 0},
        "classes": {"type": "array", "items": {"type": "string"}},
        "audio": {"enum": ["binary", "json"]},
        "send_ahead_ms": {"type": "number", "minimum": 0},
        "lipsync": {"enum": ["visemes", "onnx"]},
        "patch_fps": {"type": "number", "exclusiveMinimum": 0},
        "patch_codec": {"enum": ["png", "webp"]},
    }, ["protocol", "session_id", "avatar_id", "provider", "sample_rate", "viseme_fps",
        "classes", "audio", "send_ahead_ms"]),
    "utterance_start": _obj("utterance_start", {
        "utterance_id": _UID,
        "text": {"type": "string"},
        "sample_rate": {"type": "integer", "minimum": 8000},
        "pts_ms": _PTS,
        "resumed": {"type": "boolean"},
    }, ["utterance_id", "text", "sample_rate", "pts_ms", "resumed"]),
    "viseme": _obj("viseme", {
        "utterance_id": _UID,
        "pts_ms": {"type": "integer", "minimum": 0},
        "weights": _WEIGHTS,
    }, ["utterance_id", "pts_ms", "weights"]),
    "audio": _obj("audio", {
        "utterance_id": _UID,
        "pts_ms": _PTS,
        "sample_rate": {"type": "integer", "minimum": 8000},
        "data": {"type": "string", "contentEncoding": "base64"},
    }, ["utterance_id", "pts_ms", "sample_rate", "data"]),
    "utterance_end": _obj("utterance_end", {
        "utterance_id": _UID,
        "interrupted": {"type": "boolean"},
        "pts_ms": _PTS,
        "reason": {"enum": ["completed", "stop", "barge_in", "error", "closed"]},
    }, ["utterance_id", "interrupted", "pts_ms", "reason"]),
    "ack": _obj("ack", {
        "command": {"enum": ["speak", "stop", "audio_start", "audio_end"]},
        "ok": {"const": True},
        "utterance_id": _UID,
        "interrupted": {"type": "boolean"},
        "id": _REQ_ID,
    }, ["command", "ok"]),
    "pong": _obj("pong", {"id": _REQ_ID}, []),
    "error": _obj("error", {
        "code": {"type": "string"},
        "message": {"type": "string"},
        "utterance_id": _UID,
        "id": _REQ_ID,
    }, ["code", "message"]),
    # client -> server
    "speak": _obj("speak", {
        "text": {"type": "string", "minLength": 1},
        "barge_in": {"type": "boolean"},
        "id": _REQ_ID,
    }, ["text"]),
    "stop": _obj("stop", {"id": _REQ_ID}, []),
    "ping": _obj("ping", {"id": _REQ_ID}, []),
    "audio_start": _obj("audio_start", {
        "sample_rate": {"type": "integer", "minimum": 8000, "maximum": 48000},
        "channels": {"enum": [1, 2]},
        "text": {"type": "string"},
        "barge_in": {"type": "boolean"},
        "id": _REQ_ID,
    }, []),
    "audio_append": _obj("audio_append", {
        "data": {"type": "string", "contentEncoding": "base64"},
        "id": _REQ_ID,
    }, ["data"]),
    "audio_text": _obj("audio_text", {"text": {"type": "string"}, "id": _REQ_ID}, ["text"]),
    "audio_end": _obj("audio_end", {"id": _REQ_ID}, []),
    "user_audio": _obj("user_audio", {
        "data": {"type": "string", "contentEncoding": "base64"},
        "id": _REQ_ID,
    }, ["data"]),
}

#: The fields each client message may have (a typo such as `bargein` is an error, not
#: silently ignored).
_CLIENT_FIELDS: dict[str, frozenset[str]] = {
    kind: frozenset(SCHEMAS[kind]["properties"]) for kind in CLIENT_TYPES}

SERVER_MESSAGES = ("hello", "utterance_start", "viseme", "audio", "utterance_end", "ack",
                   "pong", "error")
