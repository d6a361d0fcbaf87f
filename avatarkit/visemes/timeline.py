"""The viseme engine's recipe: text / phonemes / character alignment -> viseme timeline.

    text --espeak-ng--> audio + timed phonemes --coarticulate--> frames
    alignment --char_timing (+ G2P)--> timed phonemes --coarticulate--> frames

espeak-ng and the G2P load when a recipe needs them: timed phonemes from elsewhere (a
recording the listener heard) need neither.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from avatarkit.errors import AvatarkitError
from avatarkit.visemes.classes import VISEME_CLASSES
from avatarkit.visemes.coarticulation import CoarticulationOptions, Frame, coarticulate
from avatarkit.visemes.phonemes import TimedPhoneme, pause_to_end

if TYPE_CHECKING:
    from avatarkit.tts.alignment import AlignmentChunk
    from avatarkit.tts.espeak_lib import Synthesis


@dataclass(frozen=True)
class Timeline:
    """Timed phonemes and the coarticulated viseme frames derived from them."""

    fps: float
    duration_ms: float
    phonemes: tuple[TimedPhoneme, ...]
    frames: tuple[Frame, ...]

    def to_dict(self) -> dict[str, Any]:
        """The documented JSON shape (`avatarkit visemes --format json`)."""
        return {
            "fps": self.fps,
            "duration_ms": round(self.duration_ms, 1),
            "classes": list(VISEME_CLASSES),
            "phonemes": [
                {"symbol": p.symbol, "start_ms": round(p.start_ms, 1), "end_ms": round(p.end_ms, 1)}
                for p in self.phonemes
            ],
            "events": [{"pts_ms": f.pts_ms, "weights": f.weights} for f in self.frames],
        }


def timeline_from_phonemes(
    phonemes: Sequence[TimedPhoneme],
    options: CoarticulationOptions | None = None,
    *,
    duration_ms: float | None = None,
) -> Timeline:
    """Coarticulate timed phonemes (IPA unless `options.alphabet` says otherwise)."""
    opts = options or CoarticulationOptions()
    phonemes = list(phonemes)
    end = max([duration_ms or 0.0, *(p.end_ms for p in phonemes)])
    if phonemes:
        phonemes += pause_to_end(phonemes[-1].end_ms, end)
    return Timeline(opts.fps, end, tuple(phonemes), tuple(coarticulate(phonemes, opts)))


def timeline_from_alignment(
    chunks: Iterable[AlignmentChunk],
    lang: str = "en-us",
    options: CoarticulationOptions | None = None,
    *,
    duration_ms: float | None = None,
) -> Timeline:
    """ElevenLabs-style character alignment chunks -> timeline (G2P through espeak-ng)."""
    from avatarkit.visemes.char_timing import chars_to_phonemes
    from avatarkit.visemes.g2p import espeak_lexicon

    phonemes = chars_to_phonemes(chunks, espeak_lexicon(lang), total_ms=duration_ms)
    if not any(p.symbol != "_" for p in phonemes):
        raise AvatarkitError("the alignment contains no speakable words")
    return timeline_from_phonemes(phonemes, options, duration_ms=duration_ms)


def speak(
    text: str,
    lang: str = "en-us",
    options: CoarticulationOptions | None = None,
    *,
    variant: str | None = None,
    rate_wpm: int = 175,
) -> tuple[Timeline, Synthesis]:
    """Synthesise `text` with the embedded voice; return its timeline and the audio."""
    if not text.strip():
        raise AvatarkitError("no text to speak: pass a non-empty --text")
    from avatarkit.tts.espeak_lib import engine

    synthesis = engine().synthesize(text, lang, variant=variant, rate_wpm=rate_wpm)
    phonemes = list(synthesis.phonemes)
    timeline = timeline_from_phonemes(phonemes, options, duration_ms=synthesis.duration_ms)
    return timeline, synthesis
