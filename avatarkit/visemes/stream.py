"""Streaming speech chunks -> viseme frames on the audio clock, as pure functions.

The live server feeds each `SpeechChunk` a TTS provider yields into `stream_step` and sends
the frames it returns; `stream_finish` closes the utterance. Phoneme-timed chunks (the
embedded voice) go straight to the coarticulator; character-aligned chunks (ElevenLabs)
pass through `chars_to_phonemes_step` and G2P first. Frames come out only once later audio
can no longer change them (the coarticulation look-ahead), and the concatenated output is
exactly the batch timeline of the whole utterance. `ramp_to_rest` is the barge-in tail.

State in, frames and state out; nothing here knows about sockets or event loops. The
alignment path calls the G2P lexicon, which is blocking (espeak-ng): run `stream_step`
in `avatarkit.tts.espeak_lib.engine().executor` or another worker thread.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from avatarkit.errors import AvatarkitError
from avatarkit.tts.provider import SpeechChunk
from avatarkit.visemes.char_timing import (
    CharTimingState,
    chars_to_phonemes_finish,
    chars_to_phonemes_step,
)
from avatarkit.visemes.coarticulation import (
    CoarticulationOptions,
    CoarticulationState,
    Frame,
    coarticulate_step,
)
from avatarkit.visemes.coarticulation_batch import coarticulate_steps
from avatarkit.visemes.evolve import evolve
from avatarkit.visemes.g2p import Lexicon
from avatarkit.visemes.phonemes import TimedPhoneme, pause_to_end

REST_FRAME_WEIGHTS: Mapping[str, float] = {"Rest": 1.0}


@dataclass(frozen=True)
class VisemeStreamState:
    """Everything one utterance's viseme stream remembers between chunks (immutable)."""

    coarticulation: CoarticulationState = field(default_factory=CoarticulationState)
    #: Character-alignment state (used only when chunks carry alignment).
    chars: CharTimingState = field(default_factory=CharTimingState)
    #: End of the audio received so far on the utterance clock, ms.
    audio_end_ms: float = 0.0
    #: End of the last phoneme given to the coarticulator, ms.
    phonemes_end_ms: float = 0.0
    #: True once any chunk carried character alignment (then phonemes come from G2P).
    aligned: bool = False
    #: The last frame emitted (the mouth shape a barge-in ramps from).
    last_frame: Frame | None = None


def stream_step(
    state: VisemeStreamState,
    chunk: SpeechChunk,
    options: CoarticulationOptions,
    lexicon: Lexicon | None = None,
) -> tuple[list[Frame], VisemeStreamState]:
    """Consume one chunk; return the frames that are now final, and the new state."""
    state, phonemes = _phonemes(state, chunk, lexicon)
    return _coarticulate(state, phonemes, options)


def stream_steps(
    steps: Sequence[tuple[VisemeStreamState, SpeechChunk | None, Lexicon | None]],
    options: CoarticulationOptions,
) -> list[tuple[list[Frame], VisemeStreamState]]:
    """`stream_step` for each of many independent streams (`stream_finish` for a step whose
    chunk is None), blended in one vectorised pass (identical frames; a server relaying
    hundreds of streams pays numpy's per-call cost once per batch instead of once per
    chunk, and once per batch for the last frames of each utterance too)."""
    prepared = [_phonemes(state, chunk, lexicon) if chunk is not None
                else _finish_phonemes(state, lexicon) for state, chunk, lexicon in steps]
    results = coarticulate_steps(
        [(state.coarticulation, phonemes, chunk is None)
         for (state, phonemes), (_, chunk, _) in zip(prepared, steps, strict=True)], options)
    return [_advanced(state, phonemes, frames, coart)
            for (state, phonemes), (frames, coart) in zip(prepared, results, strict=True)]


def _phonemes(
    state: VisemeStreamState, chunk: SpeechChunk, lexicon: Lexicon | None
) -> tuple[VisemeStreamState, list[TimedPhoneme]]:
    """A chunk's timed phonemes (G2P for character alignment), and the state with its audio."""
    audio_end = max(state.audio_end_ms, chunk.end_ms)
    chars = state.chars
    aligned = state.aligned
    if chunk.alignment is not None:
        if lexicon is None:
            raise AvatarkitError("a character-aligned speech chunk needs a G2P lexicon")
        al = chunk.alignment
        if al.audio_ms is None:  # the chunk's own audio tells the alignment's time base
            al = replace(al, audio_ms=chunk.duration_ms)
        phonemes, chars = chars_to_phonemes_step(chars, al, lexicon)
        aligned = True
    else:
        phonemes = list(chunk.phonemes)
    return evolve(state, chars=chars, audio_end_ms=audio_end, aligned=aligned), phonemes


def stream_finish(
    state: VisemeStreamState,
    options: CoarticulationOptions,
    lexicon: Lexicon | None = None,
) -> tuple[list[Frame], VisemeStreamState]:
    """Close the utterance: the remaining frames up to the end of its audio."""
    state, phonemes = _finish_phonemes(state, lexicon)
    return _coarticulate(state, phonemes, options, final=True)


def _finish_phonemes(
    state: VisemeStreamState, lexicon: Lexicon | None
) -> tuple[VisemeStreamState, list[TimedPhoneme]]:
    """The phonemes that close the utterance (its last word, a pause to the audio's end)."""
    if state.aligned:
        if lexicon is None:
            raise AvatarkitError("a character-aligned speech stream needs a G2P lexicon")
        phonemes, chars = chars_to_phonemes_finish(
            state.chars, lexicon, total_ms=state.audio_end_ms
        )
        return evolve(state, chars=chars), list(phonemes)
    if state.phonemes_end_ms > 0:
        # the batch timeline pads with a pause to the end of the audio; so do we, by the same
        # rule (the audio end here is a sum of slice ends, float-rounded differently)
        return state, list(pause_to_end(state.phonemes_end_ms, state.audio_end_ms))
    return state, []


def _coarticulate(
    state: VisemeStreamState,
    phonemes: Sequence[TimedPhoneme],
    options: CoarticulationOptions,
    *,
    final: bool = False,
) -> tuple[list[Frame], VisemeStreamState]:
    frames, coart = coarticulate_step(state.coarticulation, phonemes, options, final=final)
    return _advanced(state, phonemes, frames, coart)


def _advanced(
    state: VisemeStreamState, phonemes: Sequence[TimedPhoneme], frames: list[Frame],
    coart: CoarticulationState,
) -> tuple[list[Frame], VisemeStreamState]:
    end = phonemes[-1].end_ms if phonemes else state.phonemes_end_ms
    return frames, evolve(
        state,
        coarticulation=coart,
        phonemes_end_ms=end,
        last_frame=frames[-1] if frames else state.last_frame,
    )


def weights_at(frames: Sequence[Frame], pts_ms: float) -> Mapping[str, float]:
    """The weights of the last frame at or before `pts_ms` (Rest before the first)."""
    shown: Mapping[str, float] = REST_FRAME_WEIGHTS
    for f in frames:
        if f.pts_ms > pts_ms:
            break
        shown = f.weights
    return shown


def ramp_to_rest(
    weights: Mapping[str, float], start_ms: float, ramp_ms: float, fps: float
) -> list[Frame]:
    """Frames from `weights` at `start_ms` to exactly `{"Rest": 1}` about `ramp_ms` later.

    Linear in the weights, one frame per 1/fps; the first frame repeats `weights` (the
    shape shown now) and the last is pure Rest, at `start_ms + n / fps` with n the number of
    frame steps that span at least `ramp_ms`.
    """
    if ramp_ms <= 0 or fps <= 0:
        return [Frame(int(round(start_ms)), dict(REST_FRAME_WEIGHTS))]
    step = 1000.0 / fps
    n = max(1, math.ceil(ramp_ms / step - 1e-9))
    frames = []
    for k in range(n + 1):
        a = k / n
        mixed = {c: (1.0 - a) * w for c, w in weights.items()}
        mixed["Rest"] = mixed.get("Rest", 0.0) + a
        rounded = {c: round(w, 3) for c, w in mixed.items() if round(w, 3) > 0}
        top = max(rounded, key=lambda c: rounded[c])
        rounded[top] = round(rounded[top] + 1.0 - sum(rounded.values()), 3)
        frames.append(Frame(int(round(start_ms + k * step)), rounded))
    return frames
