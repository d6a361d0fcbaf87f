"""Pauses from the signal: where the level stays far below the speech around it.

Forced alignment without optional silences stretches the phones next to a pause over it;
`insert_pauses` cuts every phone back where the audio is quiet for long enough, so the
mouth rests in the pauses as it does with recognition.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from avatarkit.listen.features import N_BANDS
from avatarkit.listen.lips import FRAME_CENTRE_MS, frame_index
from avatarkit.visemes.phonemes import TimedPhoneme

#: A frame is quiet this far below the speech level (the 95th percentile of frame levels), dB.
QUIET_BELOW_SPEECH_DB = 30.0
#: ... or below this absolute level, dB full scale.
QUIET_ABSOLUTE_DB = -60.0
#: Shortest quiet stretch that is a pause rather than a stop closure, ms.
MIN_PAUSE_MS = 160.0


def _loud_level(total: np.ndarray) -> float:
    """The level of speech in a recording, dB: its 95th percentile of frame levels, or when
    speech is under a twentieth of it (a word in a minute of silence) 10 dB under its 99th."""
    p95, p99 = np.percentile(total, [95, 99])
    return float(max(p95, p99 - 10.0))


def quiet_spans(levels: np.ndarray) -> list[tuple[float, float]]:
    """[(start_ms, end_ms)] of quiet stretches at least MIN_PAUSE_MS long."""
    if not len(levels):
        return []
    total = levels[:, N_BANDS]
    speech = _loud_level(total)
    quiet = (total < speech - QUIET_BELOW_SPEECH_DB) | (total < QUIET_ABSOLUTE_DB)
    spans: list[tuple[float, float]] = []
    i = 0
    while i < len(quiet):
        if not quiet[i]:
            i += 1
            continue
        j = i
        while j < len(quiet) and quiet[j]:
            j += 1
        start = i * 10.0 + FRAME_CENTRE_MS - 5.0
        end = (j - 1) * 10.0 + FRAME_CENTRE_MS + 5.0
        if end - start >= MIN_PAUSE_MS:
            spans.append((max(0.0, start), end))
        i = j
    return spans


#: A frame sounds like speech within this many dB of the speech level.
SPEECH_LEVEL_DB = 10.0


def _frames(levels: np.ndarray, start_ms: float, end_ms: float) -> np.ndarray:
    """The whole-band levels of the frames centred in [start_ms, end_ms)."""
    return levels[frame_index(start_ms):frame_index(end_ms), N_BANDS]


def speech_level(levels: np.ndarray, spans: Sequence[tuple[float, float]]) -> float:
    """The level of speech (dB, the 95th percentile of frame levels) inside `spans`, the
    phones of a transcript's words; over the whole recording when they hold no frame."""
    inside = [_frames(levels, a, b) for a, b in spans]
    frames = np.concatenate(inside) if inside else levels[:0, N_BANDS]
    if len(frames):
        return float(np.percentile(frames, 95))
    return _loud_level(levels[:, N_BANDS]) if len(levels) else QUIET_ABSOLUTE_DB


def speech_ms(levels: np.ndarray, start_ms: float, end_ms: float, speech_db: float) -> float:
    """How long the level between two times stays near the speech level `speech_db` (ms):
    what tells untranscribed speech from a pause over a noise floor (15-20 dB down on the
    dev speech). Near-digital silence is never speech, however quiet the speech is."""
    span = _frames(levels, start_ms, end_ms)
    near = (span >= speech_db - SPEECH_LEVEL_DB) & (span >= QUIET_ABSOLUTE_DB)
    return 10.0 * float(np.count_nonzero(near))


def insert_pauses(phones: Sequence[TimedPhoneme], spans: Sequence[tuple[float, float]]
                  ) -> list[TimedPhoneme]:
    """`phones` with every quiet span cut out of them and filled by a pause."""
    out: list[TimedPhoneme] = []
    for p in phones:
        pieces = [(p.start_ms, p.end_ms)]
        for a, b in spans:
            nxt = []
            for s, e in pieces:
                if b <= s or a >= e:
                    nxt.append((s, e))
                    continue
                if a > s:
                    nxt.append((s, a))
                if b < e:
                    nxt.append((b, e))
            pieces = nxt
        out.extend(TimedPhoneme(p.symbol, s, e) for s, e in pieces if e > s)
    for a, b in spans:
        out.append(TimedPhoneme("_", a, b))
    out.sort(key=lambda q: q.start_ms)
    merged: list[TimedPhoneme] = []
    for q in out:
        joins = merged and q.symbol == "_" == merged[-1].symbol
        if joins and q.start_ms <= merged[-1].end_ms:
            merged[-1] = TimedPhoneme("_", merged[-1].start_ms, max(merged[-1].end_ms, q.end_ms))
        elif merged and q.start_ms < merged[-1].end_ms:
            q = TimedPhoneme(q.symbol, merged[-1].end_ms, q.end_ms)
            if q.end_ms > q.start_ms:
                merged.append(q)
        else:
            merged.append(q)
    return merged
