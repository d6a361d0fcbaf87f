"""track.json: where the mouth ROI sits in every idle-loop frame.

Each frame has a 2x3 affine [a, b, tx, c, d, ty] mapping photo coordinates to frame
coordinates (x' = a x + b y + tx, y' = c x + d y + ty); a client transforms its mouth
overlay by it so the overlay stays glued to the moving head.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatarkit.errors import AvatarkitError
from avatarkit.mouth.roi import Roi

TRACK_JSON = "track.json"


@dataclass(frozen=True)
class Track:
    """Per-frame affine transforms of the mouth ROI."""

    fps: float
    roi: Roi
    transforms: np.ndarray  # (frames, 2, 3) float64

    @property
    def frames(self) -> int:
        return len(self.transforms)

    def apply(self, frame: int, points: np.ndarray) -> np.ndarray:
        """Photo points (n, 2) to their position in `frame` (wraps around the loop)."""
        m = self.transforms[frame % self.frames]
        return points @ m[:, :2].T + m[:, 2]

    def to_json(self) -> dict:
        return {
            "fps": self.fps,
            "frames": self.frames,
            "roi": self.roi.as_dict(),
            "transforms": [[round(float(v), 5) for v in m.reshape(-1)] for m in self.transforms],
        }

    def write(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), separators=(",", ":")))


def fit_affine(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares 2x3 affine taking src points (n, 2) to dst points (n, 2)."""
    a = np.hstack([src, np.ones((len(src), 1))])
    sol, *_ = np.linalg.lstsq(a, dst, rcond=None)
    return sol.T


def roi_samples(roi: Roi, n: int = 5) -> np.ndarray:
    """An n x n grid of points over the ROI, the points the track's affine is fitted to."""
    xs = np.linspace(roi.x, roi.x + roi.w, n)
    ys = np.linspace(roi.y, roi.y + roi.h, n)
    gx, gy = np.meshgrid(xs, ys)
    return np.column_stack([gx.ravel(), gy.ravel()])


_REBUILD = "rebuild the avatar with `avatarkit build`"


def read_track(path: str | Path) -> Track:
    """Load a track.json written by `Track.write` (the renderer's input)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
        transforms = np.asarray(doc["transforms"], dtype=np.float64).reshape(-1, 2, 3)
        roi = Roi(**{k: int(doc["roi"][k]) for k in ("x", "y", "w", "h")})
        fps = float(doc["fps"])
    except OSError as exc:
        raise AvatarkitError(f"could not read {path}: {exc.strerror or exc}") from exc
    except (ValueError, KeyError, TypeError) as exc:
        detail = f"no {exc} field" if isinstance(exc, KeyError) else str(exc)
        raise AvatarkitError(f"{path} is damaged ({detail}) - {_REBUILD}") from exc
    if len(transforms) != int(doc.get("frames", len(transforms))):
        raise AvatarkitError(f"{path} is damaged (its frame count does not match its "
                             f"transforms) - {_REBUILD}")
    return Track(fps=fps, roi=roi, transforms=transforms)
