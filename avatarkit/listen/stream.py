"""Live speech audio -> viseme frames, chunk by chunk (voice agents, pipelines, sockets).

    stream = AudioVisemeStream(sample_rate=24000)      # one per utterance or agent turn
    for pcm in chunks:                                  # PCM16 bytes or int16/float arrays
        for frame in stream.push(pcm):                  # frames that became final
            send(frame.pts_ms, frame.weights)
    tail = stream.finish()
    next_turn = AudioVisemeStream(sample_rate=24000, channel=stream.channel)  # same voice

Frames are on the audio clock (ms since the first sample pushed) and trail the newest audio
by at most `lookahead_ms`. `push` runs the phone recogniser: it is CPU work, so call it from
a worker thread or executor, never on an event loop.
"""

from __future__ import annotations

import numpy as np

from avatarkit.errors import AvatarkitError
from avatarkit.listen.lips import LipReader
from avatarkit.listen.options import ListenOptions
from avatarkit.listen.pcm import RATE, ToListenerRate
from avatarkit.listen.phones import PhoneRecognizer
from avatarkit.listen.transcript import TranscriptMatcher
from avatarkit.visemes.coarticulation import CoarticulationState, Frame, coarticulate_step
from avatarkit.visemes.phonemes import TimedPhoneme


class AudioVisemeStream:
    """PCM chunks of one utterance in, coarticulated viseme frames out."""

    def __init__(
        self,
        sample_rate: int,
        *,
        channels: int = 1,
        fps: float = 30.0,
        lang: str = "en-us",
        options: ListenOptions | None = None,
        channel: str | None = None,
    ) -> None:
        self.options = (options or ListenOptions()).with_fps(fps).checked()
        if self.options.speech_gate:
            raise AvatarkitError("the speech gate works on whole recordings (avatarkit "
                                 "visemes/preview --audio); gate a live stream before it")
        self.lang = lang
        self._input = ToListenerRate(sample_rate, channels)
        self._phones = PhoneRecognizer(self.options.recognizer, channel=channel)
        self._lips = LipReader(self.options.lips)
        self._text = TranscriptMatcher(lang)
        self._coart = CoarticulationState()
        self._samples = 0
        self._finished = False

    @property
    def lookahead_ms(self) -> float:
        """How far the newest frame trails the newest audio pushed, at most, ms: the lip
        evidence's context (or the recogniser's settle time) plus the coarticulation's."""
        return self.options.lookahead_ms

    @property
    def channel(self) -> str | None:
        """What this turn learned about the voice's audio channel, once finished: give it to
        the same voice's next stream (`channel=`, or set it before the first audio); short
        turns then hear more closures from their start. Before finishing: the one given."""
        return self._phones.channel

    @channel.setter
    def channel(self, value: str | None) -> None:
        self._phones.channel = value

    @property
    def audio_ms(self) -> float:
        """Audio received so far, ms (on the listener's 16 kHz clock)."""
        return self._samples * 1000.0 / RATE

    def add_text(self, text: str) -> None:
        """A piece of the transcript (e.g. an OpenAI Realtime transcript delta).

        Known words replace the recogniser's guesses for the phones they align to; the
        timing still comes from the audio.
        """
        self._text.add(text)

    def push(self, pcm: bytes | np.ndarray) -> list[Frame]:
        """Feed a chunk of audio; returns the frames that can no longer change."""
        if self._finished:
            raise AvatarkitError("this audio stream has finished; start a new one per utterance")
        samples = self._input.push(pcm)
        return self._advance(samples, final=False)

    def finish(self) -> list[Frame]:
        """End of the utterance: every remaining frame, up to the end of the audio."""
        if self._finished:
            return []
        samples = self._input.finish()
        frames = self._advance(samples, final=True)
        self._finished = True
        return frames

    def _advance(self, samples: np.ndarray, *, final: bool) -> list[Frame]:
        self._samples += len(samples)
        phones = self._phones.push(samples) if len(samples) else []
        if final:
            phones += self._phones.finish()
        self._lips.push(samples)
        # with a transcript coming, its words (not the signal) decide the stops
        phones = self._lips.refine(phones, final=final, keep_stops=self._text.active)
        phones = self._text.relabel(phones, final=final)
        return self._coarticulate(phones, final=final)

    def _coarticulate(self, phones: list[TimedPhoneme], *, final: bool) -> list[Frame]:
        frames, self._coart = coarticulate_step(
            self._coart, phones, self.options.coarticulation, final=final
        )
        return frames
