"""Fuzzed input to the parsers of what comes from outside: ElevenLabs stream messages and
error bodies, OpenAI Realtime events, uploaded photos, pushed PCM and audio files.
Invariant: the input is used or refused with the module's own error (ProviderError,
AvatarkitError, WireError) - never another exception escaping to the server."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import wave

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from PIL import Image

from avatarkit.errors import AvatarkitError
from avatarkit.face.photo import decode_photo
from avatarkit.listen.pcm import ToListenerRate, load_speech
from avatarkit.tts.elevenlabs_api import (
    ChunkAssembler,
    ElevenLabsOptions,
    decode,
    error_details,
    ws_error,
)
from avatarkit.tts.provider import ProviderError
from server.listen import AudioTurn
from server.openai_realtime import OpenAIRealtimeProvider, RealtimeOptions
from server.wire import WireError, parse_client_message
from tests.fuzz_support import FUZZ, json_values

OPTS = ElevenLabsOptions(api_key="k-fuzz")

alignment = st.fixed_dictionaries({}, optional={
    "chars": st.lists(st.text(max_size=2), max_size=6) | json_values,
    "charStartTimesMs": st.lists(st.integers(-5, 500) | st.floats(), max_size=6) | json_values,
    "charDurationsMs": st.lists(st.integers(-5, 500) | st.floats(), max_size=6) | json_values,
}) | json_values
eleven_messages = st.fixed_dictionaries({}, optional={
    "audio": st.binary(max_size=50).map(lambda b: base64.b64encode(b).decode())
    | st.text(max_size=12) | json_values,
    "audio_base64": st.binary(max_size=9).map(lambda b: base64.b64encode(b).decode()),
    "alignment": alignment, "normalizedAlignment": alignment,
    "isFinal": json_values, "message": json_values, "error": json_values, "code": json_values,
})


@FUZZ
@given(msgs=st.lists(eleven_messages | json_values, max_size=4), raw=st.text(max_size=40))
def test_elevenlabs_messages(msgs, raw):
    chunks = ChunkAssembler(16000, OPTS)
    for msg in msgs:
        try:
            data = decode(json.dumps(msg), OPTS)
            if data.get("error") or (data.get("message") and not data.get("audio")):
                assert isinstance(ws_error(data, OPTS), ProviderError)
                continue
            for key in ("audio", "audio_base64"):
                chunk = chunks.chunk(data, key)
                if chunk is not None:
                    assert len(chunk.pcm) % 2 == 0
        except ProviderError:
            pass
    with pytest.raises(ProviderError) if not _is_json_object(raw) else _nothing():
        decode(raw, OPTS)
    name, message = error_details(raw)
    assert name is None or isinstance(name, str)
    assert isinstance(message, str)


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return False


REALTIME_TYPES = ["response.created", "response.output_audio.delta", "response.audio.delta",
                  "response.output_audio_transcript.delta", "response.output_audio.done",
                  "response.done", "input_audio_buffer.speech_started", "error", "x"]
realtime_events = st.fixed_dictionaries(
    {"type": st.sampled_from(REALTIME_TYPES)},
    optional={"response": json_values | st.fixed_dictionaries({}, optional={
        "id": json_values | st.just("r1"), "status": st.sampled_from(["failed", "completed"])
        | json_values, "status_details": json_values | st.fixed_dictionaries(
            {"error": json_values})}),
        "response_id": json_values | st.just("r1"), "item_id": json_values,
        "delta": st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode())
        | st.text(max_size=8) | json_values,
        "error": json_values | st.fixed_dictionaries({}, optional={
            "message": json_values, "code": json_values, "type": json_values})},
)


@FUZZ
@given(events=st.lists(realtime_events, max_size=6))
@example(events=[{"type": "response.done", "response": ["not", "an", "object"]}])
@example(events=[{"type": "error", "error": "rate limited"}])
@example(events=[{"type": "response.created", "response": {"id": "r1"}},
                 {"type": "response.done", "response": {"id": "r1", "status": "failed",
                                                        "status_details": "x"}}])
def test_openai_realtime_events(events):
    async def run() -> None:
        provider = OpenAIRealtimeProvider(RealtimeOptions(api_key="k-fuzz"))
        for event in events:
            await provider._on_event(event)  # the reader's step: must never raise
        await provider.aclose()

    asyncio.run(run())


def _image(fmt: str, size: tuple[int, int] = (24, 16)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 120, 90)).save(buf, fmt)
    return buf.getvalue()


SEEDS = [_image("JPEG"), _image("PNG"), _image("WEBP"), _image("GIF"), _image("BMP")]


@st.composite
def photo_bytes(draw: st.DrawFn) -> bytes:
    """A small valid image with a few bytes changed, cut short or extended, or noise."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=300))
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 6))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(data)))
    return bytes(data[:cut]) if draw(st.booleans()) else bytes(data) + draw(st.binary(max_size=20))


@FUZZ
@given(data=photo_bytes())
def test_photo_decoder(data, tmp_path_factory):
    try:
        photo = decode_photo(data, tmp_path_factory.getbasetemp() / "photo.jpg")
    except AvatarkitError as exc:
        assert str(exc).startswith("could not read photo.jpg")
        return
    assert photo.rgb.ndim == 3 and photo.rgb.shape[2] == 3


@FUZZ
@given(rate=st.integers(0, 200_000) | st.floats() | json_values,
       channels=st.integers(-1, 9) | st.floats() | json_values,
       chunks=st.lists(st.binary(max_size=64), max_size=4))
@example(rate=16000, channels=2.0, chunks=[bytes(64)])  # a float passed `in (1, 2)`
@example(rate=8000, channels=1, chunks=[bytes(8)])
def test_pushed_pcm(rate, channels, chunks):
    async def feed() -> None:  # as the socket handler does, on the loop
        try:
            turn = AudioTurn(rate, channels, max_ms=1000.0)
        except WireError:
            return
        for chunk in chunks:
            try:
                turn.feed(chunk)
            except WireError as exc:
                assert exc.code in ("bad_audio", "audio_too_long")

    asyncio.run(feed())
    try:
        conv = ToListenerRate(rate, channels)
    except AvatarkitError:
        return
    for chunk in chunks:
        try:
            out = conv.push(chunk)
        except AvatarkitError:
            continue
        assert np.all(np.isfinite(out))


@FUZZ
@given(msg=json_values.map(json.dumps) | st.text(max_size=60))
def test_client_messages(msg):
    try:
        parse_client_message(msg, max_chars=100)
    except WireError:
        pass


@st.composite
def wav_bytes(draw: st.DrawFn) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(draw(st.integers(1, 3)))
        w.setsampwidth(draw(st.sampled_from([1, 2, 3, 4])))
        w.setframerate(draw(st.sampled_from([8000, 16000, 44100, 4000, 1])))
        w.writeframes(draw(st.binary(max_size=200)))
    data = bytearray(buf.getvalue())
    for _ in range(draw(st.integers(0, 4))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data[:draw(st.integers(0, len(data)))]) if draw(st.booleans()) else bytes(data)


@FUZZ
@given(data=wav_bytes())
# a data chunk that claims more bytes than the file has: the stdlib raised RuntimeError
@example(data=b"RIFF$\x00\x00\x00WAVEfmt \x10\x01\x00\x00\x01\x00\x01\x00@\x1f\x00\x00@\x1f"
              b"\x00\x00\x01\x00\x08\x00data\x00\x00\x00\x00")
def test_audio_files(data, tmp_path_factory):
    path = tmp_path_factory.getbasetemp() / "speech.wav"
    path.write_bytes(data)
    try:
        samples = load_speech(path)
    except AvatarkitError:
        return
    assert np.all(np.isfinite(samples))
