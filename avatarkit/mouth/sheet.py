"""A labelled contact sheet of every viseme sprite composited on the face, for judging by eye."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from avatarkit.mouth.assets import MouthAssets
from avatarkit.mouth.sprites import composite
from avatarkit.visemes.classes import VISEME_CLASSES


def contact_sheet(rgb: np.ndarray, assets: MouthAssets, cell_width: int = 240,
                  columns: int = 6) -> Image.Image:
    """Each class composited on the photo, cropped around the ROI, in a labelled grid."""
    roi = assets.roi
    pad = roi.w // 4
    x0, y0 = max(0, roi.x - pad), max(0, roi.y - pad)
    x1, y1 = min(rgb.shape[1], roi.x + roi.w + pad), min(rgb.shape[0], roi.y + roi.h + pad // 2)
    cell_height = round(cell_width * (y1 - y0) / (x1 - x0))
    rows = -(-len(VISEME_CLASSES) // columns)
    sheet = Image.new("RGB", (columns * cell_width, rows * cell_height), "white")
    for i, name in enumerate(VISEME_CLASSES):
        frame = rgb.copy()
        frame[roi.y:roi.y + roi.h, roi.x:roi.x + roi.w] = composite(roi.crop(rgb),
                                                                     assets.sprites[name])
        cell = Image.fromarray(frame[y0:y1, x0:x1]).resize((cell_width, cell_height),
                                                           Image.LANCZOS)
        draw = ImageDraw.Draw(cell)
        draw.rectangle((0, 0, 8 * len(name) + 8, 16), fill=(0, 0, 0))
        draw.text((4, 2), name, fill=(255, 255, 255))
        sheet.paste(cell, ((i % columns) * cell_width, (i // columns) * cell_height))
    return sheet
