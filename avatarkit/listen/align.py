"""Audio + transcript -> timed phones: forced alignment with pocketsphinx's en-us model.

Words come from the transcript; their phones from pocketsphinx's CMUdict, or, for words it
does not know (names, other languages), from espeak-ng's G2P mapped onto the model's ARPAbet
phone set (`IPA_TO_ARPABET`). Alignment without optional silences absorbs pauses into the
neighbouring phones, so pauses are put back where the signal is silent (`pauses.py`); the
word-level pass does allow silence and noise between words, so a pause in a noisy recording
(too loud to count as quiet) cannot drag the words after it out of place. When
pocketsphinx cannot align the text (it does not match the audio, or the audio is noise),
`align` returns None and the caller falls back to listening without the text.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

import numpy as np

from avatarkit.listen.pcm import RATE
from avatarkit.listen.phones import (
    FILLER,
    FRAME_MS,
    DecoderPool,
    _pcm16,
    acoustic_model,
    model_dir,
    to_ipa,
)
from avatarkit.visemes.phonemes import TimedPhoneme, normalize_ipa

log = logging.getLogger(__name__)

#: IPA units (as `normalize_ipa` leaves them) -> the nearest phones of the en-us model.
#: Covers English and the other languages espeak-ng speaks; the nearest English phone is
#: chosen by place and manner first (what the lips show), then by sound.
IPA_TO_ARPABET: dict[str, tuple[str, ...]] = {
    # vowels
    "a": ("AA",), "ä": ("AA",), "ɐ": ("AH",), "ɑ": ("AA",), "ɒ": ("AO",), "æ": ("AE",),
    "ʌ": ("AH",), "ə": ("AH",), "ɘ": ("AH",), "ɚ": ("ER",), "ɝ": ("ER",), "ɜ": ("ER",),
    "e": ("EY",), "ɛ": ("EH",), "i": ("IY",), "ɪ": ("IH",), "ɨ": ("IH",), "ᵻ": ("IH",),
    "o": ("OW",), "ɔ": ("AO",), "u": ("UW",), "ʊ": ("UH",), "ʉ": ("UW",), "ɯ": ("UW",),
    "y": ("UW",), "ʏ": ("UH",), "ø": ("ER",), "œ": ("ER",), "ɶ": ("AO",), "ɵ": ("ER",),
    "ɤ": ("AH",), "aɪ": ("AY",), "aʊ": ("AW",), "eɪ": ("EY",), "oʊ": ("OW",), "əʊ": ("OW",),
    "ɔɪ": ("OY",), "ɔø": ("OY",), "ɔʏ": ("OY",),
    # consonants
    "p": ("P",), "b": ("B",), "ɓ": ("B",), "m": ("M",), "ɱ": ("M",), "β": ("B",), "ɸ": ("F",),
    "f": ("F",), "v": ("V",), "ʋ": ("V",), "pf": ("P", "F"), "θ": ("TH",), "ð": ("DH",),
    "t": ("T",), "d": ("D",), "ʈ": ("T",), "ɖ": ("D",), "n": ("N",), "ɳ": ("N",),
    "ɲ": ("N", "Y"), "ŋ": ("NG",), "ɴ": ("NG",), "s": ("S",), "z": ("Z",), "ʃ": ("SH",),
    "ʒ": ("ZH",), "ʂ": ("SH",), "ʐ": ("ZH",), "ɕ": ("SH",), "ʑ": ("ZH",), "ç": ("HH",),
    "ʝ": ("Y",), "x": ("HH",), "ɣ": ("G",), "χ": ("HH",), "ʁ": ("R",), "ʀ": ("R",),
    "r": ("R",), "ɾ": ("D",), "ɺ": ("L",), "ɽ": ("D",), "ɹ": ("R",), "ɻ": ("R",),
    "l": ("L",), "ɫ": ("L",), "ɭ": ("L",), "ʎ": ("L", "Y"), "ʟ": ("L",), "ɬ": ("L",),
    "ɮ": ("L",), "j": ("Y",), "ɥ": ("Y",), "w": ("W",), "ʍ": ("W",), "h": ("HH",),
    "ɦ": ("HH",), "ħ": ("HH",), "ʕ": ("HH",), "ʔ": (), "k": ("K",), "g": ("G",),
    "ɡ": ("G",), "q": ("K",), "ɢ": ("G",), "c": ("K",), "ɟ": ("G",), "ts": ("T", "S"),
    "dz": ("D", "Z"), "tʃ": ("CH",), "dʒ": ("JH",), "tɕ": ("CH",), "dʑ": ("JH",),
    "ʈʂ": ("CH",), "_": (), "∅": (),
}

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*", re.UNICODE)
#: Beam widths that align a whole utterance of tens of seconds in one pass.
_BEAMS = {"beam": 1e-80, "pbeam": 1e-80, "wbeam": 1e-60}
#: Beams of the word-level pass with optional silences between the words: the extra paths
#: need a wider beam (at 1e-80 one of the two real dev recordings found no path at all).
_PAUSED_BEAMS = {"beam": 1e-100, "pbeam": 1e-100, "wbeam": 1e-80}


def transcript_words(text: str) -> list[str]:
    """Lower-case words of a transcript; punctuation, brackets and markup dropped."""
    text = re.sub(r"<[^>]*>|\[[^\]]*\]", " ", text)
    return [w.replace("’", "'").lower() for w in _WORD.findall(text)]


def ipa_to_arpabet(phonemes: Sequence[str]) -> list[str]:
    """espeak-ng IPA phonemes -> the en-us model's phones (unknown units are dropped)."""
    from avatarkit.visemes.phonemes import _segment_ipa

    out: list[str] = []
    for symbol in phonemes:
        units = _segment_ipa(normalize_ipa(symbol)) or []
        for unit in units:
            out.extend(IPA_TO_ARPABET.get(unit, ()))
    return out


def _decoder():  # -> pocketsphinx.Decoder
    from pocketsphinx import Decoder

    return Decoder(
        hmm=str(acoustic_model()), dict=str(model_dir() / "en-us" / "cmudict-en-us.dict"),
        samprate=RATE, loglevel="FATAL", bestpath=False, fsgusefiller=False, **_BEAMS,
    )


#: One idle aligner kept for reuse (loading the dictionary costs ~0.4 s, as much as aligning
#: a few seconds of speech). Words it was taught stay: their names say their phones.
ALIGNERS = DecoderPool(keep=1)


def _pronounce(decoder, words: list[str], lang: str) -> list[str]:
    """Make every word known to the decoder; returns the words as the decoder spells them.

    A word the dictionary lacks (or any word of another language) is added under a name
    that carries its phones, so a reused decoder never mixes two pronunciations of it.
    """
    from avatarkit.visemes.g2p import espeak_lexicon

    english = lang.lower().startswith("en")
    lexicon = None
    out: list[str] = []
    new: dict[str, str] = {}
    for word in words:
        if english and decoder.lookup_word(word) is not None:
            out.append(word)
            continue
        lexicon = lexicon or espeak_lexicon(lang)
        phones = ipa_to_arpabet(list(lexicon(word)))
        if not phones:
            continue  # nothing pronounceable (a lone symbol)
        name = f"{word}__{'_'.join(phones).lower()}"
        if name not in new and decoder.lookup_word(name) is None:
            new[name] = " ".join(phones)
        out.append(name)
    for i, (name, phones) in enumerate(new.items()):
        # rebuilding the search per word cost ~60 ms each: only after the last one
        decoder.add_word(name, phones, update=i == len(new) - 1)
    return out


def _search(decoder, words: Sequence[str], pcm: bytes, *, pauses: bool = False
            ) -> list | None:
    """Word-level alignment: [(word, first frame, last frame)] or None if it fails.

    `pauses`: silence and noise may come between the words (as `<sil>`, `[NOISE]`, ...
    segments); without it every frame belongs to a word of the text."""
    _configure(decoder, pauses)
    try:
        decoder.set_align_text(" ".join(words))
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
    except RuntimeError as exc:  # pocketsphinx reports a failed search this way
        log.info("forced alignment failed: %s", exc)
        return None
    if decoder.hyp() is None:
        return None
    return [(s.word, s.start_frame, s.end_frame) for s in decoder.seg() or ()]


def _configure(decoder, pauses: bool) -> None:
    """Switch the decoder between strict alignment and alignment with optional pauses
    (pocketsphinx reads these settings when the next alignment's search is built)."""
    config = decoder.config
    if bool(config["fsgusefiller"]) == pauses:
        return
    config["fsgusefiller"] = pauses
    for name, value in (_PAUSED_BEAMS if pauses else _BEAMS).items():
        config[name] = value


def _phone_pass(decoder, words: Sequence[str], pcm: bytes, offset_ms: float
                ) -> list[TimedPhoneme] | None:
    """Phone-level alignment of `words` in `pcm` (both passes), or None if it fails."""
    if _search(decoder, words, pcm) is None:
        return None
    try:
        decoder.set_alignment()
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        alignment = decoder.get_alignment()
    except RuntimeError as exc:
        log.info("phone alignment failed: %s", exc)
        return None
    if alignment is None:
        return None
    return [
        TimedPhoneme(_filler_vowel(w.name, to_ipa(p.name)), offset_ms + p.start * FRAME_MS,
                     offset_ms + (p.start + p.duration) * FRAME_MS)
        for w in alignment.words() for p in w if p.duration > 0
    ]


#: Hesitation words of transcripts ("uh", "um"): their vowel is a filler, which a speaker
#: may hold for a second (the listener must not take it for speech the text lacks).
FILLER_WORDS = frozenset({"uh", "um", "uhm", "er", "erm", "ah", "eh", "hm", "hmm", "mm"})


def _filler_vowel(word: str, phone: str) -> str:
    """The filler symbol for the vowel of a hesitation word, else `phone`."""
    base = re.sub(r"\(\d+\)$", "", word).split("__")[0]
    if base in FILLER_WORDS and phone in ("ʌ", "ɑ", "ɛ", "ɚ", "ɝ", "ə"):
        return FILLER
    return phone


def _spread(decoder, word: str, start_ms: float, end_ms: float) -> list[TimedPhoneme]:
    """Last resort for one word: its dictionary phones share its span evenly."""
    phones = (decoder.lookup_word(word) or "").split()
    if not phones:
        return [TimedPhoneme("_", start_ms, end_ms)]
    step = (end_ms - start_ms) / len(phones)
    return [TimedPhoneme(to_ipa(p), start_ms + i * step, start_ms + (i + 1) * step)
            for i, p in enumerate(phones)]


def _chunks(segments: list, min_frames: int) -> list[list]:
    """Consecutive word segments grouped into pieces of at least `min_frames`."""
    groups: list[list] = [[]]
    for seg in segments:
        groups[-1].append(seg)
        if groups[-1][-1][2] - groups[-1][0][1] + 1 >= min_frames:
            groups.append([])
    if not groups[-1]:
        groups.pop()
    elif len(groups) > 1:
        groups[-2].extend(groups.pop())
    return groups


def _runs(segments: list, words: Sequence[str]) -> list[tuple[bool, list]]:
    """Word segments split at the pauses between them: [(is a pause, segments)] in order.

    A segment whose word is not one of `words` (the transcript, as the decoder spells
    it; an alternative pronunciation carries a "(2)") is silence or noise."""
    spoken = set(words)
    out: list[tuple[bool, list]] = []
    for seg in segments:
        pause = re.sub(r"\(\d+\)$", "", seg[0]) not in spoken
        if out and out[-1][0] == pause:
            out[-1][1].append(seg)
        else:
            out.append((pause, [seg]))
    return out


#: Length of the pieces the phone-level pass aligns one at a time, frames (2 s).
PIECE_FRAMES = 200


def align(
    samples: np.ndarray, text: str, lang: str = "en-us"
) -> list[TimedPhoneme] | None:
    """Timed IPA phones of `text` spoken in `samples` (16 kHz), or None if it cannot align.

    A word-level pass over the whole audio places the words; the phone-level pass then runs
    on pieces of about 2 s (word by word where a piece fails, evenly spread phones for a
    word that still fails), which keeps one odd stretch (a cough, a word the speaker
    skipped) from failing the whole alignment.
    """
    words = transcript_words(text)
    if not words or len(samples) < RATE // 10:
        return None
    decoder = ALIGNERS.acquire(None, _decoder)
    phones = _align(decoder, words, samples, lang)
    ALIGNERS.release(None, decoder)  # not after an error: its state is unknown then
    return phones


def _align(decoder, words: list[str], samples: np.ndarray, lang: str
           ) -> list[TimedPhoneme] | None:
    words = _pronounce(decoder, words, lang)
    if not words:
        return None
    pcm = _pcm16(samples)
    # words placed with pauses allowed between them, else (no path) strictly
    segments = _search(decoder, words, pcm, pauses=True) or _search(decoder, words, pcm)
    if not segments:
        return None
    bytes_per_frame = 2 * RATE * int(FRAME_MS) // 1000
    phones: list[TimedPhoneme] = []
    pieces: list[list] = []
    for pause, run in _runs(segments, words):
        if pause:
            phones.append(TimedPhoneme("_", run[0][1] * FRAME_MS, (run[-1][2] + 1) * FRAME_MS))
        else:
            pieces += _chunks(run, PIECE_FRAMES)
    for piece in pieces:
        first, last = piece[0][1], piece[-1][2] + 1
        found = _phone_pass(decoder, [w for w, _, _ in piece],
                            pcm[first * bytes_per_frame:last * bytes_per_frame],
                            first * FRAME_MS)
        if found is None:
            found = []
            for word, a, b in piece:
                audio = pcm[a * bytes_per_frame:(b + 1) * bytes_per_frame]
                one = _phone_pass(decoder, [word], audio, a * FRAME_MS)
                found += one if one else _spread(decoder, word, a * FRAME_MS, (b + 1) * FRAME_MS)
        phones += found
    phones.sort(key=lambda p: p.start_ms)
    return phones if any(p.symbol != "_" for p in phones) else None
