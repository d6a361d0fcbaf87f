"""Make examples/hero.jpg from the public-domain portrait that ships in scikit-image.

`skimage.data.astronaut()` is NASA's portrait of Eileen Collins (public domain). We crop a
head-and-shoulders view at native resolution (no resampling keeps the photo's own look).

    python examples/make_hero.py
"""

from pathlib import Path

from PIL import Image
from skimage import data

CROP = (40, 0, 360, 400)  # left, top, right, bottom in the 512x512 original


def main() -> None:
    out = Path(__file__).with_name("hero.jpg")
    Image.fromarray(data.astronaut()).crop(CROP).save(out, quality=95)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
