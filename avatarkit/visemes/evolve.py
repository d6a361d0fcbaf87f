"""`evolve`: `dataclasses.replace` for the streaming states, at a third of its cost.

A relaying server advances each stream's immutable states (`VisemeStreamState`,
`CharTimingState`, `CoarticulationState`) about ten times per ~0.6 s chunk, hundreds of
streams at once; `dataclasses.replace` re-runs the generated `__init__` through a dict of
every field each time (~5 us), which was a tenth of a relayed chunk's blend. The states
have no `__post_init__` and no slots, so copying the field dict is the same object.
"""

from __future__ import annotations

from typing import Any, TypeVar

T = TypeVar("T")


def evolve(obj: T, **changes: Any) -> T:
    """A copy of the dataclass instance `obj` with `changes` (field names, as `replace`
    takes them); `obj` is unchanged. Only for dataclasses without `__post_init__`,
    `__slots__` or init-only fields."""
    new = object.__new__(type(obj))
    fields = new.__dict__
    fields.update(obj.__dict__)
    for name in changes:
        if name not in fields:
            raise TypeError(f"{type(obj).__name__} has no field {name!r}")
    fields.update(changes)
    return new
