"""`evolve` makes the same states as `dataclasses.replace` (the streaming blend's hot path)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from avatarkit.visemes.char_timing import CharTimingState
from avatarkit.visemes.coarticulation import CoarticulationState
from avatarkit.visemes.evolve import evolve
from avatarkit.visemes.stream import VisemeStreamState


@pytest.mark.parametrize(("state", "changes"), [
    (VisemeStreamState(), {"audio_end_ms": 12.5, "aligned": True}),
    (CharTimingState(pending=(("a", 0.0, 5.0),)), {"relative": True, "audio_ms": None}),
    (CoarticulationState(next_frame=3), {"next_frame": 9, "finished": True}),
])
def test_evolve_equals_replace(state: object, changes: dict) -> None:
    before = replace(state)  # type: ignore[type-var]
    new = evolve(state, **changes)
    assert new == replace(state, **changes)  # type: ignore[type-var]
    assert type(new) is type(state) and new is not state
    assert state == before  # the original is unchanged
    for name, value in changes.items():
        assert getattr(new, name) == value
    with pytest.raises(AttributeError):  # still frozen
        new.finished = False  # type: ignore[misc, attr-defined]
    assert hash(new) == hash(replace(state, **changes))  # type: ignore[type-var]


def test_evolve_leaves_the_original_and_refuses_unknown_fields() -> None:
    state = VisemeStreamState(audio_end_ms=1.0)
    evolve(state, audio_end_ms=2.0)
    assert state.audio_end_ms == 1.0
    with pytest.raises(TypeError, match="no field 'audio_end'"):
        evolve(state, audio_end=2.0)
