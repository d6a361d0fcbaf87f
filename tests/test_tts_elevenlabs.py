"""ElevenLabs client against a fake service on a real loopback socket: wire bytes, every
alignment shape and time base against espeak-ng's ground truth, barge-in, every error."""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import logging
from typing import Any

import aiohttp
import pytest

from avatarkit.errors import AvatarkitError
from avatarkit.tts.elevenlabs import (
    ChunkAssembler,
    ElevenLabsOptions,
    ElevenLabsProvider,
    VoiceSettings,
)
from avatarkit.tts.provider import Provider, ProviderError, SpeechChunk
from avatarkit.tts.sockets import close_quietly
from avatarkit.visemes.g2p import espeak_lexicon
from avatarkit.visemes.timeline import timeline_from_alignment
from tests.fakes.elevenlabs import (
    FakeElevenLabs,
    TruthWord,
    fake_elevenlabs,  # noqa: F401  (fixture)
)

TEXT = "Bob met Pam at the pub. Did they talk about maps? Maybe the problem is simple."
SENTENCES = ["Bob met Pam at the pub.", "Did they talk about maps?",
             "Maybe the problem is simple."]
#: Word onsets and ends must agree with espeak-ng's timing to within this, ms.
WORD_TOLERANCE_MS = 25.0


async def collect(provider: ElevenLabsProvider, text: str = TEXT) -> list[SpeechChunk]:
    return [chunk async for chunk in provider.stream(text)]


async def speak_all(options: ElevenLabsOptions, text: str = TEXT) -> list[SpeechChunk]:
    """Every chunk a fresh provider yields for `text` (the provider closed afterwards)."""
    provider = ElevenLabsProvider(options)
    try:
        return await collect(provider, text)
    finally:
        await provider.aclose()


def word_spans(chunks: list[SpeechChunk]) -> list[TruthWord]:
    """Words as the viseme engine times them from the yielded chunks' alignments."""
    total = chunks[-1].end_ms
    timeline = timeline_from_alignment([c.alignment for c in chunks if c.alignment],
                                       duration_ms=total)
    spoken = [p for p in timeline.phonemes if p.symbol != "_"]
    lex = espeak_lexicon("en-us")
    out, i = [], 0
    for word in TEXT.replace(".", "").replace("?", "").split():
        n = len(lex(word))
        out.append(TruthWord(word, spoken[i].start_ms, spoken[i + n - 1].end_ms))
        i += n
    assert i == len(spoken)
    return out


def assert_words_on_time(chunks: list[SpeechChunk], truth: list[TruthWord]) -> None:
    got = word_spans(chunks)
    assert [w.text for w in got] == [w.text for w in truth]
    for g, t in zip(got, truth, strict=True):
        assert abs(g.start_ms - t.start_ms) < WORD_TOLERANCE_MS, (g, t)
        assert abs(g.end_ms - t.end_ms) < WORD_TOLERANCE_MS, (g, t)


def assert_contiguous(chunks: list[SpeechChunk], fake: FakeElevenLabs, rate: int) -> None:
    """Audio is exactly what the fake sent, and start_ms follows the audio received."""
    assert b"".join(c.pcm for c in chunks) == bytes(fake.audio)
    clock = 0.0
    for c in chunks:
        assert c.sample_rate == rate and c.phonemes == ()
        assert c.start_ms == pytest.approx(clock)
        assert c.alignment is not None and c.alignment.audio_ms == pytest.approx(c.duration_ms)
        clock = c.end_ms


# -- wire ------------------------------------------------------------------------------------
async def test_wire_bytes_init_header_flushes_and_close(fake_elevenlabs) -> None:  # noqa: F811
    fake = await fake_elevenlabs()
    options = fake.options(voice_id="abcDEF123", model_id="eleven_turbo_v2_5",
                           output_format="pcm_24000", inactivity_timeout_s=45,
                           chunk_length_schedule=(60, 100), language_code="en",
                           voice_settings=VoiceSettings(stability=0.3, similarity_boost=0.9))
    chunks = await speak_all(options)
    s = fake.last
    assert s.voice_id == "abcDEF123"
    assert s.headers["xi-api-key"] == fake.api_key
    assert fake.api_key not in s.path_qs
    assert s.query == {"model_id": "eleven_turbo_v2_5", "output_format": "pcm_24000",
                       "sync_alignment": "true", "inactivity_timeout": "45",
                       "language_code": "en"}
    assert s.init == {"text": " ", "voice_settings": {"stability": 0.3, "similarity_boost": 0.9},
                      "generation_config": {"chunk_length_schedule": [60, 100]}}
    assert s.texts == [{"text": f"{x} ", "flush": True} for x in SENTENCES] + [{"text": ""}]
    assert json.loads(s.frames[-1]) == {"text": ""}
    # Sending does not wait for audio: all text was on the wire before the 2nd chunk went out.
    assert max(s.frame_chunks) <= 1
    assert s.client_close_code is not None  # the client closed its side after isFinal
    assert_contiguous(chunks, fake, 24000)
    assert "".join(c.text for c in chunks) == " ".join(SENTENCES) + " "


async def test_chunks_are_yielded_as_they_arrive(fake_elevenlabs) -> None:  # noqa: F811
    fake = await fake_elevenlabs(chunk_delay_s=0.02)
    provider = ElevenLabsProvider(fake.options())
    try:
        agen = provider.stream(TEXT)
        first = await agen.__anext__()
        assert first.start_ms == 0.0 and first.pcm
        assert fake.last.chunks_sent < 4  # the stream is far from done
        rest = [c async for c in agen]
    finally:
        await provider.aclose()
    assert len(rest) + 1 == fake.last.chunks_sent


def test_satisfies_the_provider_protocol() -> None:
    provider = ElevenLabsProvider(ElevenLabsOptions(api_key="k", output_format="pcm_44100"))
    assert isinstance(provider, Provider)
    assert provider.sample_rate == 44100


# -- alignment shapes and time bases vs espeak-ng's ground truth ------------------------------
SCENARIOS: dict[str, dict[str, Any]] = {
    "chunk-relative": {"time_base": "chunk"},
    "stream-relative": {"time_base": "stream"},
    "charsDurationsMs": {"time_base": "chunk", "durations_key": "charsDurationsMs"},
    "snake_case": {"time_base": "stream", "durations_key": "char_durations_ms"},
    "normalized-leading-space": {"time_base": "chunk", "normalized_leading_space": True},
    "alignment-null-some": {"time_base": "chunk", "alignment_nulls": {0, 2, 5}},
    "normalized-null-some": {"time_base": "stream", "normalized_nulls": {1, 3, 4}},
    "separate-messages-chunk": {"time_base": "chunk", "separate_alignment": True},
    "separate-messages-stream": {"time_base": "stream", "separate_alignment": True},
    "tiny-chunks": {"time_base": "chunk", "chunk_chars": 4},
}


@pytest.mark.parametrize("switches", SCENARIOS.values(), ids=SCENARIOS.keys())
async def test_timeline_matches_ground_truth(
    fake_elevenlabs, switches: dict[str, Any]  # noqa: F811
) -> None:
    fake = await fake_elevenlabs(**switches)
    chunks = await speak_all(fake.options())
    assert_contiguous(chunks, fake, 16000)
    # words really are cut across chunks
    texts = [c.text for c in chunks if c.text]
    assert any(a[-1].isalpha() and b[0].isalpha() for a, b in zip(texts, texts[1:], strict=False))
    if switches.get("separate_alignment"):
        assert any(not c.pcm and c.alignment and c.alignment.alignment for c in chunks)
        assert any(c.pcm and c.alignment and c.alignment.alignment is None for c in chunks)
    assert_words_on_time(chunks, fake.truth_words)


@pytest.mark.parametrize("fmt", ["pcm_22050", "pcm_44100"])
async def test_other_rates_resample_and_stay_on_time(fake_elevenlabs, fmt: str) -> None:  # noqa: F811
    fake = await fake_elevenlabs(time_base="stream")
    chunks = await speak_all(fake.options(output_format=fmt))
    rate = int(fmt.split("_")[1])
    assert_contiguous(chunks, fake, rate)
    assert chunks[-1].end_ms == pytest.approx(fake.truth_phonemes[-1].end_ms, abs=5)
    assert_words_on_time(chunks, fake.truth_words)


async def test_chunk_with_both_alignments_null_keeps_audio_and_clock(fake_elevenlabs) -> None:  # noqa: F811
    fake = await fake_elevenlabs(alignment_nulls={1}, normalized_nulls={1})
    chunks = await speak_all(fake.options())
    assert_contiguous(chunks, fake, 16000)
    blind = chunks[1].alignment
    assert blind is not None and blind.alignment is None and blind.normalized is None
    assert blind.audio_ms and blind.audio_ms > 100
    # Words after the blind chunk are still on time (the clock counted its audio).
    got = {w.text: w for w in word_spans_after(chunks, 2)}
    truth = {w.text: w for w in fake.truth_words}
    for text in ("Did", "talk", "maps", "problem", "simple"):
        assert abs(got[text].start_ms - truth[text].start_ms) < WORD_TOLERANCE_MS


def word_spans_after(chunks: list[SpeechChunk], first: int) -> list[TruthWord]:
    """Word spans from chunks[first:] with the earlier audio counted (alignments dropped)."""
    from avatarkit.tts.alignment import AlignmentChunk

    silent = [AlignmentChunk(None, None, c.duration_ms) for c in chunks[:first]]
    total = chunks[-1].end_ms
    timeline = timeline_from_alignment(silent + [c.alignment for c in chunks[first:]],
                                       duration_ms=total)
    spoken = [p for p in timeline.phonemes if p.symbol != "_"]
    lex = espeak_lexicon("en-us")
    words = "Did they talk about maps Maybe the problem is simple".split()
    out, i = [], len(spoken) - sum(len(lex(w)) for w in words)
    for word in words:
        n = len(lex(word))
        out.append(TruthWord(word, spoken[i].start_ms, spoken[i + n - 1].end_ms))
        i += n
    return out


# -- barge-in ------------------------------------------------------------------------------
async def test_closing_the_iterator_closes_the_socket_at_once(fake_elevenlabs) -> None:  # noqa: F811
    fake = await fake_elevenlabs(chunk_delay_s=0.05)
    provider = ElevenLabsProvider(fake.options())
    loop = asyncio.get_running_loop()
    try:
        agen = provider.stream(TEXT)
        await agen.__anext__()
        stopped = loop.time()
        await agen.aclose()
        await asyncio.wait_for(fake.last.closed.wait(), 2.0)
    finally:
        await provider.aclose()
    s = fake.last
    assert s.client_close_code == 1000
    assert s.closed_at is not None and s.closed_at - stopped < 0.5  # ~ms in practice
    assert s.chunks_sent < 5  # the service stopped long before the end (~25 chunks)
    assert not [t for t in asyncio.all_tasks() if "_send_text" in repr(t.get_coro())]


async def test_cancelling_a_waiting_consumer_closes_the_socket(fake_elevenlabs) -> None:  # noqa: F811
    fake = await fake_elevenlabs(fail="stall", fail_after_chunks=1)
    provider = ElevenLabsProvider(fake.options())

    async def consume() -> None:
        async for _ in provider.stream(TEXT):
            pass

    task = asyncio.create_task(consume())
    try:
        while not fake.ws_sessions or not fake.last.first_chunk_sent.is_set():
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.02)  # the consumer now waits for the next message
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(fake.last.closed.wait(), 2.0)
    finally:
        await provider.aclose()
    assert fake.last.client_close_code == 1000


async def test_a_stream_the_service_dropped_at_its_end_leaves_no_cycle(fake_elevenlabs) -> None:  # noqa: F811
    """The service sends its final message and cuts the connection before our close frame:
    the closed socket must be freed by reference counting alone, not wait for a full pass of
    the cyclic collector (which holds the server's loop for every live session)."""
    fake = await fake_elevenlabs(end_with_drop=True)
    provider = ElevenLabsProvider(fake.options())
    gc.collect()
    gc.disable()
    try:
        chunks = await collect(provider)
        await asyncio.sleep(0.05)  # the connection's last callbacks
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        left = [o for o in gc.garbage if isinstance(o, aiohttp.ClientWebSocketResponse)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
        await provider.aclose()
    assert chunks and sum(len(c.pcm) for c in chunks) > 0
    assert not left, "the closed socket waited for the cyclic collector"


async def test_close_quietly_keeps_the_error_without_its_traceback(fake_elevenlabs) -> None:  # noqa: F811
    """The error aiohttp kept (the service was gone) stays readable; only its traceback,
    which formed the cycle, is dropped."""
    fake = await fake_elevenlabs(end_with_drop=True)
    o = fake.options()
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(o.ws_url(), headers=o.headers)
        await ws.send_json(o.init_message())
        await ws.send_json({"text": "Hi. ", "flush": True})
        await ws.send_json({"text": ""})
        while (msg := await ws.receive()).type == aiohttp.WSMsgType.TEXT:
            if json.loads(msg.data).get("isFinal"):
                break
        else:
            raise AssertionError(f"the stream ended without its final message: {msg}")
        await asyncio.sleep(0.05)  # our side sees the connection go
        await close_quietly(ws)
        assert ws.closed
        exc = ws.exception()
        assert exc is not None and exc.__traceback__ is None


async def test_owned_session_closed_given_session_kept(fake_elevenlabs) -> None:  # noqa: F811
    fake = await fake_elevenlabs()
    owned = ElevenLabsProvider(fake.options())
    await collect(owned, "Hello there.")
    session = owned._session
    await owned.aclose()
    assert session is not None and session.closed
    async with aiohttp.ClientSession() as shared:
        provider = ElevenLabsProvider(fake.options(), session=shared)
        await collect(provider, "Hello there.")
        await provider.aclose()
        assert not shared.closed
        # two concurrent streams on one provider, each on its own socket
        a, b = await asyncio.gather(collect(provider, "One."), collect(provider, "Two."))
        assert a and b and len(fake.ws_sessions) == 4


# -- errors ----------------------------------------------------------------------------------
ERRORS: dict[str, tuple[dict[str, Any], str, str]] = {
    "bad-key-401": ({"api_key": "the-real-key"}, "unauthorized", "API key"),
    "bad-key-message": ({"api_key": "the-real-key", "auth_failure": "message"},
                        "unauthorized", "Invalid API key"),
    "quota": ({"fail": "quota", "fail_after_chunks": 0}, "quota_exceeded", "exceeds your quota"),
    "rate-message": ({"fail": "rate_limit", "fail_after_chunks": 1}, "rate_limited",
                     "Too many concurrent"),
    "rate-429": ({"ws_handshake_status": 429}, "rate_limited", "429"),
    "bad-request-1008": ({"fail": "bad_request", "fail_after_chunks": 2}, "bad_request",
                         "Could not parse input message"),
    "dropped": ({"fail": "drop", "fail_after_chunks": 2}, "connection_lost", "lost"),
    "inactivity": ({"fail": "inactivity", "fail_after_chunks": 1}, "timeout",
                   "Have not received a new text input"),
    "stall": ({"fail": "stall", "fail_after_chunks": 1}, "timeout",
              "no message for 0.3 s (receive_timeout_s)"),
}


@pytest.mark.parametrize("case", ERRORS.values(), ids=ERRORS.keys())
async def test_errors_have_codes_and_actionable_messages(
    fake_elevenlabs, case: tuple[dict[str, Any], str, str]  # noqa: F811
) -> None:
    switches, code, phrase = case
    fake = await fake_elevenlabs(**switches)
    key = "sk_live_do_not_leak_0123456789"
    # a short receive timeout only where the stall is the point: elsewhere a loaded machine
    # answering late must not turn the expected error into a timeout
    options = fake.options(api_key=key if "api_key" in switches else fake.api_key,
                           receive_timeout_s=0.3 if switches.get("fail") == "stall" else 10.0)
    provider = ElevenLabsProvider(options)
    got: list[SpeechChunk] = []
    try:
        with pytest.raises(ProviderError) as info:
            async for chunk in provider.stream(TEXT):
                got.append(chunk)
    finally:
        await provider.aclose()
    err = info.value
    assert err.code == code, str(err)
    assert phrase in str(err)
    assert key not in str(err) and fake.api_key not in str(err)
    expected_chunks = switches.get("fail_after_chunks", 0) if "fail" in switches else 0
    assert len(got) == expected_chunks


def test_bad_options_are_errors_at_construction() -> None:
    with pytest.raises(AvatarkitError, match="pcm_16000, pcm_22050"):
        ElevenLabsOptions(api_key="k", output_format="mp3_44100_128")
    with pytest.raises(AvatarkitError, match="ELEVENLABS_API_KEY"):
        ElevenLabsOptions(api_key=" ")
    with pytest.raises(AvatarkitError, match="transport"):
        ElevenLabsOptions(api_key="k", transport="carrier-pigeon")
    with pytest.raises(AvatarkitError, match="voice_id"):
        ElevenLabsOptions(api_key="k", voice_id="Rachel (British)")
    with pytest.raises(AvatarkitError, match="chunk_length_schedule"):
        ElevenLabsOptions(api_key="k", chunk_length_schedule=(10,))
    with pytest.raises(AvatarkitError, match="1–180"):
        ElevenLabsOptions(api_key="k", inactivity_timeout_s=600)
    with pytest.raises(AvatarkitError, match="stability"):
        ElevenLabsOptions(api_key="k", voice_settings=VoiceSettings(stability=2.0))
    with pytest.raises(AvatarkitError, match="ISO 639-1"):
        ElevenLabsOptions(api_key="k", language_code="English")
    with pytest.raises(AvatarkitError, match="ws_base_url"):
        ElevenLabsOptions(api_key="k", ws_base_url="https://api.elevenlabs.io")
    assert "sk_secret" not in repr(ElevenLabsOptions(api_key="sk_secret"))


async def test_empty_text_and_unreachable_host() -> None:
    provider = ElevenLabsProvider(ElevenLabsOptions(
        api_key="k", ws_base_url="ws://127.0.0.1:9", connect_timeout_s=2.0))
    try:
        with pytest.raises(AvatarkitError, match="empty"):
            await collect(provider, "  ")
        with pytest.raises(ProviderError) as info:
            await collect(provider, "Hello.")
        assert info.value.code == "connection_lost" and "127.0.0.1:9" in str(info.value)
    finally:
        await provider.aclose()


# -- message handling details ------------------------------------------------------------------
def test_odd_byte_split_between_messages_keeps_whole_samples() -> None:
    asm = ChunkAssembler(16000, ElevenLabsOptions(api_key="k"))
    pcm = bytes(range(200)) * 3  # 600 bytes = 300 samples
    a = asm.chunk({"audio": base64.b64encode(pcm[:101]).decode()}, "audio")
    b = asm.chunk({"audio": base64.b64encode(pcm[101:]).decode()}, "audio")
    assert a is not None and b is not None
    assert len(a.pcm) == 100 and a.pcm + b.pcm == pcm
    assert b.start_ms == pytest.approx(a.duration_ms)
    assert asm.chunk({"isFinal": True}, "audio") is None


def test_malformed_alignment_keeps_audio(caplog: pytest.LogCaptureFixture) -> None:
    asm = ChunkAssembler(16000, ElevenLabsOptions(api_key="k"))
    msg = {"audio": base64.b64encode(b"\0\0" * 160).decode(),
           "alignment": {"chars": ["a"], "charStartTimesMs": [0]},  # no durations
           "normalizedAlignment": {"chars": ["a"], "charStartTimesMs": [0],
                                   "charDurationsMs": [10]}}
    with caplog.at_level(logging.WARNING):
        chunk = asm.chunk(msg, "audio")
    assert chunk is not None and chunk.duration_ms == pytest.approx(10.0)
    assert chunk.alignment is not None and chunk.alignment.alignment is None
    assert chunk.alignment.normalized is not None and chunk.text == "a"
    assert "malformed" in caplog.text
