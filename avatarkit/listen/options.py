"""Every knob of listening to speech, with the defaults the benchmarks were run with."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from avatarkit.listen.phones import RecognizerOptions
from avatarkit.visemes.coarticulation import CoarticulationOptions

#: Coarticulation for audio-driven mouths: anticipation is capped lower than for text-driven
#: speech (120 ms), because in a live stream every millisecond of anticipation is a
#: millisecond of delay; 40 ms keeps the look-ahead under 150 ms at 30 fps and scored the
#: same closure hits as 90 ms on the real-speech sets (benchmarks/audio_lipsync.py).
LISTEN_COARTICULATION = CoarticulationOptions(fps=30.0, max_anticipation_ms=40.0)


@dataclass(frozen=True)
class LipOptions:
    """How acoustic evidence of closed lips corrects the recognised phones (`lips.py`)."""

    #: A closure is a drop of the total level by at least this much
    #: against the loudest frame from 100 ms before to 40 ms after, dB.
    dip_db: float = 8.0
    #: ...in a recording whose loud speech (the loudest tenth of its last 3 s) stands at least
    #: this far above its noise floor (the quietest tenth); with less range (noise raises the
    #: floor a closure falls to) every dip threshold shrinks in proportion, dB...
    range_db: float = 10.0
    #: ...but to no less than this fraction.
    min_range_scale: float = 0.4
    #: The upper band (> 2.5 kHz) falls to within this much of the recording's noise floor
    #: (the quietest tenth of its last 3 s) somewhere in a closure; /f v/ keep their hiss
    #: above it throughout, dB.
    frication_above_floor_db: float = 12.0
    #: Longest pause inside speech that can be a stop closure, ms.
    max_gap_ms: float = 150.0
    #: Shortest closure kept, ms (a bilabial closure lasts 40-150 ms in running speech).
    min_closure_ms: float = 20.0
    #: A phone whose frames are (mostly) below this level is silence the recogniser
    #: mistook for a sound, dB full scale.
    silent_below_db: float = -60.0
    #: A nasal murmur is at least this much above the floor of the pause it opens, dB...
    murmur_above_floor_db: float = 2.0
    #: ...its formant band (0.5-2.5 kHz) falls at least this much (a recognised /f v w/
    #: over such a murmur is an /m/)...
    murmur_mid_dip_db: float = 10.0
    #: ...its low band gains at least this much on the formant band against the vowel, dB...
    murmur_tilt_db: float = 6.0
    #: ...and lasts at least this long, ms (a vowel's decay passes through in less).
    min_murmur_ms: float = 40.0


@dataclass(frozen=True)
class ListenOptions:
    """Recogniser, lip evidence and coarticulation settings of the audio-driven path."""

    recognizer: RecognizerOptions = field(default_factory=RecognizerOptions)
    lips: LipOptions = field(default_factory=LipOptions)
    coarticulation: CoarticulationOptions = LISTEN_COARTICULATION
    #: Rest wherever a voice activity detector hears no speech (music, noise; listen/gate.py:
    #: needs the `vad` extra and halves the speed). Whole recordings without a transcript.
    speech_gate: bool = False

    @property
    def lookahead_ms(self) -> float:
        """Upper bound of how far frames trail the newest audio in a stream, ms: the lip
        evidence's context (or the recogniser's settle time, if longer), the coarticulation's
        look-ahead and one frame."""
        from avatarkit.listen.lips import CONTEXT_MS

        c = self.coarticulation
        return max(self.recognizer.settle_ms, CONTEXT_MS) + c.lookahead_ms + 1000.0 / c.fps

    def with_fps(self, fps: float) -> ListenOptions:
        """These options at another output frame rate."""
        return replace(self, coarticulation=replace(self.coarticulation, fps=float(fps)))

    def checked(self) -> ListenOptions:
        """Validate what a user can set."""
        self.coarticulation.checked()
        if self.speech_gate:
            from avatarkit.listen.gate import check_available

            check_available()
        return self
