"""Which TTS provider a session speaks with: the default factory, injectable for tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from avatarkit.errors import AvatarkitError
from avatarkit.tts.espeak_voice import EspeakOptions, EspeakProvider
from avatarkit.tts.provider import Provider, ProviderError, SpeechChunk
from server.config import ServerConfig

PROVIDERS = ("espeak", "elevenlabs", "audio", "openai")
#: Sample rate of an `audio` session when the request names none (OpenAI Realtime's PCM).
DEFAULT_PUSHED_RATE = 24000


@dataclass(frozen=True)
class VoiceRequest:
    """What a `POST /session-2d` asked for, after defaults were applied."""

    #: `espeak` or `elevenlabs`.
    provider: str
    #: ElevenLabs voice id, or an espeak-ng variant (`m3`, `Annie`); None = default.
    voice_id: str | None
    #: espeak-ng language code (also the G2P language for character alignment).
    lang: str
    #: `audio` sessions: the rate pushed audio has unless a turn says otherwise.
    sample_rate: int | None = None


class PushedAudio:
    """The provider of an `audio` session: no voice of its own; every utterance is audio a
    client or voice pipeline pushes over the WebSocket (server/listen.py)."""

    speaks_text = False

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate

    async def stream(self, text: str) -> AsyncIterator[SpeechChunk]:
        raise ProviderError("this session has no voice: push audio instead", "no_voice")
        yield  # pragma: no cover (an async generator that never yields)


#: Makes the provider of one session; raises AvatarkitError for a request it cannot serve.
ProviderFactory = Callable[[VoiceRequest], Provider]


def default_provider_name(config: ServerConfig) -> str:
    """ElevenLabs when the server has a key, else the embedded voice."""
    return "elevenlabs" if config.elevenlabs_api_key else "espeak"


def check_available(provider: str, config: ServerConfig) -> None:
    """Raise AvatarkitError when this server cannot give a session `provider`: the one
    check, made by the route before a session (or a rate-limit token) is spent, and by the
    default factory."""
    if provider not in PROVIDERS:
        raise AvatarkitError(f"unknown provider {provider!r}; use one of {', '.join(PROVIDERS)}")
    if provider == "elevenlabs" and not config.elevenlabs_api_key:
        raise AvatarkitError(
            "provider 'elevenlabs' is not available: the server has no "
            "ELEVENLABS_API_KEY - set it where the server runs, or use 'espeak'")
    if provider == "openai" and not config.openai_api_key:
        raise AvatarkitError(
            "provider 'openai' is not available: the server has no OPENAI_API_KEY - "
            "set it where the server runs")


def make_default_factory(
    config: ServerConfig, http: Callable[[], aiohttp.ClientSession]
) -> ProviderFactory:
    """The real providers; `http()` gives the server's shared client session."""

    def factory(req: VoiceRequest) -> Provider:
        check_available(req.provider, config)
        if req.provider == "openai":
            from server.openai_realtime import OpenAIRealtimeProvider, RealtimeOptions

            return OpenAIRealtimeProvider(RealtimeOptions.from_config(config), session=http())
        if req.provider == "elevenlabs":
            from avatarkit.tts.elevenlabs import ElevenLabsOptions, ElevenLabsProvider

            kwargs: dict[str, Any] = {
                "api_key": config.elevenlabs_api_key,
                "voice_id": req.voice_id or config.elevenlabs_voice_id,
                "model_id": config.elevenlabs_model_id,
                "output_format": config.elevenlabs_output_format,
                "receive_timeout_s": config.provider_timeout_s,
                "retries": config.provider_retries,
            }
            if config.elevenlabs_ws_base_url:
                kwargs["ws_base_url"] = config.elevenlabs_ws_base_url
            if config.elevenlabs_http_base_url:
                kwargs["http_base_url"] = config.elevenlabs_http_base_url
            return ElevenLabsProvider(ElevenLabsOptions(**kwargs), session=http())
        # `audio` sessions never reach a factory (server/sessions.py)
        return EspeakProvider(EspeakOptions(lang=req.lang, variant=req.voice_id))

    return factory
