"""Load a portrait photo as an upright 8-bit sRGB array at a working size.

Everything after this stage assumes one pixel format, so every quirk of real photo files is
dealt with here, once: EXIF rotation, odd modes (RGBA, LA, P, CMYK, 16-bit, greyscale), colour
profiles, huge photos and decompression bombs. Every failure is one actionable line.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from avatarkit.errors import AvatarkitError

DEFAULT_MAX_SIDE = 2048
"""Working size cap: beyond this the face mesh gains nothing and every later stage gets slower."""

MIN_MAX_SIDE = 256

# A transparent background has no colour of its own. White is what viewers and most apps show
# behind a cut-out portrait, and later stages (face mesh, the idle loop's parallax) need a real,
# opaque background, so transparency is composited onto it.
BACKGROUND_RGB = (255, 255, 255)

_SRGB = ImageCms.createProfile("sRGB")

#: The only decoders a photo ever reaches (Pillow names). Every other Pillow plugin (TIFF,
#: BMP, GIF, ICO, PCX, TGA, SGI, PPM, PSD, EPS - which hands the file to Ghostscript) is
#: attack surface for uploads that the README never promised; MPO (multi-picture JPEG from
#: phones) is read by the JPEG decoder.
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP")

# Signatures of common image formats that are refused, to name them in the error.
_REFUSED_SIGNATURES = (
    (b"BM", "BMP"), (b"GIF8", "GIF"), (b"II*\0", "TIFF"), (b"MM\0*", "TIFF"),
    (b"%!PS", "PostScript/EPS"), (b"\xc5\xd0\xd3\xc6", "EPS"), (b"%PDF", "PDF"),
    (b"8BPS", "Photoshop PSD"), (b"\0\0\1\0", "ICO"), (b"\x00\x00\x00\x0cjP", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"), (b"\x01\xda", "SGI"), (b"qoif", "QOI"),
)


@dataclass(frozen=True)
class Photo:
    """A decoded photo: `rgb` is what every later stage works on."""

    rgb: np.ndarray  # (h, w, 3) uint8, upright, sRGB, at the working size
    path: Path
    source_size: tuple[int, int]  # (w, h) of the upright photo before any downscale
    scale: float  # working size / source size (1.0 when not downscaled)
    sha256: str  # of the file's bytes, for the build hash
    notes: list[str] = field(default_factory=list)  # normalisations applied, for the manifest

    @property
    def size(self) -> tuple[int, int]:
        """(w, h) of the working image."""
        return self.rgb.shape[1], self.rgb.shape[0]


def read_bytes(path: Path) -> bytes:
    """The file's bytes, or an error that says why they cannot be read."""
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise AvatarkitError(f"could not read {path}: no such file") from None
    except IsADirectoryError:
        raise AvatarkitError(f"could not read {path}: it is a folder, not a photo") from None
    except PermissionError:
        raise AvatarkitError(f"could not read {path}: permission denied") from None
    except OSError as exc:
        raise AvatarkitError(f"could not read {path}: {exc.strerror or exc}") from None


def load_photo(path: Path, max_side: int = DEFAULT_MAX_SIDE) -> Photo:
    """Read and normalise a photo file (see `decode_photo`)."""
    path = Path(path)
    return decode_photo(read_bytes(path), path, max_side)


def decode_photo(data: bytes, path: Path, max_side: int = DEFAULT_MAX_SIDE) -> Photo:
    """Decode photo bytes to an upright sRGB uint8 array no larger than `max_side`."""
    path = Path(path)
    if max_side < MIN_MAX_SIDE:
        raise AvatarkitError(f"--max-side must be at least {MIN_MAX_SIDE} (got {max_side})")
    where = f"could not read {path.name}"
    if not data:
        raise AvatarkitError(f"{where}: the file is empty")
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its limit and twice its limit; a bomb is a bomb.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
        orientation = _orientation(im)
        source_size = _upright_size(im.size, orientation)
        _draft_for(im, max_side)
        im.load()
        rotated = ImageOps.exif_transpose(im)
        if orientation not in (None, 1):
            notes.append(f"rotated upright (EXIF orientation {orientation})")
        rgb_image = _to_srgb(rotated, notes)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        pixels = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(pixels.group(1)) / 1e6:.0f} megapixels" if pixels else "the image size"
        raise AvatarkitError(
            f"{where}: {size} is over the {Image.MAX_IMAGE_PIXELS / 1e6:.0f}-megapixel safety "
            "limit (a possible decompression bomb) - resize the photo first"
        ) from None
    except UnidentifiedImageError:
        kind = refused_format(data)
        if kind is not None:
            raise AvatarkitError(
                f"{where}: {kind} images are not accepted - convert it to JPEG, PNG or WebP"
            ) from None
        raise AvatarkitError(
            f"{where}: not an image file avatarkit can read (use JPEG, PNG or WebP)"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise AvatarkitError(f"{where}: the file is damaged or incomplete ({exc})") from None

    working = _working_size(source_size, max_side)
    if rgb_image.size != working:
        notes.append(f"downscaled from {source_size[0]}x{source_size[1]} to "
                     f"{working[0]}x{working[1]} (--max-side {max_side})")
        rgb_image = rgb_image.resize(working, Image.LANCZOS)
    rgb = np.asarray(rgb_image, dtype=np.uint8)
    return Photo(
        rgb=np.ascontiguousarray(rgb),
        path=path,
        source_size=source_size,
        scale=working[0] / source_size[0],
        sha256=hashlib.sha256(data).hexdigest(),
        notes=notes,
    )


def refused_format(data: bytes) -> str | None:
    """The name of a well-known image format that avatarkit refuses, from its first bytes
    (never by handing the file to a decoder), or None."""
    if data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"mif1", b"avif", b"heim"):
        return "HEIC/AVIF"
    for magic, name in _REFUSED_SIGNATURES:
        if data.startswith(magic):
            return name
    if re.match(rb"P[1-7]\s", data[:3]):
        return "PPM/PGM/PBM"
    return None


def _orientation(im: Image.Image) -> int | None:
    try:
        return im.getexif().get(0x0112)
    except Exception:  # a broken EXIF block must not make a good photo unreadable
        return None


def _upright_size(size: tuple[int, int], orientation: int | None) -> tuple[int, int]:
    """Orientations 5-8 swap width and height."""
    w, h = size
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def _working_size(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    w, h = size
    if max(w, h) <= max_side:
        return w, h
    s = max_side / max(w, h)
    return max(1, round(w * s)), max(1, round(h * s))


def _draft_for(im: Image.Image, max_side: int) -> None:
    """Let the JPEG decoder skip detail we would throw away (decodes a 40 MP photo ~4x faster)."""
    w, h = im.size
    if im.format == "JPEG" and max(w, h) > max_side:
        s = max_side / max(w, h)
        im.draft(im.mode, (math.ceil(w * s), math.ceil(h * s)))


def _to_srgb(im: Image.Image, notes: list[str]) -> Image.Image:
    """Any Pillow mode to 8-bit RGB; colour-managed when the file carries a profile."""
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # Pillow's own I->L conversion clips at 255 instead of scaling; scale the range here.
        a = np.asarray(im.convert("F") if mode == "F" else im, dtype=np.float64)
        top = 1.0 if mode == "F" and a.max() <= 1.0 else (255.0 if a.max() <= 255 else 65535.0)
        im = Image.fromarray(np.clip(a * (255.0 / top) + 0.5, 0, 255).astype(np.uint8), "L")
        notes.append(f"converted from {mode} ({'16-bit' if top == 65535.0 else 'high-depth'})")
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = im.convert("RGBA")
        if rgba.getextrema()[3][0] < 255:
            notes.append("composited transparency onto white")
        background = Image.new("RGBA", rgba.size, (*BACKGROUND_RGB, 255))
        im = Image.alpha_composite(background, rgba).convert("RGB")
    icc = im.info.get("icc_profile")
    if icc and im.mode in ("RGB", "CMYK", "L"):
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            if "srgb" not in (ImageCms.getProfileDescription(source) or "").lower():
                im = ImageCms.profileToProfile(im, source, _SRGB, outputMode="RGB")
                notes.append(f"converted colour profile "
                             f"{ImageCms.getProfileDescription(source).strip()!r} to sRGB")
        except (ImageCms.PyCMSError, OSError, TypeError):
            notes.append("ignored an unreadable colour profile")
    if im.mode != "RGB":
        notes.append(f"converted from {mode}")
        im = im.convert("RGB")
    return im

