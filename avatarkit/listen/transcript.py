"""A transcript that arrives while the audio streams (OpenAI Realtime transcript deltas):
the recognised phones keep their timing, the transcript corrects their identity.

The transcript's phones (espeak-ng G2P) and the recogniser's phones are matched by a small
edit-distance alignment over the expected phones not yet used; a recognised phone matched
to an expected one takes its symbol. The cost of a substitution is lower between phones that
look alike on the lips (same viseme class), so a /v/ heard where the text says /b/ becomes
the closure, while a stretch the transcript does not cover (it lags, or the model skipped a
word) stays as heard. Batch use with a known text goes through forced alignment instead
(`align.py`); this is the streaming counterpart.
"""

from __future__ import annotations

from collections.abc import Sequence

from avatarkit.errors import AvatarkitError
from avatarkit.visemes.phonemes import TimedPhoneme, normalize_ipa, phoneme_to_viseme

#: Cost of skipping a recognised or an expected phone in the match.
GAP = 1.0
#: Cost of matching phones of the same viseme class / the same place of articulation /
#: anything else. A match cheaper than OTHER_PLACE relabels the heard phone.
SAME_CLASS, SAME_PLACE, OTHER_PLACE = 0.3, 0.6, 1.2
#: Places of articulation the recogniser confuses within (labials above all).
_PLACES = (
    frozenset("pbmfvwʍ"), frozenset({"t", "d", "n", "s", "z", "θ", "ð", "l", "ɹ", "ʃ", "ʒ",
                                     "tʃ", "dʒ", "ɾ"}), frozenset("kgŋhjx"),
)
#: How far past the last used expected phone the match may look, in phones per heard phone.
SPAN_PER_PHONE = 2


class TranscriptMatcher:
    """Expected phones from transcript deltas, matched to recognised phones as they come."""

    def __init__(self, lang: str = "en-us") -> None:
        self.lang = lang
        self._text = ""
        self._expected: list[str] = []  # IPA units of the complete words so far
        self._words_done = 0
        self._used = 0  # expected phones already matched or passed

    @property
    def active(self) -> bool:
        return bool(self._text.strip())

    def add(self, text: str) -> None:
        """Append a transcript delta (words may be split across deltas)."""
        if not isinstance(text, str):
            raise AvatarkitError("transcript text must be a string")
        self._text += text

    def _update_expected(self, final: bool) -> None:
        from avatarkit.listen.align import transcript_words
        from avatarkit.visemes.g2p import espeak_lexicon

        words = transcript_words(self._text)
        complete = words if final or self._text[-1:].isspace() else words[:-1]
        if len(complete) <= self._words_done:
            return
        lexicon = espeak_lexicon(self.lang)
        for word in complete[self._words_done:]:
            self._expected.extend(normalize_ipa(p) for p in lexicon(word) if normalize_ipa(p))
        self._words_done = len(complete)

    def relabel(self, phones: Sequence[TimedPhoneme], *, final: bool) -> list[TimedPhoneme]:
        """`phones` with symbols corrected from the transcript where they match it."""
        phones = list(phones)
        if not self.active or not phones:
            return phones
        self._update_expected(final)
        heard = [i for i, p in enumerate(phones) if p.symbol != "_"]
        window = self._expected[self._used:self._used + SPAN_PER_PHONE * len(heard) + 4]
        if not heard or not window:
            return phones
        pairs = _match([phones[i].symbol for i in heard], window)
        out = list(phones)
        last = -1
        for h, e in pairs:
            p = phones[heard[h]]
            out[heard[h]] = TimedPhoneme(window[e], p.start_ms, p.end_ms)
            last = e
        self._used += last + 1
        return out


def _cost(a: str, b: str) -> float:
    a = normalize_ipa(a)
    if a == b:
        return 0.0
    if phoneme_to_viseme(a) == phoneme_to_viseme(b):
        return SAME_CLASS
    if any(a in place and b in place for place in _PLACES):
        return SAME_PLACE
    return OTHER_PLACE


def _match(heard: list[str], expected: list[str]) -> list[tuple[int, int]]:
    """Pairs (heard index, expected index) of the cheapest alignment; expected phones past
    the last match are free to skip (the transcript may run ahead of the audio)."""
    n, m = len(heard), len(expected)
    inf = float("inf")
    cost = [[inf] * (m + 1) for _ in range(n + 1)]
    back: list[list[int]] = [[0] * (m + 1) for _ in range(n + 1)]
    cost[0][0] = 0.0
    for j in range(1, m + 1):
        cost[0][j], back[0][j] = j * GAP, 2
    for i in range(1, n + 1):
        cost[i][0], back[i][0] = i * GAP, 1
        for j in range(1, m + 1):
            options = (
                cost[i - 1][j - 1] + _cost(heard[i - 1], expected[j - 1]),
                cost[i - 1][j] + GAP,
                cost[i][j - 1] + GAP,
            )
            k = min(range(3), key=options.__getitem__)
            cost[i][j], back[i][j] = options[k], k
    j = min(range(m + 1), key=lambda jj: cost[n][jj])
    i, pairs = n, []
    while i > 0 and j > 0:
        k = back[i][j]
        if k == 0:
            if _cost(heard[i - 1], expected[j - 1]) < OTHER_PLACE:
                pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif k == 1:
            i -= 1
        else:
            j -= 1
    return pairs[::-1]
