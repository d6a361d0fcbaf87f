"""avatarkit: one portrait photo to a live, talking 2D avatar.

The Python API (docs/api.md has runnable examples):

    import avatarkit

    result = avatarkit.build_avatar("hero.jpg", "out")            # -> out/hero/
    timeline, speech = avatarkit.speak("Hello there!")             # text -> visemes + audio
    timeline = avatarkit.timeline_from_audio_file("hello.wav")     # a recording -> visemes
    stream = avatarkit.AudioVisemeStream(sample_rate=24000)        # live: PCM in, frames out

Names load on first use, so `import avatarkit` stays cheap (the build pulls in mediapipe,
the listener a phone model). The CLI (`avatarkit build | preview | visemes | serve`) is a
thin layer over the same functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from avatarkit.errors import AvatarkitError
from avatarkit.lazy import lazy_getattr

if TYPE_CHECKING:
    from avatarkit.build import BuildOptions, BuildResult, IdleOptions, build_avatar, build_folder
    from avatarkit.listen import AudioVisemeStream, timeline_from_audio, timeline_from_audio_file
    from avatarkit.render import load_avatar, render_preview, speech_from_text
    from avatarkit.version import __version__
    from avatarkit.visemes import Timeline, speak

#: Public name -> the module that defines it.
_EXPORTS = {
    "BuildOptions": "avatarkit.build",
    "BuildResult": "avatarkit.build",
    "IdleOptions": "avatarkit.build",
    "build_avatar": "avatarkit.build",
    "build_folder": "avatarkit.build",
    "Timeline": "avatarkit.visemes",
    "speak": "avatarkit.visemes",
    "timeline_from_audio": "avatarkit.listen",
    "timeline_from_audio_file": "avatarkit.listen",
    "AudioVisemeStream": "avatarkit.listen",
    "load_avatar": "avatarkit.render",
    "render_preview": "avatarkit.render",
    "speech_from_text": "avatarkit.render",
    "__version__": "avatarkit.version",
}

__all__ = [  # written out for type checkers and linters; the same names as _EXPORTS
    "AudioVisemeStream", "AvatarkitError", "BuildOptions", "BuildResult", "IdleOptions",
    "Timeline", "__version__", "build_avatar", "build_folder", "load_avatar", "render_preview",
    "speak", "speech_from_text", "timeline_from_audio", "timeline_from_audio_file",
]


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())


def __dir__() -> list[str]:
    return sorted(__all__)
