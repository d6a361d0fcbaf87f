"""An avatar folder loaded for rendering: every asset a client uses, checked once.

The renderer (preview, server) reads the files a client reads - nothing from the build's
memory - so what it draws is what a client following the README contracts would draw.
Idle-loop frames are decoded once, on first use, and kept on the `Avatar` object.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from avatarkit.errors import AvatarkitError
from avatarkit.idle.track import Track, read_track
from avatarkit.mouth.atlas import unpack_atlas
from avatarkit.mouth.place import roi_to_frame
from avatarkit.mouth.roi import Roi
from avatarkit.render.decode import read_video
from avatarkit.visemes.classes import VISEME_CLASSES

AVATAR_JSON = "avatar.json"


@dataclass(frozen=True)
class MeshDef:
    """meshdef.json as arrays: control points and per-class offsets, in ROI pixels."""

    cols: int
    rows: int
    points: np.ndarray  # (rows*cols, 2) float64, row-major
    targets: np.ndarray  # (len(VISEME_CLASSES), rows*cols, 2) float64, canonical class order
    upper_row: int  # grid row of the upper inner lip (the top of the opening)
    lower_row: int  # grid row of the lower inner lip (the bottom of the opening)
    corner_cols: tuple[int, int]  # grid columns at the mouth corners

    def offsets(self, weights: np.ndarray) -> np.ndarray:
        """(rows*cols, 2) offsets for viseme weights in canonical class order."""
        return np.tensordot(np.asarray(weights, np.float64), self.targets, axes=1)

    def opening(self, offsets: np.ndarray) -> np.ndarray:
        """Polygon where the lips part (ROI pixels): upper inner row, then lower inner row back."""
        p = (self.points + offsets).reshape(self.rows, self.cols, 2)
        c0, c1 = self.corner_cols
        return np.concatenate([p[self.upper_row, c0:c1 + 1], p[self.lower_row, c0:c1 + 1][::-1]])

    def centre_gap(self, offsets: np.ndarray) -> float:
        """Mean height of the opening over the middle third of the mouth, in ROI pixels."""
        p = (self.points + offsets).reshape(self.rows, self.cols, 2)
        c0, c1 = self.corner_cols
        mid = slice(c0 + (c1 - c0) // 3, c1 - (c1 - c0) // 3 + 1)
        return float(np.mean(p[self.lower_row, mid, 1] - p[self.upper_row, mid, 1]))

    @property
    def mouth_width(self) -> float:
        """Distance between the corner columns, in ROI pixels."""
        p = self.points.reshape(self.rows, self.cols, 2)
        return float(p[self.upper_row, self.corner_cols[1], 0]
                     - p[self.upper_row, self.corner_cols[0], 0])


@dataclass(frozen=True)
class InteriorLayer:
    """One cell of meshdef.json's optional `interior_layers` (see README's contract)."""

    name: str
    rgba: np.ndarray  # (roi.h, roi.w, 4) uint8
    jaw: bool  # moves with the lower inner lip row ("jaw"), else fixed in the ROI ("skull")
    classes: np.ndarray  # (len(VISEME_CLASSES),) how much each class shows it


@dataclass(frozen=True)
class Seam:
    """meshdef.json's optional `seam`: the dark line where closed lips meet (mouth/seam.py)."""

    rgb: np.ndarray  # (3,) float32
    strength: float
    sigma_px: float
    classes: np.ndarray  # (len(VISEME_CLASSES),) how much each class draws it
    shade_below: float  # a narrowing opening is shaded under this fraction of the photo's gap
    min_photo_gap_px: float  # columns where the photo's lips are closer are not shaded


@dataclass
class Avatar:
    """The assets of one avatar folder, ready to draw with (see `load_avatar`)."""

    folder: Path
    manifest: dict[str, Any]
    roi: Roi  # mouth ROI in photo (working-frame) pixels
    track: Track  # per idle frame: photo coordinates -> frame coordinates
    mask: np.ndarray  # (roi.h, roi.w) uint8 feathered alpha, zero on the border
    cells: dict[str, np.ndarray]  # class -> (roi.h, roi.w, 4) uint8 RGBA sprite
    mesh: MeshDef
    interior: np.ndarray  # (roi.h, roi.w, 4) uint8 RGBA mouth-interior texture
    landmarks: np.ndarray  # (478, 2) photo landmarks from avatar.json
    video: Path  # idle.mp4
    interior_layers: tuple[InteriorLayer, ...] = ()  # optional, drawn over `interior`
    seam: Seam | None = None  # optional, drawn where the closing classes meet the lips
    _frames: np.ndarray | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def fps(self) -> float:
        """The idle loop's frame rate: the preview is written at this rate."""
        return self.track.fps

    @property
    def loop_frames(self) -> int:
        return self.track.frames

    @cached_property
    def frames(self) -> np.ndarray:
        """(loop_frames, h, w, 3) uint8 idle-loop frames, decoded once (read-only)."""
        try:
            frames = read_video(self.video)  # a fresh array: safe to freeze
        except AvatarkitError as exc:
            raise AvatarkitError(f"{self.folder.name}: {exc} - rebuild the avatar with "
                                 "`avatarkit build`") from exc
        if len(frames) != self.track.frames:
            raise AvatarkitError(
                f"{self.folder.name}: {self.video.name} has {len(frames)} frames but track.json "
                f"has {self.track.frames} - rebuild the avatar with `avatarkit build`")
        frames.setflags(write=False)
        return frames

    @property
    def size(self) -> tuple[int, int]:
        """(w, h) of the idle frames (and of the preview)."""
        h, w = self.frames.shape[1:3]
        return w, h

    def roi_affine(self, index: int) -> np.ndarray:
        """2x3 affine from ROI-local pixels to pixels of idle frame `index` (wraps around)."""
        return roi_to_frame(self.track.transforms[index % self.track.frames], self.roi.x,
                            self.roi.y)


@contextmanager
def _reading(folder: Path, name: str, damaged: tuple[type[Exception], ...]) -> Iterator[None]:
    """Turn a missing or unreadable asset file into the user's one-line error."""
    try:
        yield
    except FileNotFoundError:
        raise AvatarkitError(f"{folder}: {name} is missing - rebuild the avatar with "
                             "`avatarkit build`") from None
    except damaged as exc:
        raise AvatarkitError(f"{folder}: {name} is damaged ({exc}) - rebuild the avatar with "
                             "`avatarkit build`") from exc


def _read_json(folder: Path, name: str) -> Any:
    with _reading(folder, name, (OSError, UnicodeDecodeError, ValueError)):
        return json.loads((folder / name).read_text("utf-8"))


def _read_png(folder: Path, name: str, mode: str, shape: tuple[int, int]) -> np.ndarray:
    with _reading(folder, name, (OSError, UnidentifiedImageError, ValueError)), \
            Image.open(folder / name) as img:
        arr = np.asarray(img.convert(mode))
    if arr.shape[:2] != shape:
        raise AvatarkitError(f"{folder}: {name} is {arr.shape[1]}x{arr.shape[0]}, expected "
                             f"{shape[1]}x{shape[0]} - rebuild the avatar with `avatarkit build`")
    return arr


def _meshdef(folder: Path, doc: dict, roi: Roi) -> MeshDef:
    try:
        cols, rows = int(doc["grid"]["cols"]), int(doc["grid"]["rows"])
        points = np.asarray(doc["points"], np.float64).reshape(rows * cols, 2)
        targets = np.stack([np.asarray(doc["targets"][c], np.float64).reshape(rows * cols, 2)
                            for c in VISEME_CLASSES])
        opening = doc["opening"]
        mesh = MeshDef(cols, rows, points, targets, int(opening["upper_row"]),
                       int(opening["lower_row"]), tuple(int(c) for c in opening["cols"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise AvatarkitError(f"{folder}: meshdef.json is not a valid mesh definition ({exc!r}) - "
                             "rebuild the avatar with `avatarkit build`") from exc
    if doc.get("roi") and Roi(**doc["roi"]) != roi:
        raise AvatarkitError(f"{folder}: meshdef.json and avatar.json disagree on the mouth ROI")
    return mesh


def _interior_layers(folder: Path, doc: dict, shape: tuple[int, int]) -> tuple[
        InteriorLayer, ...]:
    """meshdef.json's optional interior layers (older avatars have none)."""
    spec = doc.get("interior_layers")
    if not spec:
        return ()
    try:
        layers = spec["layers"]
        texture = _read_png(folder, spec["file"], "RGBA", (shape[0] * len(layers), shape[1]))
        return tuple(InteriorLayer(
            name=str(layer["name"]),
            rgba=np.ascontiguousarray(texture[int(layer["cell"]) * shape[0]:
                                              (int(layer["cell"]) + 1) * shape[0]]),
            jaw=layer["follows"] == "jaw",
            classes=np.array([float(layer["classes"].get(c, 0.0)) for c in VISEME_CLASSES]))
            for layer in layers)
    except (KeyError, TypeError, ValueError) as exc:
        raise AvatarkitError(f"{folder}: meshdef.json has invalid interior layers ({exc!r}) - "
                             "rebuild the avatar with `avatarkit build`") from exc


def _seam(folder: Path, doc: dict) -> Seam | None:
    """meshdef.json's optional lip seam (older avatars have none)."""
    spec = doc.get("seam")
    if not spec:
        return None
    try:
        return Seam(rgb=np.asarray(spec["rgb"], np.float32).reshape(3),
                    strength=float(spec["strength"]), sigma_px=float(spec["sigma_px"]),
                    classes=np.array([float(spec["classes"].get(c, 0.0))
                                      for c in VISEME_CLASSES]),
                    shade_below=float(spec.get("shade_below", 0.0)),
                    min_photo_gap_px=float(spec.get("min_photo_gap_px", 0.0)))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise AvatarkitError(f"{folder}: meshdef.json has an invalid seam ({exc!r}) - "
                             "rebuild the avatar with `avatarkit build`") from exc


def load_avatar(folder: str | Path) -> Avatar:
    """Load and check an avatar folder made by `avatarkit build`.

    Raises AvatarkitError naming the folder and the file when it is not an avatar or a file
    is missing or damaged. The idle video is decoded lazily (`Avatar.frames`).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise AvatarkitError(f"{folder} is not a folder - pass an avatar folder made by "
                             "`avatarkit build PHOTO -o OUT` (e.g. out/hero)")
    if not (folder / AVATAR_JSON).is_file():
        raise AvatarkitError(f"{folder} is not an avatar folder (no {AVATAR_JSON}) - make one "
                             "with `avatarkit build PHOTO -o OUT`")
    manifest = _read_json(folder, AVATAR_JSON)
    try:
        roi = Roi(**{k: int(manifest["roi"][k]) for k in ("x", "y", "w", "h")})
        classes = tuple(manifest["classes"])
        idle = manifest.get("idle") or {}
        video = folder / idle.get("video", "idle.mp4")
        track_name = idle.get("track", "track.json")
        points = np.asarray(manifest["landmarks"]["points"], np.float64)
    except (KeyError, TypeError, ValueError) as exc:
        raise AvatarkitError(f"{folder}: avatar.json is incomplete ({exc!r}) - rebuild the "
                             "avatar with `avatarkit build`") from exc
    if classes != VISEME_CLASSES:
        raise AvatarkitError(f"{folder}: avatar.json lists classes {list(classes)}, this "
                             f"avatarkit renders {list(VISEME_CLASSES)}")
    if not (folder / track_name).is_file():
        raise AvatarkitError(f"{folder}: {track_name} is missing - rebuild the avatar with "
                             "`avatarkit build`")
    if not video.is_file():
        raise AvatarkitError(f"{folder}: {video.name} is missing - rebuild the avatar with "
                             "`avatarkit build`")
    track = read_track(folder / track_name)
    if track.frames == 0 or track.fps <= 0:
        raise AvatarkitError(f"{folder}: {track_name} has no frames")
    shape = (roi.h, roi.w)
    meta = _read_json(folder, "atlas.json")
    try:
        atlas_shape = (int(meta["grid"]["rows"]) * roi.h, int(meta["grid"]["cols"]) * roi.w)
    except (KeyError, TypeError, ValueError) as exc:
        raise AvatarkitError(f"{folder}: atlas.json is not a valid atlas ({exc!r}) - rebuild "
                             "the avatar with `avatarkit build`") from exc
    atlas = _read_png(folder, "atlas.png", "RGBA", atlas_shape)
    try:
        cells = {k: np.ascontiguousarray(v) for k, v in unpack_atlas(atlas, meta).items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise AvatarkitError(f"{folder}: atlas.json is not a valid atlas ({exc!r})") from exc
    missing = [c for c in VISEME_CLASSES if c not in cells]
    if missing:
        raise AvatarkitError(f"{folder}: the atlas has no cell for {', '.join(missing)}")
    meshdoc = _read_json(folder, "meshdef.json")
    mesh = _meshdef(folder, meshdoc, roi)
    mask = _read_png(folder, meta.get("mask", "mask_mouth.png"), "L", shape)
    interior = _read_png(folder, meshdoc.get("interior", "mouth_interior.png"), "RGBA", shape)
    return Avatar(folder=folder, manifest=manifest, roi=roi, track=track, mask=mask,
                  cells=cells, mesh=mesh, interior=interior, landmarks=points, video=video,
                  interior_layers=_interior_layers(folder, meshdoc, shape),
                  seam=_seam(folder, meshdoc))
