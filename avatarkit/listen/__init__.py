"""Lip sync from audio alone, or audio + transcript: any voice, file or live stream.

What the CLI, the preview and the server call:
- `timeline_from_audio_file(path, text=None, lang=..., fps=...)`: a recording -> timeline.
- `timeline_from_audio(samples, sample_rate, ...)`: the same from samples in memory.
- `AudioVisemeStream(sample_rate, ...)`: PCM chunks in, viseme frames out, live.

Modules, in the order the audio flows: `pcm` (any input -> 16 kHz), `phones` (pocketsphinx
phone recognition), `lips` (what the signal shows about closed lips), `align` (forced
alignment of a transcript), `pauses`, `transcript` (streaming transcript matching),
`recipe` (whole recordings) and `stream` (live).
"""

from avatarkit.listen.options import LipOptions, ListenOptions
from avatarkit.listen.phones import RecognizerOptions
from avatarkit.listen.recipe import Heard, listen, timeline_from_audio, timeline_from_audio_file
from avatarkit.listen.stream import AudioVisemeStream

__all__ = [
    "AudioVisemeStream", "Heard", "LipOptions", "ListenOptions", "RecognizerOptions", "listen",
    "timeline_from_audio", "timeline_from_audio_file",
]
