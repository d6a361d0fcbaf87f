"""Read a viseme timeline file written by `avatarkit visemes` (the formats that carry weights).

`json` (the avatarkit timeline), `live` (JSON Lines of wire events) and `oculus` (Meta's 15
visemes, mapped back to the 12 classes) carry per-frame weights and are read. `rhubarb`,
`tsv` and `azure` carry one mouth shape per cue, not weights: they are recognised and
refused with a message that says how to make a readable file.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from functools import lru_cache
from pathlib import Path
from typing import Any

from avatarkit.errors import AvatarkitError
from avatarkit.render.weights import WeightTrack
from avatarkit.visemes.phoneme_tables import IPA

READABLE = ("json", "live", "oculus")
_REMAKE = "make one with `avatarkit visemes --format json` (or live)"


@lru_cache(maxsize=1)
def oculus_to_class() -> dict[str, str]:
    """Oculus/Meta viseme -> canonical class: the class most phonemes of that viseme carry."""
    votes: dict[str, Counter] = defaultdict(Counter)
    for info in IPA.values():
        votes[info.oculus][info.viseme] += 1
    return {name: counts.most_common(1)[0][0] for name, counts in votes.items()}


def _events(items: Any, where: str) -> list[tuple[float, dict[str, float]]]:
    try:
        return [(float(e["pts_ms"]), dict(e["weights"])) for e in items]
    except (KeyError, TypeError, ValueError) as exc:
        raise AvatarkitError(f"{where}: a frame lacks pts_ms/weights ({exc!r}); {_REMAKE}")from exc


def _from_oculus(doc: dict, where: str) -> WeightTrack:
    mapping = oculus_to_class()
    events = []
    for pts, weights in _events(doc["frames"], where):
        mapped: dict[str, float] = defaultdict(float)
        for name, w in weights.items():
            if name not in mapping:
                raise AvatarkitError(f"{where}: unknown Oculus viseme {name!r}")
            mapped[mapping[name]] += float(w)
        events.append((pts, dict(mapped)))
    return WeightTrack.from_events(events, doc.get("duration_ms"), where)


def detect_format(text: str) -> str:
    """Which `avatarkit visemes --format` wrote this text (`unknown` when none did)."""
    stripped = text.strip()
    if not stripped:
        return "empty"
    try:
        doc = json.loads(stripped)
    except ValueError:
        lines = [ln for ln in stripped.splitlines() if ln.strip()]
        try:
            first = json.loads(lines[0])
        except ValueError:
            first = None
        if isinstance(first, dict) and "weights" in first:
            return "live"
        if all(len(ln.split("\t")) == 2 for ln in lines):
            return "tsv"
        return "unknown"
    if isinstance(doc, dict):
        if "events" in doc:
            return "json"
        if "frames" in doc and "visemes" in doc:
            return "oculus"
        if "mouthCues" in doc:
            return "rhubarb"
        if isinstance(doc.get("visemes"), list):
            return "azure"
        if "weights" in doc:
            return "live"  # a single wire event
    return "unknown"


def parse_timeline(text: str, where: str = "timeline") -> WeightTrack:
    """Parse timeline text in any readable format (see module docstring)."""
    fmt = detect_format(text)
    if fmt == "empty":
        raise AvatarkitError(f"{where} is empty; {_REMAKE}")
    if fmt in ("rhubarb", "tsv", "azure"):
        raise AvatarkitError(
            f"{where} is a {fmt} timeline, which holds one mouth shape per cue and no viseme "
            f"weights; the preview needs weights: {_REMAKE}")
    if fmt == "unknown":
        raise AvatarkitError(f"{where} is not a viseme timeline avatarkit can read (formats: "
                             f"{', '.join(READABLE)}); {_REMAKE}")
    if fmt == "live":
        lines = [ln for ln in text.splitlines() if ln.strip()]
        try:
            items = [json.loads(ln) for ln in lines]
        except ValueError as exc:
            raise AvatarkitError(f"{where}: a line is not JSON ({exc}); {_REMAKE}") from exc
        items = [e for e in items if isinstance(e, dict) and e.get("type", "viseme") == "viseme"]
        return WeightTrack.from_events(_events(items, where), None, where)
    doc = json.loads(text)
    if fmt == "oculus":
        return _from_oculus(doc, where)
    return WeightTrack.from_events(_events(doc["events"], where), doc.get("duration_ms"), where)


def read_timeline(path: str | Path) -> WeightTrack:
    """Load a timeline file; AvatarkitError names the file and what to do when it fails."""
    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise AvatarkitError(f"timeline {path} does not exist; {_REMAKE}") from None
    except UnicodeDecodeError:
        raise AvatarkitError(f"timeline {path.name} is not a viseme timeline avatarkit can read "
                             f"(not text: a timeline is JSON or JSON Lines); {_REMAKE}") from None
    except OSError as exc:
        raise AvatarkitError(f"could not read timeline {path}: {exc.strerror or exc}") from exc
    return parse_timeline(text, f"timeline {path.name}")
