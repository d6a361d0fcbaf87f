"""The idle-loop stage: photo + face + mouth ROI in, idle.mp4 + poster + track.json out.

A recipe: decide how the person can move (over a separated background, or head only when
the photo does not allow it), draw the motion curves, then render each frame as one warp of
the (blinking) photo and stream it to the encoder.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
from PIL import Image

from avatarkit.errors import AvatarkitWarning
from avatarkit.face import regions
from avatarkit.face.landmarks import Face
from avatarkit.idle.blink import EyeLids, blink_image, eye_lids
from avatarkit.idle.curves import MotionCurves, motion_curves
from avatarkit.idle.encode import H264Writer, pad_even
from avatarkit.idle.features import FaceParts, face_parts
from avatarkit.idle.options import IdleOptions
from avatarkit.idle.segment import person_layers
from avatarkit.idle.track import TRACK_JSON, Track, fit_affine, roi_samples
from avatarkit.idle.warp import HeadRig, Warper, body_rig, forward_points, head_only_rig
from avatarkit.mouth.roi import Roi

IDLE_MP4, POSTER_PNG = "idle.mp4", "idle_poster.png"
IDLE_FIELDS = tuple(f.name for f in fields(IdleOptions))
MIN_NECK = 0.45  # face heights of photo needed below the chin for neck and shoulders


@dataclass
class IdleLoop:
    """A planned idle loop: frames are rendered on demand (the loop never sits in memory)."""

    photo: np.ndarray  # (h, w, 3) uint8
    options: IdleOptions
    curves: MotionCurves
    rig: HeadRig
    warper: Warper
    lids: list[EyeLids]
    track: Track
    mode: str  # "parallax" (person over a still background) or "head-only" (fallback)
    notes: list[str] = field(default_factory=list)  # fallbacks taken, one line each
    parts: FaceParts | None = None  # gaze and brow patches (None: the eyes stay put)
    _source: tuple[tuple, np.ndarray] | None = field(default=None, repr=False)

    @property
    def frames(self) -> int:
        return self.options.frames

    def field(self, i: int) -> np.ndarray:
        """Coarse backward displacement of frame i."""
        c = self.curves
        return self.rig.field(float(c.roll_deg[i]), float(c.nod[i]), float(c.breath[i]))

    def source(self, i: int) -> np.ndarray:
        """The photo with frame i's gaze, brow and lids, before the head moves.

        Consecutive frames of one fixation share the same array, so the warper's cached
        premultiplied layer is reused instead of rebuilt every frame."""
        c = self.curves
        key = (float(c.gaze[i, 0]), float(c.gaze[i, 1]), float(c.brow[i]), float(c.blink[i]))
        if self._source is not None and self._source[0] == key:
            return self._source[1]
        image = self.photo
        if self.parts is not None:
            image = self.parts.image(image, (key[0], key[1]), key[2])
        image = blink_image(image, self.lids, key[3])
        self._source = (key, image)
        return image

    def frame(self, i: int) -> np.ndarray:
        """Frame i as RGB uint8 at the photo's size."""
        return self.warper.render(self.source(i), self.field(i))

    def iter_frames(self) -> Iterator[np.ndarray]:
        for i in range(self.frames):
            yield self.frame(i)

    def describe(self) -> dict:
        """The idle section of avatar.json: files, timing, size and how the loop moves."""
        h, w = self.photo.shape[:2]
        blink = self.curves.blink
        return {
            "video": IDLE_MP4, "poster": POSTER_PNG, "track": TRACK_JSON,
            "fps": self.options.fps, "frames": self.frames,
            "seconds": round(self.frames / self.options.fps, 4),
            "size": {"w": w + w % 2, "h": h + h % 2},
            "mode": self.mode,
            "blink_frames": [int(i) for i in np.flatnonzero(blink >= 1.0)],
        }

    def write(self, folder: str | Path) -> list[str]:
        """Write idle.mp4, idle_poster.png and track.json into `folder`; return their names."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        h, w = self.photo.shape[:2]
        opts = self.options
        first = None
        with H264Writer(folder / IDLE_MP4, (w, h), opts.fps, frames=self.frames, crf=opts.crf,
                        preset=opts.preset) as writer:
            for i, frame in enumerate(self.iter_frames()):
                if i == 0:
                    first = frame
                writer.write(frame)
        Image.fromarray(pad_even(first)).save(folder / POSTER_PNG, compress_level=3)
        self.track.write(folder / TRACK_JSON)
        return [IDLE_MP4, POSTER_PNG, TRACK_JSON]


def _plan_track(loop_fields: list[np.ndarray], size: tuple[int, int], roi: Roi,
                fps: int) -> Track:
    samples = roi_samples(roi)
    transforms = np.stack(
        [fit_affine(samples, forward_points(f, size, samples)) for f in loop_fields]
    )
    return Track(fps=float(fps), roi=roi, transforms=transforms)


def make_idle_loop(rgb: np.ndarray, face: Face, roi: Roi,
                   options: IdleOptions | None = None) -> IdleLoop:
    """Plan the idle loop of a photo: how it moves, where the mouth goes, what falls back."""
    if not isinstance(options, IdleOptions):  # None, or another options object's fields
        options = IdleOptions(**{k: getattr(options, k) for k in IDLE_FIELDS
                                 if options is not None and hasattr(options, k)})
    h, w = rgb.shape[:2]
    size = (w, h)
    curves = motion_curves(options)
    notes: list[str] = []
    chin_y = float(face.points[regions.CHIN, 1])
    face_h = chin_y - face.bbox[1]
    rig = body_rig(face, roi, size)
    layers, why = None, ""
    if options.motion > 0:
        if h - chin_y < MIN_NECK * face_h:
            why = "the photo is cut off at the shoulders"
        else:
            layers, why = person_layers(rgb, face)
    if layers is None:
        rig = head_only_rig(face, size)
        warper = Warper(size)
        mode = "head-only"
        if why:
            msg = f"idle loop: {why}; moving the head only (no parallax or breathing)"
            notes.append(msg)
            warnings.warn(msg, AvatarkitWarning, stacklevel=2)
    else:
        warper = Warper(size, layers.alpha, layers.background)
        mode = "parallax"
    fields = [rig.field(float(curves.roll_deg[i]), float(curves.nod[i]), float(curves.breath[i]))
              for i in range(options.frames)]
    track = _plan_track(fields, size, roi, options.fps)
    lids = eye_lids(face, size)
    parts = face_parts(face, lids, size)
    return IdleLoop(rgb, options, curves, rig, warper, lids, track, mode, notes, parts)
