"""Make the small test portraits in tests/data/ from public-domain sources.

Sources (all public domain, works of the U.S. federal government):
- grace_hopper.jpg: shipped in matplotlib's wheel (mpl-data/sample_data/grace_hopper.jpg).
- biden.jpg, obama.jpg, obama3.jpg, obama_partial_face.jpg: official portraits shipped in the
  face_recognition 1.3.0 sdist (tests/test_images/).

Each is cropped to head and shoulders and scaled so the face is about 120 px wide, which
keeps the repository small while leaving enough pixels for landmark measurements.

    python tests/data/make_portraits.py SOURCE_DIR
"""

import sys
from pathlib import Path

from PIL import Image

# name: (source file, crop box left, top, right, bottom in source pixels, output width)
PORTRAITS = {
    "hopper": ("grace_hopper.jpg", (30, 0, 500, 580), 320),
    "biden": ("biden.jpg", (190, 0, 946, 941), 300),
    "obama": ("obama.jpg", (179, 0, 803, 721), 300),
    "obama3": ("obama3.jpg", (415, 60, 1134, 907), 300),
    # The face runs off the left edge: a bad-input case, kept as is.
    "partial_face": ("obama_partial_face.jpg", (0, 0, 491, 700), 240),
}


def main(source_dir: str) -> None:
    here = Path(__file__).parent
    for name, (src, box, width) in PORTRAITS.items():
        img = Image.open(Path(source_dir) / src).convert("RGB").crop(box)
        img = img.resize((width, round(img.height * width / img.width)), Image.LANCZOS)
        img.save(here / f"{name}.jpg", quality=90)
        print(f"wrote {name}.jpg {img.size}")


if __name__ == "__main__":
    main(sys.argv[1])
