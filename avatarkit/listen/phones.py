"""Phone recognition with pocketsphinx's shipped en-us model, whole files or live streams.

pocketsphinx's allphone search decodes ARPAbet phones with 10 ms boundaries. Its best path
for the most recent audio still changes as more audio arrives, so the streaming recogniser
only *commits* the phones up to `settle_ms` before the newest sample (a phone that is still
going on is committed up to there and continued later); committed phones never change.
To keep each partial read cheap, the decoder restarts inside a committed pause once its
current utterance is long, and is fed again from that point.

Phones come out in IPA (via the project's ARPAbet table); silence and noise are pauses
(`_`), the spoken-noise model (fillers: uh, um) a schwa.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from avatarkit.errors import AvatarkitError
from avatarkit.listen.pcm import RATE
from avatarkit.visemes.phoneme_tables import ARPABET
from avatarkit.visemes.phonemes import TimedPhoneme

#: pocketsphinx frames are 10 ms.
FRAME_MS = 10.0
#: The streaming decoder restarts only inside a committed pause at least this long, ms.
RESTART_PAUSE_MS = 120.0


@dataclass(frozen=True)
class RecognizerOptions:
    """Search settings of the allphone decoder (measured in benchmarks/audio_lipsync.py).

    There is no language-weight setting: the search is a phone loop without a phone language
    model (see `new_decoder`), so pocketsphinx's `lw` has nothing to weigh."""

    #: Beam widths (smaller = wider = slower and slightly more accurate).
    beam: float = 1e-10
    pbeam: float = 1e-10
    #: Gaussians scored per mixture: 1 decodes ~25% faster than the default 4 with the same
    #: closure hits on real speech (benchmarks/audio_lipsync.py; f/v 1 hit in 14 lower).
    topn: int = 1
    #: Streaming: phones are committed up to this long before the newest sample, ms.
    settle_ms: float = 50.0
    #: Streaming: restart the decoder at a committed pause once its utterance is this long, ms.
    restart_after_ms: float = 3000.0


def model_dir() -> Path:
    """The folder of the en-us acoustic model shipped in the pocketsphinx wheel."""
    try:
        import pocketsphinx
    except ImportError as exc:  # pragma: no cover - a dependency, but say what to do
        raise AvatarkitError(
            "listening to audio needs pocketsphinx: pip install pocketsphinx"
        ) from exc
    return Path(pocketsphinx.get_model_path())


#: What a filler (uh, um, hm) becomes: a neutral, half-open mouth.
FILLER = "ə"
#: pocketsphinx's "spoken noise" model catches fillers.
FILLERS = {"+SPN+": FILLER}


def to_ipa(arpabet: str) -> str:
    """A pocketsphinx phone name -> IPA (`_` for silence and noise, a schwa for fillers)."""
    if arpabet in FILLERS:
        return FILLERS[arpabet]
    return ARPABET.get(arpabet, "_") if arpabet[:1].isalpha() and arpabet != "SIL" else "_"


@lru_cache(maxsize=1)
def acoustic_model() -> Path:
    """The en-us acoustic model's folder, checked: pocketsphinx's own errors go to a log
    this package silences, so a missing file would otherwise only decode nothing."""
    hmm = model_dir() / "en-us" / "en-us"
    if not (hmm / "mdef").is_file():
        raise AvatarkitError(f"pocketsphinx's en-us acoustic model is missing ({hmm}): "
                             "reinstall it with pip install --force-reinstall pocketsphinx")
    return hmm


#: The allphone search's name in a decoder.
PHONE_LOOP = "phones"


def new_decoder(options: RecognizerOptions):  # -> pocketsphinx.Decoder
    """A fresh allphone decoder (15-30 ms to load the model).

    No word dictionary: pocketsphinx loads its 134k-word CMUdict by default (0.13 s, four
    fifths of the load, a tenth of a `visemes --audio` run), and allphone search decodes
    phones from the acoustic model's own phone set, so it only needs the noise words (fdict).

    No phone language model either: every phone may follow every other. The wheel's phone
    trigram (en-us/en-us-phone.lm.bin) finds fewer lip closures on real speech (audio alone,
    dev / LibriVox / MFA set: 21, 31, 66 closures without it; 17, 28, 65 at lw 0.5; 16, 27,
    62 at lw 1; 15, 28, 61 at lw 2): it turns the short labials the lip cues rest on into
    likelier phones. docs/audio.md has the figures.
    """
    from pocketsphinx import Decoder

    decoder = Decoder(  # lm=None: else pocketsphinx loads its 27 MB word model (60 ms)
        hmm=str(acoustic_model()), dict=None, lm=None, beam=options.beam,
        pbeam=options.pbeam, topn=options.topn, samprate=RATE, loglevel="FATAL",
    )
    decoder.add_allphone_file(PHONE_LOOP, None)
    decoder.activate_search(PHONE_LOOP)
    return decoder


class DecoderPool:
    """Idle decoders kept for reuse, per key (the options they were made with).

    Loading a decoder costs ~15-30 ms and ~5 MB, as much as decoding half a second of
    speech, so short clips and live turns would otherwise pay it each time. `acquire` resets the
    feature front end (`reinit_feat`), whose live cepstral mean would otherwise carry what
    the decoder heard before into the next utterance: results then match a new decoder's
    exactly.
    """

    def __init__(self, keep: int) -> None:
        #: At most this many idle decoders are kept per key.
        self.keep = keep
        self._idle: dict[Hashable, list] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return sum(len(idle) for idle in self._idle.values())

    def acquire(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """A decoder in a fresh state: an idle one of `key`, else `make()`."""
        with self._lock:
            idle = self._idle.get(key)
            decoder = idle.pop() if idle else None
        if decoder is None:
            return make()
        decoder.reinit_feat()
        return decoder

    def release(self, key: Hashable, decoder: Any) -> None:
        """Give back a decoder whose utterance has ended (never one left mid-utterance)."""
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < self.keep:
                idle.append(decoder)

    def clear(self) -> None:
        with self._lock:
            self._idle.clear()


#: Allphone decoders: up to 4 idle per options (the streams one process runs at once).
DECODERS = DecoderPool(keep=4)


def acquire_decoder(options: RecognizerOptions):  # -> pocketsphinx.Decoder
    """An allphone decoder in a fresh state: reused when one is idle, else loaded."""
    return DECODERS.acquire(options, lambda: new_decoder(options))


def release_decoder(options: RecognizerOptions, decoder) -> None:
    """Give a decoder whose utterance has ended back for reuse."""
    DECODERS.release(options, decoder)


def _pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()


def _segments(decoder, offset_ms: float) -> list[TimedPhoneme]:
    out: list[TimedPhoneme] = []
    for s in decoder.seg() or ():
        start = offset_ms + s.start_frame * FRAME_MS
        end = offset_ms + (s.end_frame + 1) * FRAME_MS
        if end > start:
            out.append(TimedPhoneme(to_ipa(s.word), start, end))
    return out


def recognize(samples: np.ndarray, options: RecognizerOptions | None = None) -> list[TimedPhoneme]:
    """A whole 16 kHz mono float signal -> timed IPA phones (pauses included)."""
    opts = options or RecognizerOptions()
    decoder = acquire_decoder(opts)
    decoder.start_utt()
    decoder.process_raw(_pcm16(samples), full_utt=True)
    decoder.end_utt()
    phones = _merge_pauses(_segments(decoder, 0.0))
    release_decoder(opts, decoder)
    return phones


def _merge_pauses(phones: list[TimedPhoneme]) -> list[TimedPhoneme]:
    """Adjacent pauses become one (fillers next to silence are one stretch without speech)."""
    out: list[TimedPhoneme] = []
    for p in phones:
        if out and p.symbol == "_" and out[-1].symbol == "_":
            out[-1] = TimedPhoneme("_", out[-1].start_ms, p.end_ms)
        else:
            out.append(p)
    return out


class PhoneRecognizer:
    """16 kHz samples in, committed phones out, as a live stream (one per utterance/turn).

    `channel` is what an earlier turn of the same voice taught the decoder about the audio
    channel (its cepstral mean): the model's prior mean is far from most channels and its
    live update takes seconds, so a cold short turn loses closures (LibriVox turns in a row:
    17 -> 22 of 27 closures heard with the previous turn's channel).
    """

    def __init__(self, options: RecognizerOptions | None = None, *,
                 channel: str | None = None) -> None:
        self.options = options or RecognizerOptions()
        self._decoder = acquire_decoder(self.options)
        self._channel = channel
        if channel:
            self._set_channel(channel)
        self._decoder.start_utt()
        self._utt_start = 0  # sample index where the decoder's utterance starts
        self._received = 0  # samples received
        self._pending = np.zeros(0)  # samples since the last restart point (for a re-feed)
        self._committed_ms = 0.0  # phones up to here never change
        self._last_symbol, self._last_start_ms, self._last_end_ms = "", 0.0, 0.0
        self._finished = False

    @property
    def channel(self) -> str | None:
        """The channel estimate: the one given before the first audio, the one learned from
        this turn once it has finished (pass it to the voice's next turn)."""
        return self._channel

    @channel.setter
    def channel(self, value: str | None) -> None:
        if self._received:
            raise AvatarkitError("the channel can only be set before the first audio")
        self._channel = value
        if value:
            self._set_channel(value)

    def _set_channel(self, value: str) -> None:
        # pocketsphinx reads any string (missing numbers become 0): check it is one of ours
        n = len(self._decoder.get_cmn().split(","))
        try:
            numbers = [float(v) for v in str(value).split(",")]
        except ValueError:
            numbers = []
        if len(numbers) != n or not all(np.isfinite(numbers)):
            raise AvatarkitError(
                f"not a channel estimate of this recogniser (expected {n} numbers): {value!r}")
        self._decoder.set_cmn(value)

    def push(self, samples: np.ndarray) -> list[TimedPhoneme]:
        """Feed 16 kHz samples; returns the phones committed by them (in order, no gaps)."""
        if self._finished:
            raise AvatarkitError("the phone stream has finished; start a new one")
        if not len(samples):
            return []
        self._decoder.process_raw(_pcm16(samples), full_utt=False)
        self._pending = np.concatenate([self._pending, samples])
        self._received += len(samples)
        now_ms = self._received * 1000.0 / RATE
        return self._commit(now_ms - self.options.settle_ms, final=False)

    def finish(self) -> list[TimedPhoneme]:
        """End of the stream: every remaining phone, up to the last sample."""
        if self._finished:
            return []
        self._finished = True
        if self._received:
            self._channel = self._decoder.get_cmn(update=True)
        self._decoder.end_utt()
        phones = self._commit(self._received * 1000.0 / RATE, final=True)
        release_decoder(self.options, self._decoder)
        return phones

    def _commit(self, cutoff_ms: float, *, final: bool) -> list[TimedPhoneme]:
        offset = self._utt_start * 1000.0 / RATE
        out: list[TimedPhoneme] = []
        for p in _segments(self._decoder, offset):
            if p.end_ms <= self._committed_ms + 1e-6:
                continue
            if not final and p.start_ms >= cutoff_ms:
                break
            start = max(p.start_ms, self._committed_ms)
            end = p.end_ms if final else min(p.end_ms, cutoff_ms)
            if end <= start:
                break
            if out and out[-1].symbol == p.symbol:
                out[-1] = TimedPhoneme(p.symbol, out[-1].start_ms, end)
            else:
                out.append(TimedPhoneme(p.symbol, start, end))
            self._committed_ms = end
        end_ms = self._received * 1000.0 / RATE
        if final and end_ms > self._committed_ms + 1e-6:
            out.append(TimedPhoneme("_", self._committed_ms, end_ms))
            self._committed_ms = end_ms
        for p in out:
            if p.symbol != self._last_symbol or p.start_ms > self._last_end_ms + 1e-6:
                self._last_symbol, self._last_start_ms = p.symbol, p.start_ms
            self._last_end_ms = p.end_ms
        if not final:
            self._maybe_restart()
        return out

    def _maybe_restart(self) -> None:
        """Start a new decoder utterance inside a committed pause, re-fed from there."""
        utt_ms = (self._received - self._utt_start) * 1000.0 / RATE
        pause_ms = self._last_end_ms - self._last_start_ms
        if self._last_symbol != "_" or pause_ms < RESTART_PAUSE_MS:
            return
        if utt_ms < self.options.restart_after_ms:
            return
        cut = int(round(self._last_end_ms * RATE / 1000.0))
        keep = self._pending[cut - self._utt_start:]
        self._decoder.end_utt()
        self._decoder.start_utt()
        self._utt_start = cut
        self._pending = keep
        if len(keep):
            self._decoder.process_raw(_pcm16(keep), full_utt=False)
