"""Barge-in: how a playing utterance stops without a pop.

The mouth does not snap shut: from the shape shown at the playback position it ramps to
Rest over `ramp_ms`, and the utterance ends where the ramp ends. Timing only; the session
(server/session.py) cancels production and sends what this returns.
"""

from __future__ import annotations

from avatarkit.visemes.coarticulation import Frame
from avatarkit.visemes.stream import ramp_to_rest, weights_at
from server.pacing import Utterance, playback_ms


def stop_ramp(u: Utterance, now: float, ramp_ms: float, fps: float) -> tuple[list[Frame], float]:
    """The frames that take `u`'s mouth from where it is at loop time `now` to Rest, and
    the playback position they start from, ms (never past the audio produced)."""
    pos = min(playback_ms(u, now), u.audio_end_ms)
    shown = weights_at([Frame(int(p), dict(w)) for p, w in u.frames], pos)  # pts: whole ms
    return ramp_to_rest(shown, pos, ramp_ms, fps), pos
