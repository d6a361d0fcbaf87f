"""A labelled contact sheet of every viseme, drawn by each variant on the idle loop's first
frame: the quickest way to judge an avatar's mouth shapes and to compare the variants."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from avatarkit.mouth.roi import Roi
from avatarkit.mouth.sheet import contact_sheet
from avatarkit.render.avatar import Avatar
from avatarkit.render.variants import VARIANTS, make_variant
from avatarkit.render.weights import CLASS_INDEX
from avatarkit.visemes.classes import VISEME_CLASSES

HEADER_PX = 22


@dataclass(frozen=True)
class _Rendered:
    """What `contact_sheet` reads: the ROI and one opaque ROI-sized RGBA image per class."""

    roi: Roi
    sprites: dict[str, np.ndarray]


def one_hot(name: str) -> np.ndarray:
    """All weight on one class."""
    w = np.zeros(len(VISEME_CLASSES))
    w[CLASS_INDEX[name]] = 1.0
    return w


def variant_sheet(avatar: Avatar, variants: tuple[str, ...] = tuple(VARIANTS),
                  cell_width: int = 160, columns: int = 6) -> Image.Image:
    """One block per variant (a header line, then every class composited on the face)."""
    frame = np.ascontiguousarray(avatar.frames[0])
    roi = avatar.roi
    blocks = []
    for name in variants:
        variant = make_variant(avatar, name)
        crops = {}
        for cls in VISEME_CLASSES:
            drawn = roi.crop(variant.draw(frame, 0, one_hot(cls)))
            crops[cls] = np.dstack([drawn, np.full(drawn.shape[:2], 255, np.uint8)])
        sheet = contact_sheet(frame, _Rendered(roi, crops), cell_width, columns)
        block = Image.new("RGB", (sheet.width, sheet.height + HEADER_PX), "white")
        ImageDraw.Draw(block).text((6, 5), f"{avatar.name}: {name} variant", fill=(0, 0, 0))
        block.paste(sheet, (0, HEADER_PX))
        blocks.append(block)
    out = Image.new("RGB", (blocks[0].width, sum(b.height for b in blocks)), "white")
    y = 0
    for block in blocks:
        out.paste(block, (0, y))
        y += block.height
    return out
