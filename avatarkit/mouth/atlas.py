"""Pack per-viseme RGBA sprites into the 4x4 atlas grid of the client contract."""

from __future__ import annotations

import numpy as np

from avatarkit.mouth.roi import Roi
from avatarkit.visemes.classes import VISEME_CLASSES

ATLAS_COLS = ATLAS_ROWS = 4


def pack_atlas(sprites: dict[str, np.ndarray], roi: Roi,
               mask_name: str = "mask_mouth.png") -> tuple[np.ndarray, dict]:
    """Cells in canonical class order, row by row; unused cells stay transparent."""
    h, w = roi.h, roi.w
    atlas = np.zeros((ATLAS_ROWS * h, ATLAS_COLS * w, 4), dtype=np.uint8)
    for index, name in enumerate(VISEME_CLASSES):
        row, col = divmod(index, ATLAS_COLS)
        atlas[row * h:(row + 1) * h, col * w:(col + 1) * w] = sprites[name]
    meta = {
        "grid": {"cols": ATLAS_COLS, "rows": ATLAS_ROWS},
        "cell": {"w": w, "h": h},
        "classes": list(VISEME_CLASSES),
        "mask": mask_name,
        "roi": roi.as_dict(),
        "cells": {name: {"col": i % ATLAS_COLS, "row": i // ATLAS_COLS}
                  for i, name in enumerate(VISEME_CLASSES)},
    }
    return atlas, meta


def unpack_atlas(atlas: np.ndarray, meta: dict) -> dict[str, np.ndarray]:
    """The inverse of pack_atlas: class name to its RGBA cell."""
    w, h, cols = meta["cell"]["w"], meta["cell"]["h"], meta["grid"]["cols"]
    cells = {}
    for index, name in enumerate(meta["classes"]):
        row, col = divmod(index, cols)
        cells[name] = atlas[row * h:(row + 1) * h, col * w:(col + 1) * w]
    return cells
