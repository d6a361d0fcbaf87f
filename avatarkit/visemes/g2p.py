"""Grapheme-to-phoneme conversion through espeak-ng, per language code."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

from avatarkit.errors import AvatarkitError
from avatarkit.tts.espeak_lib import check_language, engine

#: word -> its phonemes (IPA); what `char_timing` uses to fill a word's time span.
Lexicon = Callable[[str], Sequence[str]]


def g2p(text: str, lang: str = "en-us") -> list[list[str]]:
    """IPA phonemes per spoken word (numbers and abbreviations expanded by espeak-ng)."""
    if not text.strip():
        raise AvatarkitError("no text to convert to phonemes: the text is empty")
    return engine().text_to_phonemes(text, check_language(lang))


@lru_cache(maxsize=50_000)
def _word(word: str, lang: str) -> tuple[str, ...]:
    return tuple(p for w in engine().text_to_phonemes(word, lang) for p in w)


def espeak_lexicon(lang: str = "en-us") -> Lexicon:
    """A cached word -> phonemes function for `lang` (blocking: call from a worker thread)."""
    code = check_language(lang)

    def lookup(word: str) -> Sequence[str]:
        return _word(word, code)

    return lookup
