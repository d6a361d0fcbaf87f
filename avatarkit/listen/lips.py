"""What the signal itself shows about the lips, used to correct the recognised phones.

The phone recogniser knows *that* a labial was said far better than *how*: in real speech it
often hears the closure of a /p b m/ as a /v/ or /f/ (same place, wrong manner) or as a short
silence. The signal tells the manner: a closure is a drop of the whole spectrum against the
speech around it (a stop gap, or the murmur of a nasal), while /f v/ keep their frication.

    levels (per 10 ms: band levels + total level)  ->  dips against the context around them
    recognised f/v/w over a dip of the whole level, or over a nasal murmur (the formant band
      falls away, the low band holds), with no frication above the noise floor
                                                                 ->  closure (p) over the dip
    a short pause inside speech next to a labial                 ->  closure (p)
    a recognised /p b/ with neither a dip nor a murmur in its span
      (the voice goes on at full level: a guess, not a closure)  ->  open release (h)
    the nasal murmur that ends a filler ("um") or a closure,
      heard as the start of a pause                              ->  closure (p)
    a "phone" heard in near-digital silence                      ->  pause

Only the frames of the dip become the closure, so a closure never spreads into the vowel
next to it. `LipReader` works on a stream: it keeps the levels of the audio heard so far and
holds back phones until the context they need (`CONTEXT_MS` past their end) has arrived.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from avatarkit.listen.features import HOP, N_BANDS, WINDOW, band_centres_hz, band_levels
from avatarkit.listen.options import LipOptions
from avatarkit.listen.pcm import RATE
from avatarkit.listen.phones import FILLER
from avatarkit.visemes.phonemes import TimedPhoneme, lookup, normalize_ipa

#: A dip is measured against the loudest frame from this many frames (10 ms each) before...
PAST_CONTEXT = 10
#: ...to this many after. The future side is short because it is delay in a live stream: a
#: closure's release (the level coming back) is seen within ~40 ms of its middle (10 frames
#: after found one closure more in 60 on the real-speech sets, at 60 ms more delay).
FUTURE_CONTEXT = 4
#: Audio needed past a phone's end before it can be judged, ms.
CONTEXT_MS = FUTURE_CONTEXT * 10.0 + WINDOW * 1000.0 / RATE
#: Frame i covers the 25 ms from sample 160 i: its centre on the clock, ms.
FRAME_CENTRE_MS = WINDOW / 2 * 1000.0 / RATE
#: Bands above ~2.5 kHz (frication lives there).
UPPER_BANDS = slice(14, N_BANDS)

#: A nasal murmur keeps the low band (voicing through the nose) and loses the vowel's
#: formant band: bands below / between these frequencies, Hz.
_LOW_BANDS = band_centres_hz() < 450.0
_MID_BANDS = (band_centres_hz() >= 500.0) & (band_centres_hz() < 2500.0)
#: The floor a murmur must stand above is the quietest tenth of this many recent frames.
FLOOR_FRAMES = 300
#: Dip thresholds follow the recording's range only after this many frames of it.
RANGE_AFTER_FRAMES = 100
#: Frames at the start of a pause that may still be the transition into its murmur.
MURMUR_LEAD = 2

#: Labials the recogniser hears in place of a closure (same place, wrong manner).
_CLOSURE_LOOKALIKES = frozenset({"f", "v", "w"})
_LABIAL = frozenset({"p", "b", "m", "f", "v", "w"})
_BILABIAL = frozenset({"p", "b", "m"})
CLOSURE = "p"
#: Recognised bilabial stops: closed lips only where the signal shows the closure (an /m/ is
#: left alone: opening the unseen ones cost closures on the real sets).
_BILABIAL_STOPS = frozenset({"p", "b"})
#: What a recognised /p b/ without a dip or murmur in its span becomes: an open release.
OPEN_RELEASE = "h"


def _is_vowel(symbol: str) -> bool:
    """Whether an IPA phone is a vowel (fillers included)."""
    return symbol != "_" and lookup(symbol).info.manner == "vowel"


def _rolling_max(x: np.ndarray, past: int, future: int) -> np.ndarray:
    """Maximum over [i - past, i + future] (clipped at the ends).

    Shifted maxima in place: a live stream calls this for a few frames per 20 ms chunk, where
    padding and window views cost more than the work (and scipy.ndimage's import alone is
    ~0.45 s, a sixth of a `visemes --audio` run).
    """
    out = x.copy()
    for k in range(1, min(past, len(x) - 1) + 1):
        np.maximum(out[k:], x[:-k], out=out[k:])
    for k in range(1, min(future, len(x) - 1) + 1):
        np.maximum(out[:-k], x[k:], out=out[:-k])
    return out


def _dip(level: np.ndarray) -> np.ndarray:
    """Per frame: dB below the loudest frame of its context (PAST_CONTEXT before,
    FUTURE_CONTEXT after)."""
    return _rolling_max(level, PAST_CONTEXT, FUTURE_CONTEXT) - level


def _murmuring(levels: np.ndarray, o: LipOptions, scale: np.ndarray | float = 1.0
               ) -> np.ndarray:
    """Per frame: a nasal murmur, the formant band falling away against the context while
    the low band (voicing through the nose) holds, so the whole level hardly dips.
    `scale` shrinks the dB thresholds where the recording has less range (`_range_scale`)."""
    bands = levels[:, :N_BANDS]
    mid_dip = _dip(bands[:, _MID_BANDS].max(axis=1))
    low_dip = _dip(bands[:, _LOW_BANDS].max(axis=1))
    return ((mid_dip >= o.murmur_mid_dip_db * scale)
            & (mid_dip - low_dip >= o.murmur_tilt_db * scale))


def _floor_and_speech(total: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Per frame in [start, stop): (the recording's noise floor, its loud speech level), the
    10th and 90th percentile of the FLOOR_FRAMES frames up to and including it (a stream
    has them: chunking does not change them)."""
    out = np.empty((stop - start, 2))
    full = max(start, FLOOR_FRAMES - 1)  # frames from here on have a whole window behind
    for i in range(start, min(full, stop)):  # the first 3 s of a recording
        k = (i // 10, i - i // 10)
        out[i - start] = np.partition(total[: i + 1], k)[list(k)]
    if stop > full:
        rows = np.lib.stride_tricks.sliding_window_view(
            total[full - FLOOR_FRAMES + 1: stop], FLOOR_FRAMES)
        k = ((FLOOR_FRAMES - 1) // 10, FLOOR_FRAMES - 1 - (FLOOR_FRAMES - 1) // 10)
        out[full - start:] = np.partition(rows, k, axis=1)[:, list(k)]
    return out


def _range_scale(total: np.ndarray, start: int, stop: int, o: LipOptions) -> np.ndarray:
    """Per frame in [start, stop): how far the recording's loud speech stands above its noise
    floor, as a fraction of a clean recording's range (`LipOptions.range_db`; at most 1).

    A closure drops the level toward the floor: noise raises the floor, so the same closure
    shows a smaller dip, and each dip threshold shrinks in proportion. Measured over seconds,
    not per phone: a quiet stretch of a clean recording keeps the full thresholds."""
    floor, speech = _floor_and_speech(total, start, stop).T
    scale = np.clip((speech - floor) / o.range_db, o.min_range_scale, 1.0)
    # the range is unknown until the recording has been heard for a while
    scale[: max(0, RANGE_AFTER_FRAMES - start)] = 1.0
    return scale


def frame_index(t_ms: float) -> int:
    """The frame whose centre is nearest at or after `t_ms`."""
    return max(0, int(np.ceil((t_ms - FRAME_CENTRE_MS) / 10.0 - 1e-9)))


class LipReader:
    """Streaming level analysis + the phone corrections it supports."""

    def __init__(self, options: LipOptions | None = None) -> None:
        self.options = options or LipOptions()
        self._tail = np.zeros(0)  # samples not yet covered by a whole frame
        self._levels_buf = np.zeros((0, N_BANDS + 1))  # grows by doubling: cheap appends
        self._n_levels = 0
        self._held: list[TimedPhoneme] = []
        #: The run of one symbol the last phone belongs to: (symbol, start, symbol before).
        self._run: tuple[str, float, str] = ("", 0.0, "_")
        self._run_end = 0.0
        self._closure_until = -1e9  # end of the last closure made, ms
        self._closure_from = -1e9  # start of the closure that ends there, ms

    @property
    def levels(self) -> np.ndarray:
        """(frames, N_BANDS + 1) band levels and total level of the audio so far, dB."""
        return self._levels_buf[: self._n_levels]

    def push(self, samples: np.ndarray) -> None:
        """Feed 16 kHz samples (the same the recogniser hears)."""
        if not len(samples):
            return
        x = np.concatenate([self._tail, samples])
        n = (len(x) - WINDOW) // HOP + 1 if len(x) >= WINDOW else 0
        if n > 0:
            self._append_levels(band_levels(x[: (n - 1) * HOP + WINDOW]))
            self._tail = x[n * HOP:]
        else:
            self._tail = x

    def _append_levels(self, rows: np.ndarray) -> None:
        need = self._n_levels + len(rows)
        if need > len(self._levels_buf):
            grown = np.zeros((max(need, 2 * len(self._levels_buf), 256), N_BANDS + 1))
            grown[: self._n_levels] = self._levels_buf[: self._n_levels]
            self._levels_buf = grown
        self._levels_buf[self._n_levels: need] = rows
        self._n_levels = need

    def refine(self, phones: Sequence[TimedPhoneme], *, final: bool,
               keep_stops: bool = False) -> list[TimedPhoneme]:
        """Corrected phones, in order; those without enough context yet are held back.

        `keep_stops`: a transcript will relabel these phones (`TranscriptMatcher`), so a
        recognised /p b/ stays as heard even without a closure in the signal: the text, not
        the recogniser's guess, then says whether it is a stop (as forced alignment does).
        """
        self._held.extend(phones)
        if not self._held:
            return []
        heard_ms = (len(self.levels) - 1) * 10.0 + FRAME_CENTRE_MS
        ready_until = float("inf") if final else heard_ms - FUTURE_CONTEXT * 10.0
        ready: list[TimedPhoneme] = []
        while self._held and self._held[0].end_ms <= ready_until:
            ready.append(self._held.pop(0))
        if not ready:
            return []
        context = self._held[:1]
        return self._correct(ready, context, keep_stops)

    def _correct(self, phones: list[TimedPhoneme], after: list[TimedPhoneme],
                 keep_stops: bool = False) -> list[TimedPhoneme]:
        o = self.options
        n = len(self.levels)
        if n == 0:
            return phones
        # only the frames these phones need (a live stream would otherwise redo the whole
        # history on every chunk); frames before `base` are never looked at
        base = max(0, frame_index(phones[0].start_ms) - PAST_CONTEXT)
        end = min(n, frame_index(phones[-1].end_ms) + FUTURE_CONTEXT + 1)
        levels = self.levels[base:end]
        total = levels[:, N_BANDS]
        upper = levels[:, UPPER_BANDS].max(axis=1)
        dip = _dip(total)

        @functools.cache
        def dipped() -> np.ndarray:
            """Per frame: a level dip (its threshold scaled to the recording's range)."""
            return dip >= o.dip_db * scale()

        @functools.cache
        def scale() -> np.ndarray:
            return _range_scale(self.levels[:, N_BANDS], base, end, o)

        @functools.cache
        def evidence() -> tuple[np.ndarray, np.ndarray]:
            """(nasal murmur, murmur or dip) per frame: made only when a phone needs it."""
            murmuring = _murmuring(levels, o, scale())
            return murmuring, dipped() | murmuring

        def opens(q: TimedPhoneme) -> bool:
            """A recognised /p b/ heard over loud, unbroken voice: no dip and no murmur in its
            frames (a stream's piece too short to hold a frame: the frame it falls in)."""
            if keep_stops or normalize_ipa(q.symbol) not in _BILABIAL_STOPS:
                return False
            q0 = frame_index(q.start_ms) - base
            seen = evidence()[1][q0:max(min(frame_index(q.end_ms) - base, len(total)), q0 + 1)]
            return bool(len(seen)) and not seen.any()

        out: list[TimedPhoneme] = []
        for j, p in enumerate(phones):
            s = normalize_ipa(p.symbol)
            # a live stream delivers a long phone in pieces: judge the run they belong to
            if s != self._run[0] or p.start_ms > self._run_end + 1e-6:
                self._run = (s, p.start_ms, self._run[0] if self._run[0] else "_")
            self._run_end = p.end_ms
            a = frame_index(p.start_ms) - base
            b = min(frame_index(p.end_ms), n) - base
            # closed lips silence the voice (or leave a murmur): a /p b/ heard over loud,
            # unbroken speech is the recogniser's guess (in a live stream often a fragment of
            # a partial path it revised), not a closure, nor a labial for the pause after it
            if opens(p):
                out.append(TimedPhoneme(OPEN_RELEASE, p.start_ms, p.end_ms))
                self._run = (OPEN_RELEASE, *self._run[1:])
                continue
            if b <= a:
                out.append(p)
                continue
            if s != "_" and np.mean(total[a:b] < o.silent_below_db) >= 0.8:
                out.append(TimedPhoneme("_", p.start_ms, p.end_ms))  # nothing audible
                continue
            closed = False
            if s in _CLOSURE_LOOKALIKES:
                murmuring, shut = evidence()
                gap = dipped()[a:b].any()
                nasal = murmuring[a:b].sum() * 10.0 >= o.min_closure_ms
                closed = bool(gap or nasal) and self._frication_free(upper, shut, a, b, base)
            elif s == "_" and p.end_ms - self._run[1] <= o.max_gap_ms:
                nxt = next((q for q in [*phones[j + 1:], *after]
                            if normalize_ipa(q.symbol) != "_"), None)
                before = self._run[2]
                after_s = normalize_ipa(nxt.symbol) if nxt else ""
                # a pause is a closure candidate only inside speech, next to a labial
                # (after it is unknown while the pause is still going on in a stream)
                inside = before != "_" and (after_s != "_")
                closed = inside and bool({before, after_s} & _LABIAL) and bool(
                    dipped()[a:b].any())
            if not closed and s == "_":
                murmur = self._murmur(base + a, base + b, p.start_ms)
                if murmur:
                    self._close(p.start_ms, p.start_ms + murmur * 10.0)
                    out.append(TimedPhoneme(CLOSURE, p.start_ms, self._closure_until))
                    if self._closure_until < p.end_ms:
                        out.append(TimedPhoneme("_", self._closure_until, p.end_ms))
                    continue
            if not closed:
                out.append(p)
                continue
            low = np.flatnonzero(evidence()[1][a:b])
            # the closure covers the dip's frames; one that reaches the phone's first or last
            # frame reaches its edge
            c0 = p.start_ms if low[0] == 0 else (
                (base + a + low[0]) * 10.0 + FRAME_CENTRE_MS - 5.0)
            c1 = p.end_ms if low[-1] == b - a - 1 else min(
                p.end_ms, (base + a + low[-1]) * 10.0 + FRAME_CENTRE_MS + 5.0)
            # a short closure is noise unless it goes on in the next piece of a live stream
            continues = self._closure_until >= c0 - 10.0 or c1 >= p.end_ms - 1e-6
            if c1 - c0 < o.min_closure_ms and not continues:
                out.append(p)
                continue
            self._close(c0, c1)
            if c0 > p.start_ms:
                out.append(TimedPhoneme(p.symbol, p.start_ms, c0))
            out.append(TimedPhoneme(CLOSURE, c0, c1))
            if c1 < p.end_ms:
                out.append(TimedPhoneme(p.symbol, c1, p.end_ms))
        return out

    def fit_nasal_closures(self, phones: Sequence[TimedPhoneme]) -> list[TimedPhoneme]:
        """Aligned phones (a transcript's): each /m/ closes where the signal shows it.

        A forced aligner knows that an /m/ is there, not exactly where: it often gives the
        vowel of "um" to the /m/. A nasal murmur is visible (the level dips or the formant
        band falls away while the low band holds), so within the aligned /m/ the lips close
        over the frames that show it (at least `min_murmur_ms`), and the vowel next to it
        keeps the rest. Stops are left as aligned: a voiced /b/ often shows no dip at all.
        """
        o = self.options
        n = len(self.levels)
        out = list(phones)
        if n == 0:
            return out
        total = self.levels[:, N_BANDS]
        shut = (_dip(total) >= o.dip_db) | _murmuring(self.levels, o)
        for i in range(1, len(out) - 1):
            p = out[i]
            if normalize_ipa(p.symbol) != "m":
                continue
            a, b = frame_index(p.start_ms), min(frame_index(p.end_ms), n)
            seen = np.flatnonzero(shut[a:b])
            if not len(seen):
                continue
            c0 = max(p.start_ms, (a + seen[0]) * 10.0 + FRAME_CENTRE_MS - 5.0)
            c1 = min(p.end_ms, (a + seen[-1]) * 10.0 + FRAME_CENTRE_MS + 5.0)
            if c1 - c0 < o.min_murmur_ms:
                middle = (c0 + c1) / 2
                c0 = max(p.start_ms, middle - o.min_murmur_ms / 2)
                c1 = min(p.end_ms, middle + o.min_murmur_ms / 2)
            # only a vowel next to it takes back what the /m/ does not show
            prev, nxt = out[i - 1], out[i + 1]
            if _is_vowel(prev.symbol) and prev.end_ms >= p.start_ms - 1e-6:
                out[i - 1] = TimedPhoneme(prev.symbol, prev.start_ms, c0)
            else:
                c0 = p.start_ms
            if _is_vowel(nxt.symbol) and nxt.start_ms <= p.end_ms + 1e-6:
                out[i + 1] = TimedPhoneme(nxt.symbol, c1, nxt.end_ms)
            else:
                c1 = p.end_ms
            out[i] = TimedPhoneme(p.symbol, c0, c1)
        return out

    def close_murmurs(self, phones: Sequence[TimedPhoneme]) -> list[TimedPhoneme]:
        """Aligned phones (a transcript's): a pause after a vowel that opens with a nasal
        murmur starts with a closure.

        The transcript's word ends in /m/ ("um", "them"), but forced alignment without
        the murmur in the right place gives it to the pause or squeezes it: closed lips
        that pass voicing through the nose are the /m/, wherever the aligner put it.
        Whole recordings only (the levels of all the audio are there).
        """
        out: list[TimedPhoneme] = []
        n = len(self.levels)
        for i, p in enumerate(phones):
            before = normalize_ipa(phones[i - 1].symbol) if i else "_"
            if p.symbol != "_" or not (_is_vowel(before) or before in _BILABIAL):
                out.append(p)
                continue
            a, b = frame_index(p.start_ms), min(frame_index(p.end_ms), n)
            # a murmur continuing the /m/ before it is measured against the vowel before that
            kept = self._closure_from, self._closure_until
            if before in _BILABIAL:
                self._closure_from, self._closure_until = phones[i - 1].start_ms, p.start_ms
            run = self._murmur_run(a, b, p.start_ms, after_closure=before in _BILABIAL)
            self._closure_from, self._closure_until = kept
            if not run:
                out.append(p)
                continue
            end = min(p.end_ms, p.start_ms + run * 10.0)
            self._drop_unseen_nasal(out)
            out.append(TimedPhoneme(CLOSURE, p.start_ms, end))
            if end < p.end_ms:
                out.append(TimedPhoneme("_", end, p.end_ms))
        return out

    def _drop_unseen_nasal(self, out: list[TimedPhoneme]) -> None:
        """The murmur found after the vowels that end `out` is the word's /m/: an aligned
        /m/ just before those vowels that the signal shows no closure for (the aligner
        squeezed "um" and gave its vowel to the next word) goes, the vowel takes its span."""
        k = len(out) - 1
        while k > 0 and _is_vowel(out[k].symbol):
            k -= 1
        if k == len(out) - 1 or normalize_ipa(out[k].symbol) != "m":
            return
        o = self.options
        a, b = frame_index(out[k].start_ms), frame_index(out[k].end_ms)
        context = self.levels[max(0, a - PAST_CONTEXT): b + FUTURE_CONTEXT + 1]
        first = a - max(0, a - PAST_CONTEXT)
        shut = (_dip(context[:, N_BANDS]) >= o.dip_db) | _murmuring(context, o)
        if shut[first: first + b - a].any():
            return
        nxt = out[k + 1]
        out[k + 1] = TimedPhoneme(nxt.symbol, out[k].start_ms, nxt.end_ms)
        del out[k]

    def _close(self, start_ms: float, end_ms: float) -> None:
        """Remember a closure made (one that continues the last keeps its start)."""
        if start_ms > self._closure_until + 10.0:
            self._closure_from = start_ms
        self._closure_until = end_ms

    def _frication_free(self, upper: np.ndarray, shut: np.ndarray, a: int, b: int,
                        base: int) -> bool:
        """Whether the dip over frames [a, b) (of a window starting at frame `base`) stops
        the frication: closed lips block the airflow, so the upper band falls to near the
        recording's noise floor at some point, while a weak /f v/ keeps its hiss above it
        throughout (the dip of a closure can reach into the hiss of a fricative after it)."""
        o = self.options
        frames = a + np.flatnonzero(shut[a:b])
        end = base + b
        floor = float(np.percentile(self.levels[max(0, end - FLOOR_FRAMES): end, UPPER_BANDS]
                                    .max(axis=1), 10))
        return bool(np.min(upper[frames]) <= floor + o.frication_above_floor_db)

    def _murmur(self, a: int, b: int, start_ms: float) -> int:
        """Frames of nasal murmur that open the pause over frames [a, b), if it follows a
        filler or a closure (the "m" of "um", a phrase-final /m/): 0 when there is none.
        """
        first_piece = abs(start_ms - self._run[1]) < 1e-6
        after_filler = first_piece and self._run[2] == FILLER
        after_closure = self._closure_until >= start_ms - 10.0 or (
            first_piece and self._run[2] in _BILABIAL)
        if not (after_filler or after_closure):
            return 0
        return self._murmur_run(a, b, start_ms, after_closure=after_closure)

    def _murmur_run(self, a: int, b: int, start_ms: float, *, after_closure: bool) -> int:
        """Frames of nasal murmur that open frames [a, b): 0 when there is none.

        A murmur is clearly quieter than the vowel before it yet above the recording's
        floor (the quietest frames of the last seconds: a stream delivers a pause in
        pieces), and tilted to the low band (the nose passes voicing, closed lips block
        the formants).
        """
        o = self.options
        if a < PAST_CONTEXT or b <= a:
            return 0
        levels = self.levels
        total = levels[:, N_BANDS]
        # the murmur is measured against the sound before it: before the closure it
        # continues, if any (a long /m/ would otherwise be its own reference)
        c = a
        if self._closure_until >= start_ms - 10.0:
            c = min(a, max(PAST_CONTEXT, frame_index(self._closure_from)))
        ref = int(np.argmax(total[c - PAST_CONTEXT: c])) + c - PAST_CONTEXT
        bands = levels[[ref, *range(a, b)], :N_BANDS]
        low, mid = bands[:, _LOW_BANDS].max(axis=1), bands[:, _MID_BANDS].max(axis=1)
        tilt = low - mid
        floor = float(np.percentile(total[max(0, b - FLOOR_FRAMES): b], 10))
        # a murmur can be a few dB above the floor only: judge its level over 30 ms
        # (a pause that starts on the last frame heard has fewer than three to take)
        around = total[a - 1: min(b + 1, len(total))]
        around = np.pad(around, (0, max(0, 3 - len(around))), mode="edge")
        level = np.median(np.lib.stride_tricks.sliding_window_view(around, 3), axis=1)
        level = np.pad(level, (0, b - a - len(level)), mode="edge")
        is_murmur = ((level >= floor + o.murmur_above_floor_db)
                     & (mid[0] - mid[1:] >= o.murmur_mid_dip_db)
                     & (tilt[1:] - tilt[0] >= o.murmur_tilt_db))
        # the first frames straddle the phone boundary: the murmur may start a little later
        lead = next((i for i in range(min(MURMUR_LEAD, len(is_murmur))) if is_murmur[i]), 0)
        run = lead
        while run < len(is_murmur) and is_murmur[run]:
            run += 1
        run = run if run > lead else 0
        # a short murmur is a vowel's decay, unless it continues a closure (a live stream's
        # first piece of a pause is often too short to tell: it stays a pause there)
        if (run - lead) * 10.0 < o.min_murmur_ms and not after_closure:
            return 0
        return run
