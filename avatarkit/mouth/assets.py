"""The mouth asset set of one avatar: ROI, feathered mask, mesh deformation, interior texture
and the sprite atlas, all from one mouth model so the sprite and mesh variants agree."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from avatarkit.face import regions
from avatarkit.face.landmarks import Face
from avatarkit.mouth import mesh
from avatarkit.mouth.atlas import pack_atlas
from avatarkit.mouth.interior import MouthLook, measure_look, polygon_alpha, render_interior
from avatarkit.mouth.mask import feathered_mask
from avatarkit.mouth.mesh import MouthGrid, build_grid
from avatarkit.mouth.roi import Roi, mouth_roi
from avatarkit.mouth.shapes import SHAPES, all_offsets
from avatarkit.mouth.sprites import render_mouth, to_sprite
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
    patch = np.ascontiguousarray(roi.crop(rgb))
    grid = build_grid(face, roi)
    look = measure_look(patch, grid)
    mask = feathered_mask(roi.w, roi.h)
    offsets = all_offsets(grid)
    sprites = {
        name: to_sprite(render_mouth(patch, grid, offsets[name], SHAPES[name], look), mask)
        for name in VISEME_CLASSES
    }
    interior = _interior_texture(patch, grid, offsets, look)
    meshdef = {
        "grid": {"cols": mesh.COLS, "rows": mesh.ROWS},
        "roi": roi.as_dict(),
        "points": np.round(grid.flat, 3).tolist(),
        "targets": {name: np.round(offsets[name].reshape(-1, 2), 3).tolist()
                    for name in VISEME_CLASSES},
        "interior": INTERIOR_PNG,
        "triangulation": "row-major points; each cell (c,r) is drawn as triangles "
                         "[(c,r),(c+1,r),(c+1,r+1)] and [(c,r),(c+1,r+1),(c,r+1)]",
        "opening": {"upper_row": mesh.ROW_UPPER_INNER, "lower_row": mesh.ROW_LOWER_INNER,
                    "cols": list(grid.corner_cols),
                    "note": "the interior texture shows inside the polygon of the deformed "
                            "upper row (left to right) and lower row (right to left)"},
        "rows": {"upper_outer_lip": mesh.ROW_UPPER_OUTER, "upper_inner_lip": mesh.ROW_UPPER_INNER,
                 "lower_inner_lip": mesh.ROW_LOWER_INNER, "lower_outer_lip": mesh.ROW_LOWER_OUTER,
                 "jaw": mesh.ROW_JAW},
    }
    used = {
        "lips_outer_upper": list(regions.LIPS_OUTER_UPPER),
        "lips_outer_lower": list(regions.LIPS_OUTER_LOWER),
        "lips_inner_upper": list(regions.LIPS_INNER_UPPER),
        "lips_inner_lower": list(regions.LIPS_INNER_LOWER),
        "jaw": list(regions.JAW),
        "roi": [regions.MOUTH_LEFT, regions.MOUTH_RIGHT, regions.SUBNASALE, regions.CHIN],
    }
    return MouthAssets(roi, mask, interior, sprites, meshdef, used)


def _interior_texture(patch: np.ndarray, grid: MouthGrid, offsets: dict[str, np.ndarray],
                      look: MouthLook) -> np.ndarray:
    """One RGBA interior for the mesh variant: shown wherever the deformed lips part."""
    widest = max(offsets, key=lambda n: float(np.ptp(offsets[n][mesh.ROW_LOWER_INNER, :, 1])))
    shape = replace(SHAPES[widest], teeth_lower=False, tongue="low")
    rgb, _ = render_interior(patch, grid, grid.points + offsets[widest], shape, look)
    union = np.zeros(patch.shape[:2], np.float32)
    for off in offsets.values():
        polygon = mesh.opening_polygon(grid.points + off, grid.corner_cols)
        union = np.maximum(union, polygon_alpha(polygon, (patch.shape[1], patch.shape[0])))
    union = cv2.dilate(union, np.ones((5, 5), np.uint8))
    rgba = np.dstack([np.clip(np.round(rgb), 0, 255), np.round(union * 255)])
    return rgba.astype(np.uint8)
