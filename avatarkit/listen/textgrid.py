"""Phone labels from a Praat TextGrid (what forced aligners such as MFA write).

Used to score audio-driven timelines against real speech; labels are ARPAbet (stress digits
allowed) or IPA; an empty interval is silence.
"""

from __future__ import annotations

import re
from pathlib import Path

from avatarkit.errors import AvatarkitError
from avatarkit.visemes.phoneme_tables import ARPABET
from avatarkit.visemes.phonemes import TimedPhoneme


def _values(text: str) -> list[str]:
    """Every number and quoted string of a TextGrid, in order (short or long format)."""
    return re.findall(r'"((?:[^"]|"")*)"|(?<![\w.])(-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?\d+)?)', text)


def read_phones(path: str | Path, tier: str = "phones") -> list[TimedPhoneme]:
    """The intervals of `tier` as IPA phones on a ms clock (silence as `_`)."""
    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AvatarkitError(f"could not read TextGrid {path}: {exc}") from exc
    tokens = [(s if s or not n else None, n) for s, n in _values(text)]
    names = [i for i, (s, _) in enumerate(tokens) if s == tier]
    if not names:
        raise AvatarkitError(f"{path.name} has no tier named {tier!r}")
    i = names[0] + 1
    numbers: list[float] = []
    while len(numbers) < 3 and i < len(tokens):  # xmin, xmax, interval count
        if tokens[i][1]:
            numbers.append(float(tokens[i][1]))
        i += 1
    phones: list[TimedPhoneme] = []
    for _ in range(int(numbers[2])):
        got: list[float] = []
        while len(got) < 2:
            got.append(float(tokens[i][1]))
            i += 1
        label = tokens[i][0] or ""
        i += 1
        symbol = re.sub(r"\d", "", label.strip()).upper()
        ipa = ARPABET.get(symbol, "_") if symbol else "_"
        phones.append(TimedPhoneme(ipa, got[0] * 1000.0, got[1] * 1000.0))
    return phones
