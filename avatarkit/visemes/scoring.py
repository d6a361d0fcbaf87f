"""Accuracy measures against espeak-ng's own timing (used by tests and benchmarks).

Ground truth is the viseme of the phoneme espeak-ng is actually producing at each moment.
We score (a) timelines built from those exact phonemes, and (b) timelines rebuilt from a
character alignment such as ElevenLabs sends, derived from espeak-ng's word timings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from avatarkit.tts.alignment import AlignmentChunk, CharAlignment
from avatarkit.tts.espeak_lib import Synthesis
from avatarkit.visemes.coarticulation import Frame
from avatarkit.visemes.phonemes import Segment, TimedPhoneme, normalize_ipa, to_segments

CLOSURE_SYMBOLS = frozenset({"p", "b", "m"})


@dataclass(frozen=True)
class Score:
    """Scores of one timeline against the ground truth."""

    frames: int
    agreeing_frames: int
    closures: int
    closures_hit: int
    onsets: int
    onset_error_ms_sum: float

    @property
    def frame_agreement(self) -> float:
        """Share of frames whose dominant viseme is the one espeak-ng is articulating."""
        return self.agreeing_frames / self.frames if self.frames else 1.0

    @property
    def closure_hit_rate(self) -> float:
        """Share of p/b/m reaching MBP ≥ 0.8 within ±30 ms of their midpoint."""
        return self.closures_hit / self.closures if self.closures else 1.0

    @property
    def mean_onset_error_ms(self) -> float:
        """Mean distance between a true viseme change and the matching predicted change."""
        return self.onset_error_ms_sum / self.onsets if self.onsets else 0.0

    def __add__(self, other: Score) -> Score:
        return Score(*(a + b for a, b in zip(self._tuple(), other._tuple(), strict=True)))

    def _tuple(self) -> tuple[float, ...]:
        return (self.frames, self.agreeing_frames, self.closures, self.closures_hit,
                self.onsets, self.onset_error_ms_sum)


def truth_phonemes(synthesis: Synthesis) -> list[TimedPhoneme]:
    """espeak-ng's phoneme events as timed phonemes."""
    return list(synthesis.phonemes)


def _label_at(segments: Sequence[Segment], t: float, j: int) -> tuple[str, int]:
    while j + 1 < len(segments) and segments[j].end_ms <= t:
        j += 1
    if segments and segments[j].start_ms <= t < segments[j].end_ms:
        return segments[j].viseme, j
    return "Rest", j


def score(
    frames: Sequence[Frame],
    truth: Sequence[TimedPhoneme],
    *,
    closure_window_ms: float = 30.0,
    closure_weight: float = 0.8,
    onset_window_ms: float = 100.0,
) -> Score:
    """Frame agreement, lip-closure hits and onset error of `frames` against `truth`."""
    segments = to_segments(truth)
    agree, j = 0, 0
    predicted: list[str] = []
    for f in frames:
        label, j = _label_at(segments, f.pts_ms, j)
        dom = f.dominant()
        predicted.append(dom)
        agree += dom == label
    # lip closures
    closures = hits = 0
    k = 0
    for p in truth:
        if normalize_ipa(p.symbol) not in CLOSURE_SYMBOLS:
            continue
        closures += 1
        mid = (p.start_ms + p.end_ms) / 2
        while k < len(frames) and frames[k].pts_ms < mid - closure_window_ms:
            k += 1
        i = k
        while i < len(frames) and frames[i].pts_ms <= mid + closure_window_ms:
            if frames[i].weights.get("MBP", 0.0) >= closure_weight:
                hits += 1
                break
            i += 1
    # onsets: each true change of class vs the nearest predicted change to the same class
    changes = [(f.pts_ms, predicted[i]) for i, f in enumerate(frames)
               if i and predicted[i] != predicted[i - 1]]
    onsets, err = 0, 0.0
    for a, b in zip(segments, segments[1:], strict=False):
        if a.viseme == b.viseme:
            continue
        near = [abs(t - b.start_ms) for t, v in changes
                if v == b.viseme and abs(t - b.start_ms) <= onset_window_ms]
        if near:
            onsets += 1
            err += min(near)
    return Score(len(frames), agree, closures, hits, onsets, err)


def alignment_from_synthesis(text: str, synthesis: Synthesis) -> list[AlignmentChunk]:
    """An ElevenLabs-like character alignment from espeak-ng's word timings.

    Each word's characters share its span (onset to the end of its last phoneme) evenly;
    spaces and punctuation between words share the gap up to the next word.
    """
    spans: list[tuple[int, int, float]] = []
    for w in synthesis.words:
        if spans and w.text_start < spans[-1][0] + spans[-1][1]:
            continue  # espeak repeats a word event for each part of an expanded number
        spans.append((w.text_start, w.text_length, w.start_ms))
    ends: list[float] = []
    for i, (_, _, start) in enumerate(spans):
        nxt = spans[i + 1][2] if i + 1 < len(spans) else synthesis.duration_ms
        inside = [p for p in synthesis.phonemes if start <= p.start_ms < nxt and p.symbol != "_"]
        ends.append(inside[-1].end_ms if inside else nxt)
    chars: list[str] = []
    starts: list[float] = []
    durs: list[float] = []

    def spread(segment: str, t0: float, t1: float) -> None:
        if not segment:
            return
        step = max(t1 - t0, 0.0) / len(segment)
        for i, ch in enumerate(segment):
            chars.append(ch)
            starts.append(round(t0 + i * step, 1))
            durs.append(round(step, 1))

    cursor, t = 0, 0.0
    for (pos, length, start), end in zip(spans, ends, strict=True):
        spread(text[cursor:pos], t, start)
        spread(text[pos : pos + length], start, end)
        cursor, t = pos + length, end
    spread(text[cursor:], t, synthesis.duration_ms)
    return [AlignmentChunk(CharAlignment(tuple(chars), tuple(starts), tuple(durs)))]


#: Vowels at least this long are where a closure must never appear (`false_closures`), ms.
LONG_VOWEL_MS = 100.0
#: A closure shown (a run of frames at the closure weight) this far from every labelled
#: p/b/m is stray (`stray_closures`), ms.
STRAY_MS = 60.0
_LABIODENTAL = frozenset({"f", "v"})


@dataclass(frozen=True)
class LipScore:
    """Closure, false-closure and lip-teeth measures of one timeline against phone labels."""

    closures: int
    closures_hit: int
    long_vowels: int
    false_closures: int
    labiodentals: int
    labiodentals_hit: int
    #: Closures shown (runs of frames at the closure weight), and those more than STRAY_MS
    #: from every p/b/m: lips shutting on other consonants, which the long-vowel count misses.
    closures_shown: int
    stray_closures: int

    @property
    def closure_hit_rate(self) -> float:
        return self.closures_hit / self.closures if self.closures else 1.0

    @property
    def false_closure_rate(self) -> float:
        """Share of long vowels whose middle half shows MBP >= 0.8 on some frame."""
        return self.false_closures / self.long_vowels if self.long_vowels else 0.0

    @property
    def labiodental_hit_rate(self) -> float:
        """Share of f/v reaching FV >= 0.5 within +-30 ms of their midpoint."""
        return self.labiodentals_hit / self.labiodentals if self.labiodentals else 1.0

    def __add__(self, other: LipScore) -> LipScore:
        return LipScore(*(getattr(self, f) + getattr(other, f) for f in self.__dataclass_fields__))


def _any_frame(frames: Sequence[Frame], t0: float, t1: float, cls: str, weight: float) -> bool:
    return any(f.weights.get(cls, 0.0) >= weight for f in frames if t0 <= f.pts_ms <= t1)


def lip_score(
    frames: Sequence[Frame],
    truth: Sequence[TimedPhoneme],
    *,
    window_ms: float = 30.0,
    closure_weight: float = 0.8,
    labiodental_weight: float = 0.5,
) -> LipScore:
    """What a viewer sees wrong first: missed closures, closures inside long vowels, and
    missed lip-teeth contacts. `truth` are phone labels of the audio (IPA)."""
    from avatarkit.visemes.phonemes import lookup

    counts = dict.fromkeys(LipScore.__dataclass_fields__, 0)
    for p in truth:
        symbol, mid = normalize_ipa(p.symbol), (p.start_ms + p.end_ms) / 2
        if symbol in CLOSURE_SYMBOLS:
            counts["closures"] += 1
            counts["closures_hit"] += _any_frame(
                frames, mid - window_ms, mid + window_ms, "MBP", closure_weight)
        elif symbol in _LABIODENTAL:
            counts["labiodentals"] += 1
            counts["labiodentals_hit"] += _any_frame(
                frames, mid - window_ms, mid + window_ms, "FV", labiodental_weight)
        elif lookup(p.symbol).info.manner == "vowel" and p.end_ms - p.start_ms >= LONG_VOWEL_MS:
            quarter = (p.end_ms - p.start_ms) / 4
            counts["long_vowels"] += 1
            counts["false_closures"] += _any_frame(
                frames, p.start_ms + quarter, p.end_ms - quarter, "MBP", closure_weight)
    labials = [(p.start_ms, p.end_ms) for p in truth
               if normalize_ipa(p.symbol) in CLOSURE_SYMBOLS]
    for a, b in _closure_runs(frames, closure_weight):
        counts["closures_shown"] += 1
        counts["stray_closures"] += not any(s - STRAY_MS <= b and a <= e + STRAY_MS
                                            for s, e in labials)
    return LipScore(**counts)


def _closure_runs(frames: Sequence[Frame], weight: float) -> list[tuple[float, float]]:
    """(first, last pts_ms) of each run of consecutive frames with MBP >= `weight`."""
    runs: list[tuple[float, float]] = []
    shut = False
    for f in frames:
        on = f.weights.get("MBP", 0.0) >= weight
        if on and not shut:
            runs.append((f.pts_ms, f.pts_ms))
        elif on:
            runs[-1] = (runs[-1][0], f.pts_ms)
        shut = on
    return runs
