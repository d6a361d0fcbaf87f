"""How far a head may turn before the mouth model stops holding: turned portraits, their yaw
ratio, and which detector checks of the mouth shapes fail on the sprites composited onto them.

    python benchmarks/turns.py               # the test portraits, one half squeezed
    python benchmarks/turns.py PHOTO ...     # real turned portraits, as they are

Without photos, each test portrait has one half of the face squeezed (what a turn does to
the image: the far cheek foreshortens). On the closed-mouth portraits every check passes on
hopper up to 0.66 and on biden at 0.51, with single checks failing from 0.54-0.59. Squeezing
also narrows the far half of the mouth, so on the toothy smiles (obama, hero) it breaks
AI/MBP already at yaw ratios 0.13-0.35: those rows measure a squeezed smile, not a turn.

Real turned faces (six crops of a group photo that is not in the repo, upscaled 2x):

    13, 14, 20 degrees (0.23, 0.25, 0.37)   all pass
    32 degrees (0.62), open toothy smile     MBP 0.11 apart, the rest pass
    36 degrees (0.74), closed mouth, tilted  all pass
    56 degrees (1.50), near profile          E, O, CH, L, TH not open; U, WQ not narrower

So `face.landmarks.MAX_YAW_RATIO` is 0.65 (~33 degrees), with a warning from 0.45.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from avatarkit.face import regions  # noqa: E402
from avatarkit.face.landmarks import detect_faces, landmarks  # noqa: E402
from avatarkit.mouth.assets import make_mouth_assets  # noqa: E402
from avatarkit.mouth.sprites import composite  # noqa: E402
from avatarkit.native_stderr import quiet_native_stderr  # noqa: E402

PORTRAITS = {"hopper": "tests/data/hopper.jpg", "biden": "tests/data/biden.jpg",
             "obama": "tests/data/obama.jpg", "hero": "examples/hero.jpg"}
SQUEEZE = (1.0, 0.7, 0.55, 0.45, 0.38, 0.32, 0.27)
CLASSES = ("Rest", "AI", "E", "O", "U", "WQ", "MBP", "CH", "L", "TH")


def turned(im: Image.Image, squeeze: float) -> Image.Image:
    """The image-right half of the face (from the nose tip) squeezed to `squeeze`."""
    nose = int(detect_faces(np.asarray(im))[0].points[regions.NOSE_TIP, 0])
    left, right = im.crop((0, 0, nose, im.height)), im.crop((nose, 0, im.width, im.height))
    right = right.resize((max(1, int(right.width * squeeze)), im.height), Image.LANCZOS)
    out = Image.new("RGB", (left.width + right.width, im.height))
    out.paste(left, (0, 0))
    out.paste(right, (left.width, 0))
    return out


def failures(rgb: np.ndarray) -> tuple[float, list[str]]:
    """Yaw ratio and the failed checks (those of tests/test_mouth_quality.py)."""
    face = detect_faces(rgb)[0]
    assets = make_mouth_assets(rgb, face)
    roi = assets.roi
    opening, width = {}, {}
    for name in CLASSES:
        out = rgb.copy()
        out[roi.y:roi.y + roi.h, roi.x:roi.x + roi.w] = composite(roi.crop(rgb),
                                                                   assets.sprites[name])
        points = landmarks(out)
        if points is None:
            return face.yaw_ratio, [f"{name}: no face"]
        opening[name] = regions.inner_lip_opening(points)
        width[name] = regions.mouth_width(points)
    w = width["Rest"]
    failed = [] if max(opening, key=opening.get) == "AI" else ["AI not widest"]
    failed += [f"{c} not open" for c in ("E", "O", "CH", "L", "TH")
               if opening[c] < opening["Rest"] + 0.04 * w]
    failed += [f"MBP {opening['MBP'] / w:.2f} apart"] if opening["MBP"] > 0.10 * w else []
    failed += [f"{c} not narrower" for c in ("O", "U", "WQ") if width[c] > 0.95 * w]
    return face.yaw_ratio, failed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("photos", nargs="*", type=Path,
                    help="real turned portraits to check as they are (instead of squeezing "
                         "the test portraits)")
    args = ap.parse_args()
    with quiet_native_stderr():
        for path in args.photos:
            yaw, failed = failures(np.asarray(Image.open(path).convert("RGB")))
            print(f"{path.name:<16} yaw ratio {yaw:.2f} (~{np.degrees(np.arctan(yaw)):.0f} deg)"
                  f"  {', '.join(failed) or 'all pass'}")
        if args.photos:
            return
        for name, rel in PORTRAITS.items():
            im = Image.open(ROOT / rel).convert("RGB")
            for squeeze in SQUEEZE:
                yaw, failed = failures(np.asarray(turned(im, squeeze)))
                verdict = ", ".join(failed) or "all pass"
                print(f"{name:<8} squeeze {squeeze:.2f}  yaw ratio {yaw:.2f}"
                      f" (~{np.degrees(np.arctan(yaw)):.0f} deg)  {verdict}")


if __name__ == "__main__":
    main()
