"""Shared helpers for the idle-loop tests: load a portrait, build and decode a loop once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from avatarkit.face.landmarks import Face, detect_faces
from avatarkit.idle import IdleLoop, IdleOptions, Track, make_idle_loop, read_frames, read_track
from avatarkit.mouth.roi import Roi, mouth_roi

ROOT = Path(__file__).resolve().parent.parent
HERO = ROOT / "examples" / "hero.jpg"
DATA = ROOT / "tests" / "data"


@dataclass
class Built:
    rgb: np.ndarray
    face: Face
    roi: Roi
    loop: IdleLoop
    folder: Path
    names: list[str]
    frames: np.ndarray  # decoded from idle.mp4
    track: Track


def load(path: Path, crop: tuple[int, int, int, int] | None = None) -> tuple[np.ndarray, Face]:
    img = Image.open(path).convert("RGB")
    if crop:
        img = img.crop(crop)
    rgb = np.asarray(img)
    return rgb, detect_faces(rgb)[0]


def build(rgb: np.ndarray, face: Face, folder: Path, options: IdleOptions) -> Built:
    roi = mouth_roi(face, (rgb.shape[1], rgb.shape[0]))
    loop = make_idle_loop(rgb, face, roi, options)
    names = loop.write(folder)
    frames = np.stack(list(read_frames(folder / "idle.mp4")))
    return Built(rgb, face, roi, loop, folder, names, frames, read_track(folder / "track.json"))
