"""Viseme classes, phoneme tables, coarticulation and exporters.

What `preview` and `serve` call:
- `speak(text, lang)` -> (Timeline, Synthesis): whole text with the embedded voice.
- `timeline_from_phonemes` / `timeline_from_alignment`: batch timelines.
- `coarticulate_step(state, phonemes, options, final=...)`: streaming frames.
- `chars_to_phonemes_step(state, chunk, lexicon)`: streaming ElevenLabs alignment.
"""

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

__all__ = [
    "FORMATS", "VISEME_CLASSES", "AlignmentChunk", "CharAlignment", "CharTimingState",
    "CoarticulationOptions", "CoarticulationState", "Frame", "TimedPhoneme", "Timeline",
    "chars_to_phonemes", "chars_to_phonemes_finish", "chars_to_phonemes_step", "coarticulate",
    "coarticulate_step", "espeak_lexicon", "export", "g2p", "live_events", "load_alignment_file",
    "phoneme_to_viseme", "speak", "timeline_from_alignment", "timeline_from_phonemes",
]
