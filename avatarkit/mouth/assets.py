"""The mouth asset set of one avatar: ROI, feathered mask, mesh deformation, interior texture
and the sprite atlas, all from one mouth model so the sprite and mesh variants agree."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from avatarkit.face.landmarks import Face
from avatarkit.mouth.atlas import pack_atlas
from avatarkit.mouth.roi import Roi, mouth_roi
from avatarkit.visemes.classes import VISEME_CLASSES

ATLAS_PNG, ATLAS_JSON = "atlas.png", "atlas.json"
MESHDEF_JSON, MASK_PNG, INTERIOR_PNG = "meshdef.json", "mask_mouth.png", "mouth_interior.png"


@dataclass
class MouthAssets:
    """Everything the lip-sync clients need about the mouth, ready to write."""

    roi: Roi
    mask: np.ndarray  # (h, w) uint8 alpha, zero on the ROI border
    interior: np.ndarray  # (h, w, 4) uint8 RGBA mouth-interior texture (mesh variant)
    sprites: dict[str, np.ndarray]  # class -> (h, w, 4) uint8 RGBA, alpha = mask
    meshdef: dict  # the meshdef.json document
    landmarks_used: dict[str, list[int]] = field(default_factory=dict)

    def write(self, folder: Path) -> list[str]:
        """Write the mouth files into `folder`; returns the names written."""
        atlas, atlas_meta = pack_atlas(self.sprites, self.roi, MASK_PNG)
        Image.fromarray(atlas, "RGBA").save(folder / ATLAS_PNG, optimize=False, compress_level=3)
        (folder / ATLAS_JSON).write_text(json.dumps(atlas_meta, indent=1))
        (folder / MESHDEF_JSON).write_text(json.dumps(self.meshdef))
        Image.fromarray(self.mask, "L").save(folder / MASK_PNG)
        Image.fromarray(self.interior, "RGBA").save(folder / INTERIOR_PNG)
        return [ATLAS_PNG, ATLAS_JSON, MESHDEF_JSON, MASK_PNG, INTERIOR_PNG]


def make_mouth_assets(rgb: np.ndarray, face: Face) -> MouthAssets:
    """Build the mouth asset set for the face in an RGB uint8 photo."""
    roi = mouth_roi(face, (rgb.shape[1], rgb.shape[0]))
    patch = roi.crop(rgb)
    mask = np.zeros((roi.h, roi.w), np.uint8)  # placeholder until the mouth model lands
    sprite = np.dstack([patch, mask])
    sprites = {name: sprite.copy() for name in VISEME_CLASSES}
    meshdef = {"grid": {"cols": 16, "rows": 12}, "roi": roi.as_dict(), "points": [],
               "targets": {}, "interior": INTERIOR_PNG}
    return MouthAssets(roi, mask, np.zeros((roi.h, roi.w, 4), np.uint8), sprites, meshdef)
