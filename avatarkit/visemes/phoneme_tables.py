"""Phoneme inventories: IPA (what espeak-ng emits), ARPAbet and espeak-ng mnemonics.

Pure data. Every IPA base symbol carries its viseme in the canonical 12 classes, its
Oculus/Meta 15 viseme, its Azure viseme ID and a manner used for duration and dominance.
ARPAbet and espeak mnemonics are mapped onto IPA so that one table decides the mouth shape.
"""

from __future__ import annotations

from dataclasses import dataclass

from avatarkit.visemes.classes import VISEME_CLASSES

#: Manner of a phoneme: vowel, stop, fricative, nasal, liquid, glide, weak (h, glottal), pause.
MANNERS = ("vowel", "stop", "fricative", "affricate", "nasal", "liquid", "glide", "weak", "pause")

OCULUS_VISEMES: tuple[str, ...] = (
    "sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "ih", "oh", "ou",
)


@dataclass(frozen=True)
class PhonemeInfo:
    """How one phoneme looks: viseme class, Oculus name, Azure ID and manner."""

    viseme: str
    oculus: str
    azure: int
    manner: str


# symbol(s)  viseme  oculus  azure  manner   -- one line per group of IPA base symbols
_IPA_ROWS = """
_ ∅                 Rest sil 0  pause
ʔ                   Rest sil 0  weak
a ä æ ɐ ʌ ɶ         AI   aa  1  vowel
ɑ                   AI   aa  2  vowel
e ɛ                 E    E   4  vowel
ə ɘ ɜ ᵻ ɨ ɤ ɯ       E    E   1  vowel
i ɪ                 E    ih  6  vowel
y ʏ ʉ               U    ou  7  vowel
u                   U    ou  7  vowel
ʊ                   U    ou  4  vowel
o                   O    oh  8  vowel
ɔ ɒ                 O    oh  3  vowel
ø ɵ œ               O    oh  8  vowel
ɚ ɝ                 R    RR  5  vowel
p b ɓ               MBP  PP  21 stop
m                   MBP  PP  21 nasal
β                   MBP  PP  21 fricative
ɸ                   FV   FF  18 fricative
f v                 FV   FF  18 fricative
ɱ                   FV   FF  18 nasal
ʋ                   FV   FF  18 glide
θ                   TH   TH  19 fricative
ð                   TH   TH  17 fricative
t d ʈ ɖ             L    DD  19 stop
n ɳ                 L    nn  19 nasal
ɾ ɽ                 L    DD  19 stop
l ɫ ɭ ɬ ɮ ɺ ʎ ʟ     L    nn  14 liquid
ɲ                   L    nn  19 nasal
k g ɡ c ɟ q ɢ       E    kk  20 stop
ŋ ɴ                 E    kk  20 nasal
x ɣ χ ʝ             E    kk  20 fricative
ç                   CH   SS  16 fricative
h ɦ ħ ʕ             E    kk  12 weak
s z                 CH   SS  15 fricative
ʃ ʒ ɕ ʑ ʂ ʐ         CH   CH  16 fricative
j                   E    ih  6  glide
w ʍ ɥ               WQ   ou  7  glide
ɹ ɻ r ʀ ʁ           R    RR  13 liquid
"""

# Multi-symbol units espeak emits as one phoneme: affricates and diphthongs whose first
# element decides the class (second targets are handled by the lookup as a glide).
_IPA_UNITS = """
tʃ dʒ tɕ dʑ ʈʂ      CH   CH  16 affricate
ts dz               CH   SS  15 affricate
pf                  MBP  PP  21 affricate
aɪ                  AI   aa  11 vowel
aʊ                  AI   aa  9  vowel
ɔɪ ɔø ɔʏ            O    oh  10 vowel
oʊ əʊ               O    oh  8  vowel
eɪ                  E    E   4  vowel
"""


def _parse(rows: str) -> dict[str, PhonemeInfo]:
    table: dict[str, PhonemeInfo] = {}
    for line in rows.strip().splitlines():
        *symbols, viseme, oculus, azure, manner = line.split()
        assert viseme in VISEME_CLASSES and oculus in OCULUS_VISEMES and manner in MANNERS
        for symbol in symbols:
            table[symbol] = PhonemeInfo(viseme, oculus, int(azure), manner)
    return table


#: IPA base symbol (no stress, length or diacritics) -> how it looks.
IPA: dict[str, PhonemeInfo] = {**_parse(_IPA_ROWS), **_parse(_IPA_UNITS)}

#: ARPAbet (CMUdict, stress digits stripped) -> IPA.
ARPABET: dict[str, str] = {
    "AA": "ɑ", "AE": "æ", "AH": "ʌ", "AO": "ɔ", "AW": "aʊ", "AX": "ə", "AXR": "ɚ", "AY": "aɪ",
    "EH": "ɛ", "ER": "ɝ", "EY": "eɪ", "IH": "ɪ", "IX": "ɨ", "IY": "i", "OW": "oʊ", "OY": "ɔɪ",
    "UH": "ʊ", "UW": "u", "UX": "ʉ", "B": "b", "CH": "tʃ", "D": "d", "DH": "ð", "DX": "ɾ",
    "EL": "l", "EM": "m", "EN": "n", "F": "f", "G": "g", "HH": "h", "H": "h", "JH": "dʒ",
    "K": "k", "L": "l", "M": "m", "N": "n", "NG": "ŋ", "NX": "ɾ", "P": "p", "Q": "ʔ", "R": "ɹ",
    "S": "s", "SH": "ʃ", "T": "t", "TH": "θ", "V": "v", "W": "w", "WH": "ʍ", "Y": "j",
    "Z": "z", "ZH": "ʒ", "SIL": "_", "SP": "_", "SPN": "_", "PAU": "_",
}

#: espeak-ng phoneme mnemonics (Kirshenbaum-like ASCII, stress marks stripped) -> IPA.
#: Covers what espeak-ng emits for en-us, en-gb, de, fr, es and it, plus common others.
ESPEAK: dict[str, str] = {
    "_": "_", "_:": "_", "_!": "_", "_|": "_", "_^_": "_",
    # vowels
    "a": "a", "a#": "ɐ", "a-": "a", "a:": "a", "aa": "æ", "A": "ɑ", "A:": "ɑ", "A@": "ɑɹ",
    "A~": "ɑ", "&": "æ", "&:": "æ", "0": "ɑ", "0#": "ɒ", "V": "ʌ", "@": "ə", "@-": "ə",
    "@2": "ə", "@5": "ə", "@L": "əl", "3": "ɚ", "3:": "ɜ", "e": "e", "e-": "e", "e:": "e",
    "e@": "eə", "eI": "eɪ", "EI": "ɛɪ", "E": "ɛ", "E:": "ɛ", "E~": "ɛ", "E2": "ɛ", "E#": "ɛ",
    "i": "i", "i:": "i", "i@": "iə", "i@3": "ɪɹ", "I": "ɪ", "I#": "ᵻ", "I2": "ɪ", "o": "o",
    "o:": "o", "o@": "ɔɹ", "oU": "oʊ", "O": "ɔ", "O:": "ɔ", "O2": "ɒ", "O@": "ɔɹ", "OI": "ɔɪ",
    "OY": "ɔø", "O~": "ɔ", "u": "u", "u:": "u", "U": "ʊ", "U@": "ʊɹ", "y": "y", "y-": "y",
    "y:": "y", "Y": "ø", "Y:": "ø", "W": "œ", "W~": "œ", "aI": "aɪ", "aI@": "aɪə",
    "aI3": "aɪɚ", "aU": "aʊ", "Q": "ɒ",
    # consonants
    "p": "p", "b": "b", "t": "t", "t#": "ɾ", "t2": "t", "t:": "t", "d": "d", "k": "k",
    "k:": "k", "g": "g", "m": "m", "n": "n", "N": "ŋ", "n^": "ɲ", "f": "f", "v": "v",
    "T": "θ", "D": "ð", "s": "s", "ss": "s", "z": "z", "z2": "z", "S": "ʃ", "Z": "ʒ",
    "C": "ç", "x": "x", "Q_": "ʔ", "?": "ʔ", "h": "h", "l": "l", "l^": "ʎ", "L": "ɫ",
    "r": "ɹ", "r-": "ɹ", "R": "r", "R2": "r", "*": "ɾ", "**": "ɾ", "j": "j", "J^": "ʝ",
    "w": "w", "B": "β", "G": "ɣ", "tS": "tʃ", "dZ": "dʒ", "ts": "ts", "ts2:": "ts",
    "dz": "dz", "pF": "pf", "X": "χ",
}

#: espeak mnemonics that mark prosody or boundaries and are not phonemes at all.
ESPEAK_MARKERS: frozenset[str] = frozenset({";", ":", "!", "|", "||", "=", "%", "#"})

#: Diphthongs whose second element visibly changes the mouth: the glide's target class.
DIPHTHONG_END: dict[str, str] = {
    "aɪ": "E", "aʊ": "U", "oʊ": "U", "əʊ": "U", "ɔɪ": "E", "ɔø": "E", "ɔʏ": "E",
}
