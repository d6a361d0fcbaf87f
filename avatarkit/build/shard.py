"""`--shard I/N`: the I-th of N disjoint parts of a photo folder, so that a CI matrix of N
jobs builds every photo exactly once without talking to each other.

A photo's part is a hash of its file name, not its position in the listing: the split does
not depend on file order, and adding a photo never moves the others to another part (so each
job's cached output stays valid). Parts are balanced only on average; a small folder can
leave a part empty, which is not an error.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from avatarkit.errors import AvatarkitError

_FORM = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


@dataclass(frozen=True)
class Shard:
    """Part `index` (1-based) of `count`."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, name: str) -> bool:
        """True when the photo file `name` belongs to this part."""
        digest = hashlib.sha256(name.encode("utf-8", "surrogateescape")).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index - 1

    def select(self, photos: list[Path]) -> list[Path]:
        """The photos of this part, in the order given."""
        return [p for p in photos if self.holds(p.name)]


def parse_shard(text: str) -> Shard:
    """`"2/4"` -> Shard(2, 4); anything else is an error that shows the valid form."""
    match = _FORM.fullmatch(text)
    if not match:
        raise AvatarkitError(f"--shard {text}: use I/N, e.g. --shard 1/4 (part I of N, 1-based)")
    index, count = int(match[1]), int(match[2])
    if count < 1:
        raise AvatarkitError(f"--shard {text}: N must be 1 or more")
    if not 1 <= index <= count:
        raise AvatarkitError(
            f"--shard {text}: I must be between 1 and {count} (parts are numbered from 1: "
            f"--shard 1/{count} ... {count}/{count})")
    return Shard(index, count)
