"""The embedded offline voice: espeak-ng speaking sentence by sentence, with exact timing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from avatarkit.errors import AvatarkitError
from avatarkit.tts.espeak_lib import Synthesis, check_language, check_variant, engine
from avatarkit.tts.provider import SpeechChunk, TimedPhoneme
from avatarkit.tts.sentences import split_sentences

#: The fastest rate whose phoneme timing matches its audio (see `EspeakOptions.rate_wpm`).
MAX_RATE_WPM = 449


@dataclass(frozen=True)
class EspeakOptions:
    """How the embedded voice speaks."""

    #: espeak-ng language code (`en-us`, `en-gb`, `de`, `fr`, `es`, `it`, ... ~130 more).
    lang: str = "en-us"
    #: Voice variant shipped with espeak-ng (e.g. `Annie`, `m3`, `f2`); None = default.
    variant: str | None = None
    #: Speaking rate in words per minute, 80–449. From 450 espeak-ng speeds its audio up
    #: afterwards (sonic) but not its phoneme events, which then run far past the audio
    #: (1.32 s of phonemes for 0.75 s of speech): the mouth would lag the voice.
    rate_wpm: int = 175
    #: Base pitch, 0–99.
    pitch: int = 50

    def checked(self) -> EspeakOptions:
        """Validate every field once, up front, with actionable messages."""
        check_language(self.lang)
        check_variant(self.variant)
        if not 80 <= self.rate_wpm <= MAX_RATE_WPM:
            raise AvatarkitError(f"rate must be 80–{MAX_RATE_WPM} words per minute, got "
                                 f"{self.rate_wpm}")
        if not 0 <= self.pitch <= 99:
            raise AvatarkitError(f"pitch must be 0–99, got {self.pitch}")
        return self


class EspeakProvider:
    """`Provider` over espeak-ng: one chunk per sentence, synthesised off the event loop.

    All synthesis runs on espeak-ng's single worker thread, so any number of concurrent
    streams are safe; they interleave sentence by sentence.
    """

    def __init__(self, options: EspeakOptions | None = None) -> None:
        self.options = (options or EspeakOptions()).checked()
        self.sample_rate = engine().sample_rate

    def _synthesize(self, sentence: str) -> Synthesis:
        o = self.options
        return engine().synthesize(
            sentence, o.lang, variant=o.variant, rate_wpm=o.rate_wpm, pitch=o.pitch
        )

    async def stream(self, text: str) -> AsyncIterator[SpeechChunk]:
        """Yield one chunk per sentence; the next sentence is made while this one plays."""
        sentences = split_sentences(text)
        if not sentences:
            raise AvatarkitError("no text to speak: the text is empty")
        loop = asyncio.get_running_loop()
        executor = engine().executor
        pending: asyncio.Future[Synthesis] | None = loop.run_in_executor(
            executor, self._synthesize, sentences[0])
        current: asyncio.Future[Synthesis] | None = None
        clock = 0.0
        try:
            for i, sentence in enumerate(sentences):
                current = pending
                assert current is not None
                pending = (loop.run_in_executor(executor, self._synthesize, sentences[i + 1])
                           if i + 1 < len(sentences) else None)
                # hold nothing while the sentence plays: a server keeps hundreds of streams
                # suspended at this yield, and the cyclic GC scans every object they keep
                box = [_retimed(await current, clock, sentence)]
                current = None
                clock = box[0].end_ms
                yield box.pop()
        finally:
            for future in (current, pending):
                if future is not None and not future.done():
                    future.cancel()


def _retimed(synthesis: Synthesis, clock: float, sentence: str) -> SpeechChunk:
    """A sentence's synthesis as a chunk that starts at `clock` on the stream clock."""
    return SpeechChunk(synthesis.pcm, synthesis.sample_rate, clock, tuple(
        TimedPhoneme(p.symbol, p.start_ms + clock, p.end_ms + clock)
        for p in synthesis.phonemes
    ), None, sentence)
