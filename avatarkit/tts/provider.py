"""The TTS provider contract: text in, audio chunks with timing out, as an async stream.

Embedded espeak-ng gives exact phoneme timing; services such as ElevenLabs give character
alignment instead. A chunk carries whichever its provider has; the viseme engine turns
either into a timeline on the same clock as the audio.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from avatarkit.errors import AvatarkitError

if TYPE_CHECKING:  # only annotated here: timed phonemes alone need no alignment reader
    from avatarkit.tts.alignment import AlignmentChunk


@dataclass(frozen=True)
class TimedPhoneme:
    """A phoneme placed on the audio clock (ms from the start of the utterance)."""

    symbol: str
    start_ms: float
    end_ms: float


@dataclass(frozen=True)
class SpeechChunk:
    """A piece of speech: PCM16 mono audio plus its timing on the stream clock."""

    #: Little-endian signed 16-bit mono samples.
    pcm: bytes
    sample_rate: int
    #: Where this chunk's audio starts on the stream clock, ms.
    start_ms: float
    #: Timed phonemes on the stream clock (empty when the provider only has alignment).
    phonemes: tuple[TimedPhoneme, ...] = ()
    #: Character alignment as the provider sent it (None for phoneme-timed providers).
    alignment: AlignmentChunk | None = None
    #: The text this chunk speaks (a sentence for espeak-ng), for logs and captions.
    text: str = ""

    @property
    def duration_ms(self) -> float:
        """Length of this chunk's audio, ms."""
        return len(self.pcm) / 2 / self.sample_rate * 1000.0

    @property
    def end_ms(self) -> float:
        """Where this chunk's audio ends on the stream clock, ms."""
        return self.start_ms + self.duration_ms


@runtime_checkable
class Provider(Protocol):
    """Anything that can speak text as a stream of timed audio chunks."""

    #: Sample rate of the PCM it yields.
    sample_rate: int

    def stream(self, text: str) -> AsyncIterator[SpeechChunk]:
        """Yield chunks in order; the first should come as soon as possible."""
        ...


class ProviderError(AvatarkitError):
    """A TTS provider failed; `code` names the failure for clients and metrics.

    Codes: `unauthorized` (bad API key, 401), `quota_exceeded`, `rate_limited`,
    `bad_request` (the provider refused the input, e.g. close code 1008),
    `connection_lost`, `timeout`, `provider_error` (anything else).
    """

    def __init__(self, message: str, code: str = "provider_error") -> None:
        super().__init__(message)
        self.code = code
