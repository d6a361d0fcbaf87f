"""Character alignment -> timed phonemes, as a pure streaming function.

A TTS service such as ElevenLabs reports *when each character is spoken*, not phonemes.
We rebuild words from the characters, look their phonemes up, and spread each word's
phonemes over its time span in proportion to typical phoneme durations. Words may be cut
across chunks, times may restart per chunk or run over the whole stream, and either
alignment may be missing on a chunk; the state carries what is needed across calls.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from avatarkit.tts.alignment import AlignmentChunk, CharAlignment
from avatarkit.visemes.evolve import evolve
from avatarkit.visemes.g2p import Lexicon
from avatarkit.visemes.phonemes import TimedPhoneme, lookup, pause_to_end

#: Relative duration of a phoneme by manner: mean espeak-ng durations on the corpus
#: (vowel 68 ms, stop 46, fricative 70, nasal 85, liquid 63, glide 82, affricate 80).
MANNER_WEIGHT: dict[str, float] = {
    "vowel": 1.0, "stop": 0.68, "affricate": 1.18, "fricative": 1.03, "nasal": 1.25,
    "liquid": 0.93, "glide": 1.2, "weak": 0.85, "pause": 0.3,
}
#: Extra weight for stressed vowels and two-target vowels (diphthongs), same fit.
STRESS_BONUS = 0.62
GLIDE_BONUS = 0.45
#: Gaps between words shorter than this are closed instead of becoming a pause, ms.
MIN_PAUSE_MS = 15.0

_HARD_SEPARATORS = set(",;:!?\"“”„«»()[]{}…—–¡¿/|")
_KEEP_TRAILING = set("%‰°")


@dataclass(frozen=True)
class CharTimingState:
    """What the streaming aligner carries between chunks (immutable)."""

    #: Characters of a word not yet closed by a separator: (char, start_ms, end_ms).
    pending: tuple[tuple[str, float, float], ...] = ()
    #: Audio received before the next chunk, ms; None when chunks carry no audio length.
    audio_ms: float | None = 0.0
    #: End of the last character seen, on the stream clock, ms.
    last_char_end_ms: float = 0.0
    #: End of the last phoneme emitted, ms.
    emitted_ms: float = 0.0
    #: Time base of the last chunk: True if its times restarted at 0 (chunk-relative).
    relative: bool | None = None


def _chunk_offset(state: CharTimingState, al: CharAlignment) -> tuple[float, bool | None]:
    """Detect the time base of a chunk: is its first time near 0 or near the stream clock?"""
    expected = state.audio_ms if state.audio_ms is not None else state.last_char_end_ms
    if not al.start_ms or expected < 1.0:
        return 0.0, state.relative
    first = min(al.start_ms)
    relative = abs(first) < abs(first - expected)
    return (expected if relative else 0.0), relative


def _spoken(chunk: AlignmentChunk) -> CharAlignment | None:
    """The alignment to use, with normalizedAlignment's spurious leading space removed."""
    al = chunk.spoken()
    raw = chunk.alignment
    if (
        al is not None and al is chunk.normalized and raw is not None and len(al) > 1
        and al.chars[0].isspace() and raw.chars and not raw.chars[0].isspace()
    ):
        return CharAlignment(al.chars[1:], al.start_ms[1:], al.duration_ms[1:])
    return al


def _is_separator(ch: str) -> bool:
    return not ch or ch.isspace() or ch in _HARD_SEPARATORS


def _trim(word: list[tuple[str, float, float]]) -> list[tuple[str, float, float]]:
    """Drop punctuation at the word's edges (keeps `Dr` from `Dr.` and `50%` whole)."""
    def punct(ch: str) -> bool:
        return unicodedata.category(ch[0]).startswith("P") if ch else True

    while word and punct(word[0][0]):
        word = word[1:]
    while word and punct(word[-1][0]) and word[-1][0] not in _KEEP_TRAILING:
        word = word[:-1]
    return word


@lru_cache(maxsize=4096)
def phoneme_weight(symbol: str) -> float:
    """Typical relative duration of a phoneme (vowels long, glides short); cached: a relaying
    server places every word of every stream with it."""
    res = lookup(symbol)
    w = MANNER_WEIGHT.get(res.info.manner, 0.8)
    if res.info.manner == "vowel":
        if "ˈ" in symbol or "'" in symbol:
            w += STRESS_BONUS
        if res.end_viseme is not None:
            w += GLIDE_BONUS
    return w


def place_word(
    phonemes: Sequence[str],
    start_ms: float,
    end_ms: float,
) -> list[TimedPhoneme]:
    """Spread a word's phonemes over [start, end] in proportion to typical durations.

    """
    if not phonemes or end_ms <= start_ms:
        return []
    weights = [phoneme_weight(p) for p in phonemes]
    scale = (end_ms - start_ms) / sum(weights)
    bounds = [start_ms]
    for w in weights:
        bounds.append(bounds[-1] + w * scale)
    bounds[-1] = end_ms
    return [TimedPhoneme(p, a, b) for p, a, b in zip(phonemes, bounds, bounds[1:], strict=False)]


def _emit_word(
    state: CharTimingState, word: list[tuple[str, float, float]], lexicon: Lexicon
) -> tuple[list[TimedPhoneme], CharTimingState]:
    word = _trim(word)
    if not word:
        return [], state
    text = "".join(c for c, _, _ in word)
    phonemes = list(lexicon(text))
    start = max(word[0][1], state.emitted_ms)
    end = max(word[-1][2], start)
    if not phonemes or end <= start:
        return [], state
    out: list[TimedPhoneme] = []
    if start - state.emitted_ms >= MIN_PAUSE_MS:
        out.append(TimedPhoneme("_", state.emitted_ms, start))
    else:
        start = state.emitted_ms  # close tiny gaps: speech is continuous there
    out += place_word(phonemes, start, end)
    return out, evolve(state, emitted_ms=end)


def chars_to_phonemes_step(
    state: CharTimingState, chunk: AlignmentChunk, lexicon: Lexicon
) -> tuple[list[TimedPhoneme], CharTimingState]:
    """Consume one chunk; return phonemes of the words it completed, and the new state."""
    al = _spoken(chunk)
    out: list[TimedPhoneme] = []
    if al is not None and len(al):
        offset, relative = _chunk_offset(state, al)
        state = evolve(state, relative=relative)
        word = list(state.pending)
        last_end = state.last_char_end_ms
        for ch, s, d in zip(al.chars, al.start_ms, al.duration_ms, strict=True):
            start, end = s + offset, s + offset + d
            last_end = max(last_end, end)
            if _is_separator(ch):
                if word:
                    emitted, state = _emit_word(state, word, lexicon)
                    out += emitted
                    word = []
            else:
                word.append((ch, start, end))
        state = evolve(state, pending=tuple(word), last_char_end_ms=last_end)
    if chunk.audio_ms is not None and state.audio_ms is not None:
        state = evolve(state, audio_ms=state.audio_ms + chunk.audio_ms)
    elif chunk.audio_ms is None:
        state = evolve(state, audio_ms=None)
    return out, state


def chars_to_phonemes_finish(
    state: CharTimingState, lexicon: Lexicon, *, total_ms: float | None = None
) -> tuple[list[TimedPhoneme], CharTimingState]:
    """Close the last word and pad with a pause to the end of the audio."""
    out, state = _emit_word(state, list(state.pending), lexicon) if state.pending else ([], state)
    state = evolve(state, pending=())
    end = max(state.last_char_end_ms, total_ms or 0.0)
    pause = pause_to_end(state.emitted_ms, end)
    if pause:
        out += pause
        state = evolve(state, emitted_ms=end)
    return out, state


def chars_to_phonemes(
    chunks: Iterable[AlignmentChunk], lexicon: Lexicon, *, total_ms: float | None = None
) -> list[TimedPhoneme]:
    """Batch form: every chunk of an utterance -> its timed phonemes."""
    state = CharTimingState()
    out: list[TimedPhoneme] = []
    for chunk in chunks:
        emitted, state = chars_to_phonemes_step(state, chunk, lexicon)
        out += emitted
    emitted, state = chars_to_phonemes_finish(state, lexicon, total_ms=total_ms)
    return out + emitted
