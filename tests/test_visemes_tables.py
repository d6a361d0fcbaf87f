"""Phoneme tables: every symbol espeak-ng emits maps to a viseme; lookups are right."""

from __future__ import annotations

import logging

import pytest

from avatarkit.errors import AvatarkitError
from avatarkit.tts.espeak_lib import engine
from avatarkit.visemes import phonemes as ph
from avatarkit.visemes.classes import VISEME_CLASSES
from avatarkit.visemes.phoneme_tables import ARPABET, ESPEAK, IPA

# Broad on purpose: every language's vowels, nasals, rhotics, affricates and clusters.
SENTENCES = {
    "en-us": ["The quick brown fox jumps over the lazy dog.",
              "Thirty-three thousand judges measured the pleasure of the azure chair.",
              "Why are our hours, ears and tours so weird?"],
    "en-gb": ["Could you possibly hear the bird near the shore?",
              "The boy's joyful voice rang out across the clear air."],
    "de": ["Zwölf Boxkämpfer jagen Viktor quer über den großen Sylter Deich.",
           "Ich möchte heute Pfannkuchen mit Äpfeln essen.", "Euer Haus ist schön.",
           # English loanwords: espeak-ng speaks them by English rules between "(en)" and
           # "(de)" markers, which are no sounds
           "Das Team-Meeting im Office ist okay."],
    "fr": ["Un œuf brûlé, c'est génial; le vin blanc est bon.",
           "Les enfants jouent dans la rue près du pont."],
    "es": ["El perro corre rápido por la calle; señor, ¿quiere agua?",
           "Mañana llueve en Barcelona y Zaragoza."],
    "it": ["Gli gnocchi sono buoni, zio; la pizza è pronta.",
           "Il bambino gioca con la palla nel giardino."],
}


@pytest.mark.parametrize("lang", sorted(SENTENCES))
def test_every_symbol_espeak_emits_is_mapped(lang: str) -> None:
    eng = engine()
    ipa, mnemonics = set(), set()
    for sentence in SENTENCES[lang]:
        ipa |= {p.symbol for p in eng.synthesize(sentence, lang).phonemes}
        ipa |= {s for w in eng.text_to_phonemes(sentence, lang) for s in w}
        mnemonics |= {s for w in eng.text_to_phonemes(sentence, lang, ipa=False) for s in w}
    assert len(ipa) > 15 and len(mnemonics) > 15  # the set really is broad
    assert ph.unknown_symbols(ipa, "ipa") == set()
    assert ph.unknown_symbols(mnemonics, "espeak") == set()


def test_language_switch_markers_are_no_phonemes() -> None:
    """A German sentence with English words: no marker in the phonemes, and the synthesised
    timing still covers the whole utterance without a gap."""
    eng = engine()
    sentence = "Ein Team-Meeting im Office."
    words = eng.text_to_phonemes(sentence, "de")
    symbols = [s for w in words for s in w]
    assert not [s for s in symbols if "(" in s], symbols
    assert ["t", "ˈiː", "m"] == [s for s in words[1][:3]]  # "Team" by English rules
    timed = eng.synthesize(sentence, "de").phonemes
    assert not [p for p in timed if "(" in p.symbol]
    assert all(a.end_ms == b.start_ms for a, b in zip(timed, timed[1:], strict=False))


@pytest.mark.parametrize(
    ("symbol", "alphabet", "viseme"),
    [
        ("p", "ipa", "MBP"), ("ˈm", "ipa", "MBP"), ("f", "ipa", "FV"), ("θ", "ipa", "TH"),
        ("ð", "ipa", "TH"), ("ʃ", "ipa", "CH"), ("tʃ", "ipa", "CH"), ("w", "ipa", "WQ"),
        ("ɹ", "ipa", "R"), ("l", "ipa", "L"), ("ˈɑː", "ipa", "AI"), ("ˈuː", "ipa", "U"),
        ("ɔ̃", "ipa", "O"), ("iː", "ipa", "E"), ("_", "ipa", "Rest"),
        ("AA1", "arpabet", "AI"), ("B", "arpabet", "MBP"), ("UW0", "arpabet", "U"),
        ("DH", "arpabet", "TH"), ("JH", "arpabet", "CH"), ("sil", "arpabet", "Rest"),
        ("'u:", "espeak", "U"), ("tS", "espeak", "CH"), ("T", "espeak", "TH"),
        ("b", "espeak", "MBP"), ("_:", "espeak", "Rest"),
    ],
)
def test_lookup(symbol: str, alphabet: ph.Alphabet, viseme: str) -> None:
    assert ph.phoneme_to_viseme(symbol, alphabet) == viseme


def test_diphthongs_have_a_second_target() -> None:
    assert ph.lookup("ˈaɪ").info.viseme == "AI" and ph.lookup("ˈaɪ").end_viseme == "E"
    assert ph.lookup("oʊ").end_viseme == "U"
    assert ph.lookup("ɔːɹ").end_viseme == "R"
    segs = ph.to_segments([ph.TimedPhoneme("aɪ", 100.0, 200.0)])
    assert [(s.viseme, s.start_ms, s.end_ms) for s in segs] == [
        ("AI", 100.0, 160.0), ("E", 160.0, 200.0)
    ]


def test_all_tables_map_to_canonical_classes() -> None:
    assert {i.viseme for i in IPA.values()} == set(VISEME_CLASSES)
    for table, alphabet in ((ARPABET, "arpabet"), (ESPEAK, "espeak")):
        assert ph.unknown_symbols(table, alphabet) == set()


def test_unknown_symbol_warns_once_and_rests(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert ph.phoneme_to_viseme("☃") == "Rest"
        assert ph.phoneme_to_viseme("☃") == "Rest"
    assert sum("☃" in r.getMessage() for r in caplog.records) == 1


def test_unknown_alphabet_is_an_error() -> None:
    with pytest.raises(AvatarkitError, match="alphabet"):
        ph.phoneme_to_viseme("p", "sampa")  # type: ignore[arg-type]
