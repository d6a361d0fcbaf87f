"""Decode an avatarkit MP4 to one RGB array (the renderer keeps the whole idle loop)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from avatarkit.errors import AvatarkitError
from avatarkit.idle.encode import read_frames


def read_video(path: str | Path) -> np.ndarray:
    """(frames, h, w, 3) uint8 RGB of a video file; AvatarkitError when it cannot be read."""
    frames = list(read_frames(path))
    if not frames:
        raise AvatarkitError(f"could not read {path}: the video is empty or truncated")
    return np.stack(frames)
