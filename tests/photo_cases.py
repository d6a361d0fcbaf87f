"""Bad and awkward photos for the build tests, made from the real test portraits at run time
(cheap, and keeps binary fixtures out of the repository)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from avatarkit.build import BuildOptions, IdleOptions

ROOT = Path(__file__).resolve().parent.parent
HERO = ROOT / "examples" / "hero.jpg"
DATA = ROOT / "tests" / "data"

# The shortest idle loop the options allow: the build tests check plumbing, not the loop.
FAST = BuildOptions(idle=IdleOptions(seconds=3.0, fps=24))
FAST_CLI = ["--seconds", "3", "--fps", "24"]


def hero() -> Image.Image:
    return Image.open(HERO).convert("RGB")


def portrait(name: str) -> Image.Image:
    return Image.open(DATA / f"{name}.jpg").convert("RGB")


def save(image: Image.Image, path: Path, **kwargs) -> Path:
    image.save(path, **kwargs)
    return path


def gradient(path: Path, size: tuple[int, int] = (320, 400)) -> Path:
    """A photo of nothing: a smooth wall-like gradient with a little texture."""
    w, h = size
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([120 + 80 * x / w, 110 + 60 * y / h, 100 + 40 * (x + y) / (w + h)], -1)
    rgb = np.clip(base + rng.normal(0, 3, base.shape), 0, 255).astype(np.uint8)
    return save(Image.fromarray(rgb), path, quality=90)


def two_faces(path: Path) -> Path:
    """The hero twice side by side; the copy on the right is smaller (so 'largest' is defined)."""
    big = hero()
    small = big.resize((256, 320), Image.LANCZOS)
    canvas = Image.new("RGB", (big.width + small.width, big.height), (128, 128, 128))
    canvas.paste(big, (0, 0))
    canvas.paste(small, (big.width, 40))
    return save(canvas, path, quality=92)


def head_turned(path: Path, squeeze: float = 0.25) -> Path:
    """Hopper with the image-right half of her face squeezed to `squeeze` of its width (25 %:
    yaw ratio ~0.77, refused; 55 %: ~0.52, built with a warning).

    No photo with a turned head ships with our public-domain sources; squeezing one side is
    what a turn does to the image (the far cheek foreshortens, the near one stays), and the
    face mesh still finds the face, so the yaw check is what refuses it.
    """
    from avatarkit.face.landmarks import detect_faces

    im = portrait("hopper")
    nose = int(detect_faces(np.asarray(im))[0].points[1, 0])
    left, right = im.crop((0, 0, nose, im.height)), im.crop((nose, 0, im.width, im.height))
    right = right.resize((int(right.width * squeeze), im.height), Image.LANCZOS)
    out = Image.new("RGB", (left.width + right.width, im.height))
    out.paste(left, (0, 0))
    out.paste(right, (left.width, 0))
    return save(out, path, quality=92)


# EXIF orientation -> the transpose that makes an upright image look like the stored pixels
# of a camera that wrote that tag (the inverse of what the viewer applies).
STORED_AS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def exif_rotated(path: Path, orientation: int, image: Image.Image | None = None) -> Path:
    """An upright image stored sideways/flipped, with the EXIF tag that says how to show it."""
    image = image or hero()
    exif = Image.Exif()
    exif[0x0112] = orientation
    return save(image.transpose(STORED_AS[orientation]), path, quality=95, exif=exif)


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header claims width x height pixels (a decompression bomb's shape)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat)
                     + chunk(b"IEND", b""))
    return path
