"""What the mouth says: audio plus viseme weights on the audio's clock.

From text (the embedded espeak-ng voice, whose own phoneme timing drives the timeline), from
someone else's audio with a timeline made by `avatarkit visemes`, or from someone else's
audio alone (the listener hears the phones; a transcript makes it more accurate). When the timeline
and the audio differ in length, the audio wins: the timeline is trimmed, or the mouth rests
after it ends, and an AvatarkitWarning says which.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from avatarkit.audio.io import Audio, read_audio
from avatarkit.errors import AvatarkitWarning
from avatarkit.render.timeline_file import read_timeline
from avatarkit.render.weights import WeightTrack

#: Timeline and audio lengths may differ this much without a warning (ms).
LENGTH_TOLERANCE_MS = 60.0


@dataclass(frozen=True)
class Speech:
    """Audio and the viseme weights that go with it (times in ms from the audio's start)."""

    audio: Audio
    weights: WeightTrack

    @property
    def duration_ms(self) -> float:
        return self.audio.duration_ms


def speech_from_text(text: str, lang: str = "en-us", *, voice: str | None = None,
                     rate_wpm: int = 175) -> Speech:
    """Speak `text` with the embedded voice; its phoneme timing makes the timeline."""
    from avatarkit.visemes.timeline import speak

    timeline, synthesis = speak(text, lang, variant=voice, rate_wpm=rate_wpm)
    return Speech(Audio.from_pcm(synthesis.pcm, synthesis.sample_rate),
                  WeightTrack.from_timeline(timeline))


def speech_from_audio(audio_path: str | Path, text: str | None = None, lang: str = "en-us",
                      speech_gate: bool = False) -> Speech:
    """Someone else's recording; the timeline comes from listening to it (`avatarkit.listen`;
    `speech_gate`: Rest where a voice activity detector hears no speech)."""
    from avatarkit.listen import ListenOptions, timeline_from_audio

    audio = read_audio(audio_path)
    timeline = timeline_from_audio(audio.samples, audio.sample_rate, text=text, lang=lang,
                                   fps=100.0, options=ListenOptions(speech_gate=speech_gate))
    return Speech(audio, WeightTrack.from_timeline(timeline).fitted(audio.duration_ms))


def fit_to_audio(weights: WeightTrack, audio: Audio, timeline_name: str = "the timeline",
                 audio_name: str = "the audio") -> WeightTrack:
    """`weights` cut or extended to the audio's length, warning when they differ."""
    t, a = weights.duration_ms, audio.duration_ms
    if t > a + LENGTH_TOLERANCE_MS:
        warnings.warn(f"{timeline_name} is {t / 1000:.2f} s but {audio_name} is {a / 1000:.2f} s:"
                      f" trimmed the timeline's last {(t - a) / 1000:.2f} s", AvatarkitWarning,
                      stacklevel=2)
    elif a > t + LENGTH_TOLERANCE_MS:
        warnings.warn(f"{timeline_name} is {t / 1000:.2f} s but {audio_name} is {a / 1000:.2f} s:"
                      f" padded the timeline with Rest (the mouth stays idle for the last "
                      f"{(a - t) / 1000:.2f} s)", AvatarkitWarning, stacklevel=2)
    return weights.fitted(a)


def speech_from_files(audio_path: str | Path, timeline_path: str | Path) -> Speech:
    """Someone else's audio with a timeline file from `avatarkit visemes`."""
    weights = read_timeline(timeline_path)
    audio = read_audio(audio_path)
    return Speech(audio, fit_to_audio(weights, audio, f"timeline {Path(timeline_path).name}",
                                      f"audio {Path(audio_path).name}"))
