"""ElevenLabs over HTTP (`stream/with-timestamps`) and the `auto` transport, against the fake."""

from __future__ import annotations

from typing import Any

import pytest

from avatarkit.tts.elevenlabs import ElevenLabsProvider
from avatarkit.tts.provider import ProviderError, SpeechChunk
from tests.fakes.elevenlabs import fake_elevenlabs  # noqa: F401  (fixture)
from tests.test_tts_elevenlabs import TEXT, assert_contiguous, assert_words_on_time


async def collect(provider: ElevenLabsProvider) -> list[SpeechChunk]:
    try:
        return [chunk async for chunk in provider.stream(TEXT)]
    finally:
        await provider.aclose()


@pytest.mark.parametrize("time_base", ["chunk", "stream"])
async def test_http_request_and_timing(fake_elevenlabs, time_base: str) -> None:  # noqa: F811
    fake = await fake_elevenlabs(time_base=time_base, normalized_leading_space=True)
    chunks = await collect(ElevenLabsProvider(fake.options(transport="http",
                                                           output_format="pcm_22050")))
    (req,) = fake.http_requests
    assert not fake.ws_attempts
    assert req.headers["xi-api-key"] == fake.api_key and fake.api_key not in req.path_qs
    assert req.query == {"output_format": "pcm_22050"}
    assert req.body == {"text": TEXT, "model_id": "eleven_flash_v2_5",
                        "voice_settings": {"stability": 0.5, "similarity_boost": 0.75}}
    assert len(chunks) > 5
    assert_contiguous(chunks, fake, 22050)
    assert_words_on_time(chunks, fake.truth_words)


async def test_auto_uses_the_websocket_when_it_works(fake_elevenlabs) -> None:  # noqa: F811
    fake = await fake_elevenlabs()
    chunks = await collect(ElevenLabsProvider(fake.options(transport="auto")))
    assert chunks and len(fake.ws_sessions) == 1 and not fake.http_requests


async def test_auto_falls_back_to_http_when_the_handshake_fails(fake_elevenlabs) -> None:  # noqa: F811
    fake = await fake_elevenlabs(ws_handshake_status=503, time_base="stream")
    chunks = await collect(ElevenLabsProvider(fake.options(transport="auto")))
    assert len(fake.ws_attempts) == 1 and not fake.ws_sessions
    assert len(fake.http_requests) == 1
    assert_contiguous(chunks, fake, 16000)
    assert_words_on_time(chunks, fake.truth_words)


async def test_auto_does_not_retry_a_bad_key_over_http(fake_elevenlabs) -> None:  # noqa: F811
    fake = await fake_elevenlabs(api_key="right-key")
    with pytest.raises(ProviderError) as info:
        await collect(ElevenLabsProvider(fake.options(transport="auto", api_key="wrong-key")))
    assert info.value.code == "unauthorized" and not fake.http_requests


async def test_ws_only_does_not_fall_back(fake_elevenlabs) -> None:  # noqa: F811
    fake = await fake_elevenlabs(ws_handshake_status=503)
    with pytest.raises(ProviderError) as info:
        await collect(ElevenLabsProvider(fake.options()))
    assert info.value.code == "provider_error" and "503" in str(info.value)
    assert not fake.http_requests


HTTP_ERRORS: dict[str, tuple[dict[str, Any], str, str, int]] = {
    "bad-key": ({"api_key": "right-key"}, "unauthorized", "Invalid API key", 0),
    "quota-401": ({"fail": "quota"}, "quota_exceeded", "exceeds your quota", 0),
    "rate-429": ({"fail": "rate_limit"}, "rate_limited", "Too many concurrent", 0),
    "bad-request-400": ({"fail": "bad_request"}, "bad_request", "HTTP 400", 0),
    "dropped": ({"fail": "drop", "fail_after_chunks": 2}, "connection_lost", "broke off", 2),
    "stall": ({"fail": "stall", "fail_after_chunks": 2}, "timeout", "no data for 0.3 s", 2),
}


@pytest.mark.parametrize("case", HTTP_ERRORS.values(), ids=HTTP_ERRORS.keys())
async def test_http_errors(fake_elevenlabs, case: tuple[dict[str, Any], str, str, int]) -> None:  # noqa: F811
    switches, code, phrase, n_before = case
    fake = await fake_elevenlabs(**switches)
    key = "sk_live_http_secret_987"
    options = fake.options(transport="http", receive_timeout_s=0.3,
                           api_key=key if "api_key" in switches else fake.api_key)
    provider = ElevenLabsProvider(options)
    got: list[SpeechChunk] = []
    with pytest.raises(ProviderError) as info:
        try:
            async for chunk in provider.stream(TEXT):
                got.append(chunk)
        finally:
            await provider.aclose()
    assert info.value.code == code, str(info.value)
    assert phrase in str(info.value)
    assert key not in str(info.value) and fake.api_key not in str(info.value)
    assert len(got) == n_before
