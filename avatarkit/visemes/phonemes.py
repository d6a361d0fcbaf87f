"""Phoneme symbols -> viseme classes: normalisation, lookup and timed segments.

A phoneme may be written in IPA (espeak-ng's output, stress and length marks included),
ARPAbet or espeak-ng mnemonics. Unknown symbols are logged once and shown as `Rest`, so a
new language or a new espeak release degrades gracefully instead of failing mid-stream.
(`TimedPhoneme` itself is what a voice delivers: it lives with `SpeechChunk` in
avatarkit/tts/provider.py and is imported from there.)
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from avatarkit.errors import AvatarkitError
from avatarkit.tts.provider import TimedPhoneme
from avatarkit.visemes.phoneme_tables import (
    ARPABET,
    DIPHTHONG_END,
    ESPEAK,
    ESPEAK_MARKERS,
    IPA,
    PhonemeInfo,
)

log = logging.getLogger(__name__)

Alphabet = Literal["ipa", "arpabet", "espeak"]
ALPHABETS: tuple[str, ...] = ("ipa", "arpabet", "espeak")

#: Share of a two-target phoneme (diphthong, r-coloured vowel) spent on its first target.
FIRST_TARGET_SHARE = 0.6

_PAUSE_INFO = IPA["_"]
_IPA_STRIP = set("ˈˌːˑ.-‿͜͡˞ʰʲʷˠˤⁿˡ'")
_IPA_REPLACE = {"ɡ": "g", "ʤ": "dʒ", "ʧ": "tʃ", "ʦ": "ts", "ʣ": "dz", "ɝ": "ɝ"}
_MAX_UNIT = max(len(k) for k in IPA)
_warned: set[tuple[str, str]] = set()


#: Two computations of one audio end differ by float rounding (~1e-13 ms): a chunk's end vs.
#: its last slice's start + length, a sum of chunk lengths vs. samples / rate. A gap before
#: the end of the audio no longer than this is that rounding, not silence, ms.
END_TOLERANCE_MS = 1e-6


def pause_to_end(last_end_ms: float, audio_end_ms: float) -> list[TimedPhoneme]:
    """The pause that pads speech ending at `last_end_ms` to the end of its audio.

    Empty for a gap within `END_TOLERANCE_MS`: even a zero-length pause is a Rest target at
    full dominance and pulls the last frames towards Rest, so batch and streaming (whose
    audio ends are summed differently) must agree on whether there is one.
    """
    if audio_end_ms - last_end_ms <= END_TOLERANCE_MS:
        return []
    return [TimedPhoneme("_", last_end_ms, audio_end_ms)]


@dataclass(frozen=True)
class Resolved:
    """A looked-up phoneme: its main appearance and, for glides, the class it moves to."""

    info: PhonemeInfo
    end_viseme: str | None = None


@dataclass(frozen=True)
class Segment:
    """A span of time during which one viseme class is the articulatory target."""

    viseme: str
    start_ms: float
    end_ms: float
    manner: str
    phoneme_index: int


def normalize_ipa(symbol: str) -> str:
    """Strip stress, length, tie bars and diacritics; map look-alike code points."""
    out = []
    for ch in unicodedata.normalize("NFD", symbol):
        if ch in _IPA_STRIP or unicodedata.combining(ch):
            continue
        out.append(_IPA_REPLACE.get(ch, ch))
    return "".join(out)


def _segment_ipa(base: str) -> list[str] | None:
    """Split a base IPA string into known units, longest match first; None if impossible."""
    units: list[str] = []
    i = 0
    while i < len(base):
        for size in range(min(_MAX_UNIT, len(base) - i), 0, -1):
            if base[i : i + size] in IPA:
                units.append(base[i : i + size])
                i += size
                break
        else:
            return None
    return units


@lru_cache(maxsize=4096)
def _resolve_ipa(symbol: str) -> Resolved | None:
    base = normalize_ipa(symbol.strip())
    if base in ("", "_", "∅"):
        return Resolved(_PAUSE_INFO)
    units = _segment_ipa(base)
    if not units:
        return None
    first = IPA[units[0]]
    end = DIPHTHONG_END.get(units[0]) if len(units) == 1 else IPA[units[-1]].viseme
    if len(units) > 1 and units[-1] in DIPHTHONG_END:
        end = DIPHTHONG_END[units[-1]]
    return Resolved(first, end if end and end != first.viseme else None)


@lru_cache(maxsize=4096)
def _resolve_espeak(symbol: str) -> Resolved | None:
    name = symbol.strip().lstrip("',%=")
    if name in ESPEAK_MARKERS:
        return Resolved(_PAUSE_INFO)  # caller drops markers
    for candidate in (name, name.rstrip(":"), name.rstrip(";")):
        if candidate in ESPEAK:
            return _resolve_ipa(ESPEAK[candidate])
    return None


@lru_cache(maxsize=1024)
def _resolve_arpabet(symbol: str) -> Resolved | None:
    name = symbol.strip().upper().rstrip("012")
    return _resolve_ipa(ARPABET[name]) if name in ARPABET else None


_RESOLVERS = {"ipa": _resolve_ipa, "espeak": _resolve_espeak, "arpabet": _resolve_arpabet}


def check_alphabet(alphabet: str) -> Alphabet:
    """Return `alphabet` if it is supported, else raise an actionable error."""
    if alphabet not in _RESOLVERS:
        raise AvatarkitError(
            f"unknown phoneme alphabet {alphabet!r}; use one of {', '.join(ALPHABETS)}"
        )
    return alphabet  # type: ignore[return-value]


def is_marker(symbol: str, alphabet: Alphabet = "ipa") -> bool:
    """True for espeak mnemonics that mark prosody/boundaries rather than sounds."""
    return alphabet == "espeak" and symbol.strip().lstrip("',%=") in ESPEAK_MARKERS


def lookup_strict(symbol: str, alphabet: Alphabet = "ipa") -> Resolved | None:
    """Look a phoneme up without fallback: None when the tables do not know it."""
    return _RESOLVERS[check_alphabet(alphabet)](symbol)


def lookup(symbol: str, alphabet: Alphabet = "ipa") -> Resolved:
    """Look a phoneme up; an unknown symbol is logged once and shown as `Rest`."""
    found = lookup_strict(symbol, alphabet)
    if found is not None:
        return found
    if (alphabet, symbol) not in _warned:
        _warned.add((alphabet, symbol))
        log.warning("unknown %s phoneme %r: shown as Rest", alphabet, symbol)
    return Resolved(_PAUSE_INFO)


def phoneme_to_viseme(symbol: str, alphabet: Alphabet = "ipa") -> str:
    """The canonical viseme class a phoneme shows at its onset (`Rest` if unknown)."""
    return lookup(symbol, alphabet).info.viseme


def to_segments(
    phonemes: Sequence[TimedPhoneme], alphabet: Alphabet = "ipa", *, first_index: int = 0
) -> list[Segment]:
    """Timed phonemes -> viseme target segments (glides split into two targets)."""
    segments: list[Segment] = []
    for offset, ph in enumerate(phonemes):
        if ph.end_ms <= ph.start_ms or is_marker(ph.symbol, alphabet):
            continue
        res = lookup(ph.symbol, alphabet)
        index = first_index + offset
        if res.end_viseme is None:
            segments.append(
                Segment(res.info.viseme, ph.start_ms, ph.end_ms, res.info.manner, index)
            )
            continue
        split = ph.start_ms + FIRST_TARGET_SHARE * (ph.end_ms - ph.start_ms)
        segments.append(Segment(res.info.viseme, ph.start_ms, split, res.info.manner, index))
        segments.append(Segment(res.end_viseme, split, ph.end_ms, res.info.manner, index))
    return segments


def unknown_symbols(symbols: Iterable[str], alphabet: Alphabet = "ipa") -> set[str]:
    """The symbols the tables cannot map (markers excluded); used by coverage tests."""
    return {
        s for s in symbols if not is_marker(s, alphabet) and lookup_strict(s, alphabet) is None
    }
