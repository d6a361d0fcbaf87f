"""Timeline -> the formats other tools speak: live events, Rhubarb, Oculus/Meta, Azure.

Mappings from the canonical 12 classes are tables here; Oculus and Azure are rebuilt from
the phonemes (their sets are finer than ours), so nothing is lost by going through 12.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from avatarkit.errors import AvatarkitError
from avatarkit.visemes.coarticulation import Frame
from avatarkit.visemes.phoneme_tables import OCULUS_VISEMES
from avatarkit.visemes.phonemes import is_marker, lookup
from avatarkit.visemes.timeline import Timeline

#: Canonical class -> Rhubarb Lip Sync mouth shape (A–H, X = idle).
RHUBARB_SHAPES: dict[str, str] = {
    "Rest": "X", "MBP": "A", "CH": "B", "TH": "B", "E": "C", "AI": "D", "O": "E", "R": "E",
    "U": "F", "WQ": "F", "FV": "G", "L": "H",
}
#: Rhubarb's shortest cue; shorter runs merge into a neighbour as Rhubarb itself does.
RHUBARB_MIN_CUE_MS = 40.0

FORMATS: tuple[str, ...] = ("json", "live", "rhubarb", "tsv", "oculus", "azure")


def live_events(timeline: Timeline) -> list[dict[str, Any]]:
    """Messages in the live wire contract: `{"type": "viseme", "pts_ms", "weights"}`."""
    return [{"type": "viseme", "pts_ms": f.pts_ms, "weights": f.weights} for f in timeline.frames]


def rhubarb_cues(timeline: Timeline) -> list[tuple[float, float, str]]:
    """Runs of the dominant shape as (start_s, end_s, shape), short runs merged."""
    cues: list[list[Any]] = []
    step = 1000.0 / timeline.fps
    for f in timeline.frames:
        shape = RHUBARB_SHAPES[f.dominant()]
        if cues and cues[-1][2] == shape:
            cues[-1][1] = f.pts_ms + step
        else:
            cues.append([float(f.pts_ms), f.pts_ms + step, shape])
    if cues:
        cues[-1][1] = max(timeline.duration_ms, cues[-1][0])
    merged: list[list[Any]] = []
    for cue in cues:
        if merged and cue[1] - cue[0] < RHUBARB_MIN_CUE_MS and cue[2] != "A":
            merged[-1][1] = cue[1]  # short non-closure runs join the previous cue
        elif merged and merged[-1][2] == cue[2]:
            merged[-1][1] = cue[1]
        else:
            merged.append(cue)
    return [(round(s / 1000, 3), round(e / 1000, 3), v) for s, e, v in merged]


def rhubarb_json(timeline: Timeline, sound_file: str = "") -> dict[str, Any]:
    """Rhubarb Lip Sync's JSON export shape (`metadata` + `mouthCues`)."""
    return {
        "metadata": {"soundFile": sound_file, "duration": round(timeline.duration_ms / 1000, 3)},
        "mouthCues": [{"start": s, "end": e, "value": v} for s, e, v in rhubarb_cues(timeline)],
    }


def rhubarb_tsv(timeline: Timeline) -> str:
    """Rhubarb's TSV export: `start<TAB>shape` per cue, then the end time with X."""
    cues = rhubarb_cues(timeline)
    lines = [f"{s:.2f}\t{v}" for s, _, v in cues]
    if cues:
        lines.append(f"{cues[-1][1]:.2f}\tX")
    return "\n".join(lines) + "\n"


def oculus_frames(timeline: Timeline) -> list[Frame]:
    """Per-frame weights over the Oculus/Meta 15 visemes (coarticulated like ours).

    Each class weight is split among the Oculus visemes of the phonemes that carry that
    class at that moment, so `CH` over /s/ becomes `SS` and `L` over /t/ becomes `DD`.
    """
    from avatarkit.visemes.phonemes import to_segments

    segments = to_segments(timeline.phonemes)
    oculus_of = []
    for s in segments:
        ph = timeline.phonemes[s.phoneme_index]
        info = lookup(ph.symbol).info
        oculus_of.append(info.oculus if info.viseme == s.viseme else _OCULUS_OF_CLASS[s.viseme])
    out: list[Frame] = []
    j = 0
    for f in timeline.frames:
        while j + 1 < len(segments) and segments[j].end_ms <= f.pts_ms:
            j += 1
        weights: dict[str, float] = {}
        for cls, w in f.weights.items():
            name = _OCULUS_OF_CLASS[cls]
            # the segment nearest in time that shows this class decides the finer name
            for k in (j, j - 1, j + 1, j - 2, j + 2):
                if 0 <= k < len(segments) and segments[k].viseme == cls:
                    name = oculus_of[k]
                    break
            weights[name] = round(weights.get(name, 0.0) + w, 3)
        out.append(replace(f, weights=weights))
    return out


_OCULUS_OF_CLASS: dict[str, str] = {
    "Rest": "sil", "AI": "aa", "E": "E", "U": "ou", "O": "oh", "MBP": "PP", "FV": "FF",
    "L": "nn", "WQ": "ou", "R": "RR", "CH": "CH", "TH": "TH",
}


def oculus_json(timeline: Timeline) -> dict[str, Any]:
    """`{"fps", "visemes": [15 names], "frames": [{"pts_ms", "weights"}]}` for OVRLipSync rigs."""
    return {
        "fps": timeline.fps,
        "duration_ms": round(timeline.duration_ms, 1),
        "visemes": list(OCULUS_VISEMES),
        "frames": [{"pts_ms": f.pts_ms, "weights": f.weights} for f in oculus_frames(timeline)],
    }


def azure_events(timeline: Timeline) -> list[dict[str, int]]:
    """Azure Speech `VisemeReceived`-style events: audio offset (ms) and viseme ID 0–21."""
    events: list[dict[str, int]] = [{"audio_offset_ms": 0, "viseme_id": 0}]
    for p in timeline.phonemes:
        if is_marker(p.symbol):
            continue
        vid = lookup(p.symbol).info.azure
        if events[-1]["viseme_id"] == vid:
            continue
        if events[-1]["audio_offset_ms"] == int(round(p.start_ms)):
            events.pop()  # a change at the same instant replaces the previous event
        events.append({"audio_offset_ms": int(round(p.start_ms)), "viseme_id": vid})
    if events[-1]["viseme_id"] != 0:
        events.append({"audio_offset_ms": int(round(timeline.duration_ms)), "viseme_id": 0})
    return events


def _dump(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"


#: Format -> writer of (timeline, the sound file's name or "").
_WRITERS: dict[str, Callable[[Timeline, str], str]] = {
    "json": lambda t, _: _dump(t.to_dict()),
    "live": lambda t, _: "".join(_dump(e) for e in live_events(t)),
    "rhubarb": lambda t, sound: json.dumps(rhubarb_json(t, sound), indent=2) + "\n",
    "tsv": lambda t, _: rhubarb_tsv(t),
    "oculus": lambda t, _: _dump(oculus_json(t)),
    "azure": lambda t, _: _dump({"visemes": azure_events(t)}),
}


def export(timeline: Timeline, fmt: str, *, sound_file: str = "") -> str:
    """Render a timeline in one of `FORMATS` as text ready to write to a file
    (`sound_file`: the audio it belongs to, for formats that name it, as Rhubarb's does)."""
    writer = _WRITERS.get(fmt.lower())
    if writer is None:
        raise AvatarkitError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    return writer(timeline, sound_file)
