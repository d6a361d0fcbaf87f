"""Viseme classes, phoneme tables, coarticulation and exporters.

What `preview` and `serve` call:
- `speak(text, lang)` -> (Timeline, Synthesis): whole text with the embedded voice.
- `timeline_from_phonemes` / `timeline_from_alignment`: batch timelines.
- `coarticulate_step(state, phonemes, options, final=...)`: streaming frames.
- `chars_to_phonemes_step(state, chunk, lexicon)`: streaming ElevenLabs alignment.

Names load on first use: timed phonemes from a recording need neither espeak-ng nor the
alignment readers, and `avatarkit visemes --audio` should not wait for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from avatarkit.lazy import lazy_getattr

if TYPE_CHECKING:
    from avatarkit.tts.alignment import AlignmentChunk, CharAlignment, load_alignment_file
    from avatarkit.visemes.char_timing import (
        CharTimingState,
        chars_to_phonemes,
        chars_to_phonemes_finish,
        chars_to_phonemes_step,
    )
    from avatarkit.visemes.classes import VISEME_CLASSES
    from avatarkit.visemes.coarticulation import (
        CoarticulationOptions,
        CoarticulationState,
        Frame,
        coarticulate,
        coarticulate_step,
    )
    from avatarkit.visemes.exporters import FORMATS, export, live_events
    from avatarkit.visemes.g2p import espeak_lexicon, g2p
    from avatarkit.visemes.phonemes import TimedPhoneme, phoneme_to_viseme
    from avatarkit.visemes.timeline import (
        Timeline,
        speak,
        timeline_from_alignment,
        timeline_from_phonemes,
    )

#: Public name -> the module that defines it.
_EXPORTS = {
    "AlignmentChunk": "avatarkit.tts.alignment", "CharAlignment": "avatarkit.tts.alignment",
    "load_alignment_file": "avatarkit.tts.alignment",
    "CharTimingState": "avatarkit.visemes.char_timing",
    "chars_to_phonemes": "avatarkit.visemes.char_timing",
    "chars_to_phonemes_finish": "avatarkit.visemes.char_timing",
    "chars_to_phonemes_step": "avatarkit.visemes.char_timing",
    "VISEME_CLASSES": "avatarkit.visemes.classes",
    "CoarticulationOptions": "avatarkit.visemes.coarticulation",
    "CoarticulationState": "avatarkit.visemes.coarticulation",
    "Frame": "avatarkit.visemes.coarticulation", "coarticulate": "avatarkit.visemes.coarticulation",
    "coarticulate_step": "avatarkit.visemes.coarticulation",
    "FORMATS": "avatarkit.visemes.exporters", "export": "avatarkit.visemes.exporters",
    "live_events": "avatarkit.visemes.exporters",
    "espeak_lexicon": "avatarkit.visemes.g2p", "g2p": "avatarkit.visemes.g2p",
    "TimedPhoneme": "avatarkit.visemes.phonemes",
    "phoneme_to_viseme": "avatarkit.visemes.phonemes",
    "Timeline": "avatarkit.visemes.timeline", "speak": "avatarkit.visemes.timeline",
    "timeline_from_alignment": "avatarkit.visemes.timeline",
    "timeline_from_phonemes": "avatarkit.visemes.timeline",
}

__all__ = [
    "FORMATS", "VISEME_CLASSES", "AlignmentChunk", "CharAlignment", "CharTimingState",
    "CoarticulationOptions", "CoarticulationState", "Frame", "TimedPhoneme", "Timeline",
    "chars_to_phonemes", "chars_to_phonemes_finish", "chars_to_phonemes_step", "coarticulate",
    "coarticulate_step", "espeak_lexicon", "export", "g2p", "live_events", "load_alignment_file",
    "phoneme_to_viseme", "speak", "timeline_from_alignment", "timeline_from_phonemes",
]

__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())


def __dir__() -> list[str]:
    return sorted(__all__)
