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
from avatarkit.mouth.open_photo import fit_open_mouth
from avatarkit.mouth.roi import Roi, mouth_roi
from avatarkit.mouth.seam import seam_spec
from avatarkit.mouth.shapes import SHAPES, all_offsets
from avatarkit.mouth.sprites import chin_alpha, render_mouth, to_sprite
from avatarkit.visemes.classes import VISEME_CLASSES

ATLAS_PNG, ATLAS_JSON = "atlas.png", "atlas.json"
MESHDEF_JSON, MASK_PNG, INTERIOR_PNG = "meshdef.json", "mask_mouth.png", "mouth_interior.png"
LAYERS_PNG = "mouth_interior_layers.png"

#: The mesh variant's interior layers, drawn in this order over mouth_interior.png:
#: (layer name, painted part, class whose shape places it, what it moves with, classes shown).
#: One shared texture cannot show what differs between the open shapes (the lower teeth ride
#: on the jaw; L, TH, FV, CH have their own tongue or teeth); these layers, faded in by the
#: viseme weights, make the mesh draw what the sprite of each class shows.
LAYERS = (
    ("cavity_rim", "cavity_rim", "AI", "jaw", lambda s: s != SHAPES["Rest"]),
    ("tongue_low", "tongue_low", "AI", "jaw", lambda s: s.tongue == "low"),
    ("tongue_tip", "tongue_tip", "L", "skull", lambda s: s.tongue == "tip_up"),
    ("lower_teeth", "lower_teeth", "E", "jaw", lambda s: s.teeth_lower),
    # The upper teeth again, in front of the tongue and the lower teeth.
    ("upper_teeth", "upper_teeth", "E", "skull",
     lambda s: s != SHAPES["Rest"] and not s.teeth_fill),
    ("upper_teeth_fill", "upper_teeth", "CH", "skull", lambda s: s.teeth_fill),
    ("tongue_between", "tongue_between", "TH", "skull", lambda s: s.tongue == "between"),
)


@dataclass
class MouthAssets:
    """Everything the lip-sync clients need about the mouth, ready to write."""

    roi: Roi
    mask: np.ndarray  # (h, w) uint8 alpha, zero on the ROI border
    interior: np.ndarray  # (h, w, 4) uint8 RGBA mouth-interior texture (mesh variant)
    layers: np.ndarray  # (len(LAYERS) * h, w, 4) uint8 RGBA interior layers, stacked cells
    sprites: dict[str, np.ndarray]  # class -> (h, w, 4) uint8 RGBA, alpha = mask x chin cut
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
        Image.fromarray(self.layers, "RGBA").save(folder / LAYERS_PNG)
        return [ATLAS_PNG, ATLAS_JSON, MESHDEF_JSON, MASK_PNG, INTERIOR_PNG, LAYERS_PNG]


def make_mouth_assets(rgb: np.ndarray, face: Face) -> MouthAssets:
    """Build the mouth asset set for the face in an RGB uint8 photo."""
    roi = mouth_roi(face, (rgb.shape[1], rgb.shape[0]))
    patch = np.ascontiguousarray(roi.crop(rgb))
    grid = build_grid(face, roi)
    look = measure_look(patch, grid)
    grid = fit_open_mouth(patch, grid, look)
    mask = feathered_mask(roi.w, roi.h)
    offsets = all_offsets(grid)
    sprites = {
        name: to_sprite(render_mouth(patch, grid, offsets[name], SHAPES[name], look), mask,
                        chin_alpha(grid, offsets[name], (roi.w, roi.h)))
        for name in VISEME_CLASSES
    }
    interior = _interior_texture(patch, grid, offsets, look)
    layers = _interior_layers(patch, grid, offsets, look)
    meshdef = {
        "grid": {"cols": mesh.COLS, "rows": mesh.ROWS},
        "roi": roi.as_dict(),
        "points": np.round(grid.flat, 3).tolist(),
        "targets": {name: np.round(offsets[name].reshape(-1, 2), 3).tolist()
                    for name in VISEME_CLASSES},
        "interior": INTERIOR_PNG,
        "interior_layers": {
            "file": LAYERS_PNG,
            "cell": {"w": roi.w, "h": roi.h},
            "layers": [{"name": name, "cell": i, "follows": follows,
                        "classes": {c: 1.0 for c in VISEME_CLASSES if shown(SHAPES[c])}}
                       for i, (name, _, _, follows, shown) in enumerate(LAYERS)],
            "note": "optional; drawn in order over the interior, inside the same opening and "
                    "reveal, alpha x min(1, sum of the weights of its classes). Cell i is rows "
                    "[i*h, (i+1)*h) of the file. 'skull' layers sit at ROI pixels like the "
                    "interior; 'jaw' layers move with the lower inner lip row: at a point of "
                    "the opening between deformed columns, sample x = the undeformed column x "
                    "and y = y - that row's dy, both interpolated linearly along x",
        },
        "triangulation": "row-major points; each cell (c,r) is drawn as triangles "
                         "[(c,r),(c+1,r),(c+1,r+1)] and [(c,r),(c+1,r+1),(c,r+1)]",
        "opening": {"upper_row": mesh.ROW_UPPER_INNER, "lower_row": mesh.ROW_LOWER_INNER,
                    "cols": list(grid.corner_cols),
                    "note": "the interior texture shows inside the polygon of the deformed "
                            "upper row (left to right) and lower row (right to left)"},
        "seam": seam_spec(look.lip_rgb),
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
    return MouthAssets(roi, mask, interior, layers, sprites, meshdef, used)


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


def _interior_layers(patch: np.ndarray, grid: MouthGrid, offsets: dict[str, np.ndarray],
                     look: MouthLook) -> np.ndarray:
    """The LAYERS as stacked ROI-sized RGBA cells.

    Skull layers are painted for their class's deformation (their ROI position is where
    that sprite shows them). Jaw layers are painted at the rest position of the lower lip and
    of the mouth corners, since the client moves them with the deformed lower lip.
    """
    h, w = patch.shape[:2]
    cells = []
    for _, part, cls, follows, _ in LAYERS:
        target = grid.points + offsets[cls]
        if follows == "jaw":
            rest_lower = grid.points.copy()  # only the upper lip as the class has it,
            rest_lower[mesh.ROW_UPPER_INNER, :, 1] = np.minimum(  # so the opening is not empty
                target[mesh.ROW_UPPER_INNER, :, 1], grid.points[mesh.ROW_UPPER_INNER, :, 1])
            target = rest_lower
        painted: dict = {}
        render_interior(patch, grid, target, SHAPES[cls], look, painted)
        rgb, alpha = painted.get(part, (np.zeros((h, w, 3), np.float32),
                                        np.zeros((h, w), np.float32)))
        cells.append(np.dstack([np.clip(np.round(rgb), 0, 255), np.round(alpha * 255)]))
    return np.concatenate(cells).astype(np.uint8)
