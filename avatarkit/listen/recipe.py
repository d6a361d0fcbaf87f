"""The listener's recipe for a whole recording: audio (+ transcript) -> timed phones.

    audio --resample 16 kHz--> samples
      with text:    forced alignment --pauses, /m/ murmurs from the signal--> phones
      without text (or when the text does not align):
                    phone recognition --lip evidence--> (--transcript relabel-->) phones
    phones --coarticulation--> viseme timeline (same format, exporters, renderer as TTS)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatarkit.errors import AvatarkitError
from avatarkit.listen.lips import LipReader
from avatarkit.listen.options import ListenOptions
from avatarkit.listen.pcm import RATE, load_speech, resample
from avatarkit.listen.phones import recognize
from avatarkit.visemes.phonemes import TimedPhoneme
from avatarkit.visemes.timeline import Timeline, timeline_from_phonemes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Heard:
    """Timed phones of a recording and how they were found."""

    phones: tuple[TimedPhoneme, ...]
    duration_ms: float
    #: "aligned" (audio + transcript), "recognized" (audio only), or "recognized+text"
    #: (the transcript did not align; it relabelled the recognised phones instead).
    method: str


def listen(
    samples: np.ndarray,
    *,
    text: str | None = None,
    lang: str = "en-us",
    options: ListenOptions | None = None,
) -> Heard:
    """Timed IPA phones of 16 kHz mono speech, from the audio alone or with its transcript."""
    opts = options or ListenOptions()
    duration = len(samples) * 1000.0 / RATE
    if text is not None:
        return _listen_with_text(samples, text, lang, opts, duration)
    phones = _recognized(samples, _lips(samples, opts), opts)
    if opts.speech_gate:
        from avatarkit.listen.gate import gate_phones, speech_probability, speech_stretches

        phones = gate_phones(phones, speech_stretches(speech_probability(samples)))
    return Heard(tuple(phones), duration, "recognized")


def _lips(samples: np.ndarray, opts: ListenOptions) -> LipReader:
    """The lip evidence of a whole recording."""
    lips = LipReader(opts.lips)
    lips.push(samples)
    return lips


def _recognized(samples: np.ndarray, lips: LipReader, opts: ListenOptions, *,
                keep_stops: bool = False) -> list[TimedPhoneme]:
    """Phones recognised from the audio alone, corrected by the lip evidence
    (`keep_stops`: a transcript relabels them next, `LipReader.refine`)."""
    return lips.refine(recognize(samples, opts.recognizer), final=True, keep_stops=keep_stops)


def _listen_with_text(samples: np.ndarray, text: str, lang: str, opts: ListenOptions,
                      duration: float) -> Heard:
    """Forced alignment of the transcript; recognition relabelled by it where it does not
    align. (The aligner and the matcher load here: audio alone needs neither.)"""
    from avatarkit.listen.align import align, transcript_words
    from avatarkit.listen.pauses import insert_pauses, quiet_spans
    from avatarkit.listen.transcript import TranscriptMatcher

    if not transcript_words(text):
        raise AvatarkitError("the transcript has no words: pass the spoken text, or no --text")
    lips = _lips(samples, opts)
    quiet = quiet_spans(lips.levels)
    first_ms, last_ms = _sounding(quiet, duration)
    a, b = int(first_ms * RATE / 1000), int(last_ms * RATE / 1000)
    aligned = align(samples[a:b], text, lang)
    if not aligned and (a or b < len(samples)):  # soft speech in the quiet left out
        aligned, a, first_ms = align(samples, text, lang), 0, 0.0
    if aligned:
        if a:
            aligned = [TimedPhoneme(p.symbol, p.start_ms + first_ms, p.end_ms + first_ms)
                       for p in aligned]
        phones = lips.close_murmurs(insert_pauses(aligned, quiet))
        phones = lips.fit_nasal_closures(_listen_where_unspoken(samples, phones, lips.levels,
                                                                opts))
        return Heard(tuple(phones), duration, "aligned")
    log.warning("the transcript did not align with the audio; listening without it")
    matcher = TranscriptMatcher(lang)
    matcher.add(text)
    return Heard(tuple(matcher.relabel(_recognized(samples, lips, opts, keep_stops=True),
                                       final=True)), duration,
                 "recognized+text")


#: Quiet at an end of a recording at least this long (ms) is left out of the alignment...
TRIM_QUIET_MS = 3000.0
#: ... but for this much next to the sound (ms).
ALIGN_MARGIN_MS = 200.0
#: A quiet span this close to an end of the recording reaches it (analysis frames), ms.
EDGE_MS = 50.0


def _sounding(quiet: list[tuple[float, float]], duration: float) -> tuple[float, float]:
    """From where to where a recording sounds (ms): long silence before the first sound or
    after the last can fail the aligner's search (a short utterance inside a minute of
    near-silence did). Only long quiet is left out: speech 30 dB under the rest is quiet
    too, and if what is left does not align, the whole recording is aligned after all."""
    first, last = 0.0, duration
    if quiet and quiet[0][0] <= EDGE_MS and quiet[0][1] - quiet[0][0] >= TRIM_QUIET_MS:
        first = max(0.0, quiet[0][1] - ALIGN_MARGIN_MS)
    if quiet and quiet[-1][1] >= duration - EDGE_MS and (
            quiet[-1][1] - quiet[-1][0] >= TRIM_QUIET_MS):
        last = min(duration, quiet[-1][0] + ALIGN_MARGIN_MS)
    return (first, last) if last - first >= 200.0 else (0.0, duration)


#: An aligned sound held longer than this (ms; vowels, others) is the aligner stretching a
#: word over speech the transcript does not have: fillers, false starts, laughter.
HELD_TOO_LONG_MS = {"vowel": 500.0, "other": 300.0}
#: Aligned pauses at least this long (ms) that hold this share of the recording's speech-level
#: sound mean the transcript lacks speech (a wrong transcript, or part of one): the word pass
#: may put silence and noise between the words, and does. A cough or a breath the transcript
#: leaves out holds far less (dev speech: 7%), and stays a pause.
UNSPOKEN_PAUSE_MS = 500.0
UNSPOKEN_SHARE = 0.25


def _listen_where_unspoken(samples: np.ndarray, phones: list[TimedPhoneme],
                           levels: np.ndarray, opts: ListenOptions
                           ) -> list[TimedPhoneme]:
    """Aligned phones, with the stretches a transcript cannot have covered listened to.

    Transcripts leave out "um", "uh", repeats and restarts; forced alignment must put the
    audio somewhere and holds a neighbouring sound over it, a mouth frozen for a second.
    Those stretches get the audio-only recipe instead (dev speech: 15 such stretches). So
    do the long aligned pauses when together they hold much of the recording's speech: a
    transcript that lacks whole sentences (or is the wrong one) leaves the aligner nothing
    to put there but pauses.
    """
    from avatarkit.listen.pauses import speech_level, speech_ms
    from avatarkit.listen.phones import FILLER
    from avatarkit.visemes.phonemes import lookup

    duration = len(samples) * 1000.0 / RATE
    long_pauses = [p for p in phones
                   if p.symbol == "_" and p.end_ms - p.start_ms >= UNSPOKEN_PAUSE_MS]
    speech = speech_level(levels, [(p.start_ms, p.end_ms) for p in phones if p.symbol != "_"])
    in_pauses = sum(speech_ms(levels, p.start_ms, p.end_ms, speech) for p in long_pauses)
    share = in_pauses / max(speech_ms(levels, 0.0, duration, speech), 1.0)
    lacks_speech = share > UNSPOKEN_SHARE
    if lacks_speech:
        log.warning("the transcript misses ~%.0f%% of the speech: listened to that part",
                    100.0 * share)
    out: list[TimedPhoneme] = []
    for p in phones:
        if p.symbol == "_":
            held = lacks_speech and p.end_ms - p.start_ms >= UNSPOKEN_PAUSE_MS
        else:
            kind = "vowel" if lookup(p.symbol).info.manner == "vowel" else "other"
            # a long closure is plausible (a held stop, "mmm") and the transcript's word
            # for it, and so is a long "uh" (a filler the transcript has)
            held = p.symbol not in ("p", "b", "m", FILLER) and (
                p.end_ms - p.start_ms > HELD_TOO_LONG_MS[kind])
        if not held:
            out.append(p)
            continue
        a, b = int(p.start_ms * RATE / 1000), int(p.end_ms * RATE / 1000)
        stretch = samples[a:b]
        heard = _recognized(stretch, _lips(stretch, opts), opts)
        out += [TimedPhoneme(q.symbol, q.start_ms + p.start_ms,
                             min(q.end_ms + p.start_ms, p.end_ms)) for q in heard
                if q.start_ms + p.start_ms < p.end_ms]
    return out


def timeline_from_audio(
    samples: np.ndarray,
    sample_rate: int,
    *,
    text: str | None = None,
    lang: str = "en-us",
    fps: float = 30.0,
    options: ListenOptions | None = None,
) -> Timeline:
    """Mono samples at any rate (int16 or float) -> coarticulated viseme timeline."""
    return _timeline(resample(np.asarray(samples), sample_rate), text, lang, fps, options)


def timeline_from_audio_file(
    path: str | Path,
    *,
    text: str | None = None,
    lang: str = "en-us",
    fps: float = 30.0,
    options: ListenOptions | None = None,
) -> Timeline:
    """Any audio file ffmpeg reads -> viseme timeline (audio only, or with its transcript)."""
    return _timeline(load_speech(path), text, lang, fps, options)


def _timeline(samples: np.ndarray, text: str | None, lang: str, fps: float,
              options: ListenOptions | None) -> Timeline:
    """16 kHz samples -> timeline at `fps` (what both public entry points share)."""
    opts = (options or ListenOptions()).with_fps(fps).checked()
    heard = listen(samples, text=text, lang=lang, options=opts)
    return timeline_from_phonemes(heard.phones, opts.coarticulation, duration_ms=heard.duration_ms)
