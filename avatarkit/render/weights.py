"""Viseme weights over time, sampled at the video's frame times with a ramp in and out.

A timeline arrives at its own rate (60 fps from the viseme engine, anything from a file);
the video runs at the idle loop's rate. Weights are interpolated linearly between timeline
frames. Before the first and after the last timeline frame the edge weights are held and
faded towards `Rest` over `ramp_ms`, so the mouth eases from the idle mouth into speech and
back - placed outside the speech, so the ramp never delays a mouth shape against its sound.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from avatarkit.errors import AvatarkitError
from avatarkit.visemes.classes import VISEME_CLASSES
from avatarkit.visemes.timeline import Timeline

CLASS_INDEX = {name: i for i, name in enumerate(VISEME_CLASSES)}
REST = CLASS_INDEX["Rest"]


def rest_weights() -> np.ndarray:
    """All weight on `Rest` (the idle mouth)."""
    w = np.zeros(len(VISEME_CLASSES))
    w[REST] = 1.0
    return w


def weight_vector(weights: Mapping[str, float], where: str = "timeline") -> np.ndarray:
    """Sparse `{class: weight}` to a vector in canonical order, normalised to sum 1."""
    w = np.zeros(len(VISEME_CLASSES))
    for name, value in weights.items():
        index = CLASS_INDEX.get(name)
        if index is None:
            raise AvatarkitError(f"{where}: unknown viseme class {name!r}; the classes are "
                                 f"{', '.join(VISEME_CLASSES)}")
        w[index] += float(value)
    w = np.clip(w, 0.0, None)
    total = w.sum()
    return w / total if total > 1e-9 else rest_weights()


@dataclass(frozen=True)
class WeightTrack:
    """Viseme weights at known times: the renderer's view of a timeline."""

    pts_ms: np.ndarray  # (n,) increasing presentation times, ms from the audio's start
    weights: np.ndarray  # (n, len(VISEME_CLASSES)) rows summing to 1, canonical class order
    duration_ms: float  # length of the speech the timeline belongs to

    @classmethod
    def from_events(cls, events: Sequence[tuple[float, Mapping[str, float]]],
                    duration_ms: float | None = None, where: str = "timeline") -> WeightTrack:
        """From `(pts_ms, {class: weight})` pairs (sorted by time here)."""
        if not events:
            raise AvatarkitError(f"{where}: the timeline has no frames")
        events = sorted(events, key=lambda e: float(e[0]))
        pts = np.array([float(e[0]) for e in events])
        weights = np.stack([weight_vector(e[1], where) for e in events])
        if duration_ms is None:
            step = float(np.median(np.diff(pts))) if len(pts) > 1 else 0.0
            duration_ms = float(pts[-1] + step)
        return cls(pts, weights, float(max(duration_ms, pts[-1])))

    @classmethod
    def from_timeline(cls, timeline: Timeline) -> WeightTrack:
        """From the viseme engine's Timeline."""
        return cls.from_events([(f.pts_ms, f.weights) for f in timeline.frames],
                               timeline.duration_ms)

    def fitted(self, duration_ms: float) -> WeightTrack:
        """The same track for speech of another length: frames after `duration_ms` dropped;
        a longer duration leaves the mouth at `Rest` after the last frame (see `sample`)."""
        keep = self.pts_ms <= duration_ms
        keep[0] = True
        return WeightTrack(self.pts_ms[keep], self.weights[keep], float(duration_ms))

    def sample(self, times_ms: np.ndarray, ramp_ms: float = 80.0) -> np.ndarray:
        """(len(times_ms), classes) weights at those times (ms from the speech's start).

        Inside the timeline: linear interpolation. Before its first frame and after its last:
        the edge frame held and faded to `Rest` over `ramp_ms` (smoothstep)."""
        t = np.asarray(times_ms, np.float64)
        out = np.empty((len(t), self.weights.shape[1]))
        for k in range(self.weights.shape[1]):
            out[:, k] = np.interp(t, self.pts_ms, self.weights[:, k])
        before = np.clip((self.pts_ms[0] - t) / max(ramp_ms, 1e-6), 0.0, 1.0)
        after = np.clip((t - self.pts_ms[-1]) / max(ramp_ms, 1e-6), 0.0, 1.0)
        fade = np.maximum(before, after)
        rest = fade * fade * (3 - 2 * fade)  # 0 inside the timeline, 1 a ramp outside
        out *= (1.0 - rest)[:, None]
        out[:, REST] += rest
        return out


def class_openness(gaps: Sequence[float]) -> np.ndarray:
    """Per-class mouth opening relative to the widest class, from each class's lip gap."""
    g = np.asarray(gaps, np.float64)
    g = g - g[REST]
    top = g.max()
    return np.clip(g / top, -1.0, 1.0) if top > 1e-9 else np.zeros_like(g)


def open_weight(weights: np.ndarray, openness: np.ndarray) -> np.ndarray:
    """The timeline's open-mouth weight: sum over classes of weight x that class's openness."""
    return np.asarray(weights) @ openness
