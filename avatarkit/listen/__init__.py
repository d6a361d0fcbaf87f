"""Lip sync from audio alone, or audio + transcript: any voice, file or live stream.

What the CLI, the preview and the server call:
- `timeline_from_audio_file(path, text=None, lang=..., fps=...)`: a recording -> timeline.
- `timeline_from_audio(samples, sample_rate, ...)`: the same from samples in memory.
- `AudioVisemeStream(sample_rate, ...)`: PCM chunks in, viseme frames out, live.

Modules, in the order the audio flows: `pcm` (any input -> 16 kHz), `phones` (pocketsphinx
phone recognition), `lips` (what the signal shows about closed lips), `align` (forced
alignment of a transcript), `pauses`, `transcript` (streaming transcript matching),
`recipe` (whole recordings) and `stream` (live). Names load on first use: a recording
without its transcript needs neither the aligner nor the live stream.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from avatarkit.lazy import lazy_getattr

if TYPE_CHECKING:
    from avatarkit.listen.options import LipOptions, ListenOptions
    from avatarkit.listen.phones import RecognizerOptions
    from avatarkit.listen.recipe import (
        Heard,
        listen,
        timeline_from_audio,
        timeline_from_audio_file,
    )
    from avatarkit.listen.stream import AudioVisemeStream

#: Public name -> the module that defines it.
_EXPORTS = {
    "LipOptions": "avatarkit.listen.options", "ListenOptions": "avatarkit.listen.options",
    "RecognizerOptions": "avatarkit.listen.phones",
    "Heard": "avatarkit.listen.recipe", "listen": "avatarkit.listen.recipe",
    "timeline_from_audio": "avatarkit.listen.recipe",
    "timeline_from_audio_file": "avatarkit.listen.recipe",
    "AudioVisemeStream": "avatarkit.listen.stream",
}

__all__ = [
    "AudioVisemeStream", "Heard", "LipOptions", "ListenOptions", "RecognizerOptions", "listen",
    "timeline_from_audio", "timeline_from_audio_file",
]

__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())


def __dir__() -> list[str]:
    return sorted(__all__)
