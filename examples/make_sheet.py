"""Render docs/hero_sheet.jpg: every viseme of the example avatar, for the README.

    python examples/make_sheet.py [PHOTO] [OUT.png]
"""

import sys
from pathlib import Path

import numpy as np
from PIL import Image

from avatarkit.face.landmarks import detect_faces
from avatarkit.mouth.assets import make_mouth_assets
from avatarkit.mouth.sheet import contact_sheet

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    photo = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "examples" / "hero.jpg"
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "docs" / "hero_sheet.jpg"
    rgb = np.array(Image.open(photo).convert("RGB"))
    assets = make_mouth_assets(rgb, detect_faces(rgb)[0])
    contact_sheet(rgb, assets).save(out, quality=88)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
