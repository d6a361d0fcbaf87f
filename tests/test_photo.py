"""load_photo: every odd photo file becomes an upright sRGB uint8 array, or one clear error."""

from __future__ import annotations

import hashlib
import io
import re

import cv2
import numpy as np
import pytest
from PIL import Image

from avatarkit.errors import AvatarkitError
from avatarkit.face import regions
from avatarkit.face.landmarks import detect_faces
from avatarkit.face.photo import load_photo
from tests.photo_cases import HERO, STORED_AS, exif_rotated, hero, png_claiming, save


@pytest.fixture(scope="module")
def hero_rgb() -> np.ndarray:
    return np.asarray(hero())


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_plain_jpeg(hero_rgb):
    photo = load_photo(HERO)
    assert photo.rgb.dtype == np.uint8 and photo.rgb.shape == (400, 320, 3)
    assert np.array_equal(photo.rgb, hero_rgb)
    assert photo.source_size == photo.size == (320, 400)
    assert photo.scale == 1.0 and photo.notes == []
    assert photo.sha256 == hashlib.sha256(HERO.read_bytes()).hexdigest()


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "RGB16", "I;16"])
def test_modes_become_rgb(tmp_path, hero_rgb, mode):
    """Each mode reaches RGB with the picture intact (compared with the original)."""
    image = hero()
    grey = mode in ("L", "LA", "I;16")
    if mode == "RGB16":  # Pillow cannot write 16-bit RGB; OpenCV can (BGR order)
        path = tmp_path / "rgb16.png"
        cv2.imwrite(str(path), (hero_rgb[:, :, ::-1].astype(np.uint16) * 257))
    elif mode == "I;16":
        path = tmp_path / "grey16.png"
        grey16 = np.asarray(image.convert("L"), np.uint16) * 257
        save(Image.fromarray(grey16), path)
    elif mode == "CMYK":
        path = save(image.convert("CMYK"), tmp_path / "cmyk.jpg", quality=95)
    elif mode == "P":  # an adaptive 256-colour palette, as GIF-era tools write
        path = save(image.quantize(256), tmp_path / "p.png")
    else:
        path = save(image.convert(mode), tmp_path / f"{mode}.png")
    # Pillow reads 16-bit RGB PNGs as 8-bit RGB itself, and 16-bit grey PNGs as I;16 or I.
    assert Image.open(path).mode in {"RGB16": ("RGB",), "I;16": ("I;16", "I")}.get(mode, (mode,))
    photo = load_photo(path)
    assert photo.rgb.dtype == np.uint8 and photo.rgb.shape == (400, 320, 3)
    reference = np.asarray(image.convert("L").convert("RGB")) if grey else hero_rgb
    tolerance = 6.0 if mode in ("P", "CMYK") else 1.0  # palette / JPEG re-encode losses
    assert mean_abs_diff(photo.rgb, reference) < tolerance


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    """Pillow's own I;16 -> L clips at 255; a mid-grey 16-bit photo must stay mid-grey."""
    values = np.array([[0, 257 * 64, 32768, 65535]], np.uint16).repeat(4, 0)
    save(Image.fromarray(values), tmp_path / "g16.png")
    rgb = load_photo(tmp_path / "g16.png").rgb
    assert rgb[0, :, 0].tolist() == [0, 64, 128, 255]
    assert (rgb[..., 0] == rgb[..., 2]).all()


def test_transparency_is_composited_on_white(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3] = (200, 0, 0)  # red ...
    rgba[:, :4, 3] = 0  # ... left half fully transparent
    rgba[:, 4:, 3] = 128  # right half half transparent
    save(Image.fromarray(rgba), tmp_path / "cutout.png")
    photo = load_photo(tmp_path / "cutout.png")
    assert photo.rgb[0, 0].tolist() == [255, 255, 255]
    assert np.allclose(photo.rgb[0, 7], [227, 127, 127], atol=2)
    assert "composited transparency onto white" in photo.notes


def test_palette_with_transparency(tmp_path):
    image = Image.new("P", (4, 4), 1)
    image.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    image.putpixel((0, 0), 0)
    save(image, tmp_path / "p.png", transparency=0)
    rgb = load_photo(tmp_path / "p.png").rgb
    assert rgb[0, 0].tolist() == [255, 255, 255] and rgb[1, 1].tolist() == [10, 20, 30]


@pytest.mark.parametrize("orientation", sorted(STORED_AS))
def test_exif_orientation_pixels(tmp_path, hero_rgb, orientation):
    """All seven non-trivial orientations come back as the upright original."""
    photo = load_photo(exif_rotated(tmp_path / f"o{orientation}.jpg", orientation))
    assert photo.rgb.shape == hero_rgb.shape and photo.source_size == (320, 400)
    assert mean_abs_diff(photo.rgb, hero_rgb) < 3.0
    assert f"rotated upright (EXIF orientation {orientation})" in photo.notes


@pytest.mark.parametrize("orientation", [6, 8, 3])
def test_exif_rotated_face_is_upright(tmp_path, orientation):
    """What a phone writes: pixels sideways + a tag. The face mesh must find an upright face."""
    photo = load_photo(exif_rotated(tmp_path / "phone.jpg", orientation))
    faces = detect_faces(photo.rgb, max_faces=1)
    assert len(faces) == 1
    p = faces[0].points
    eyes_y = p[[regions.EYE_IMAGE_LEFT["corners"][0], regions.EYE_IMAGE_RIGHT["corners"][0]], 1]
    mouth_y = p[[regions.MOUTH_LEFT, regions.MOUTH_RIGHT], 1]
    assert eyes_y.max() + 20 < mouth_y.min()


def test_forty_megapixels_is_downscaled(tmp_path):
    """A 41.5 MP photo becomes a 2048 px working image in which the face is still found."""
    path = save(hero().resize((5760, 7200), Image.NEAREST), tmp_path / "big.jpg", quality=80)
    photo = load_photo(path)
    assert photo.source_size == (5760, 7200)
    assert photo.size == (1638, 2048)
    assert photo.scale == pytest.approx(2048 / 7200, rel=1e-3)
    assert "downscaled from 5760x7200 to 1638x2048 (--max-side 2048)" in photo.notes
    faces = detect_faces(photo.rgb, max_faces=1)
    assert faces and faces[0].width > 400  # 93 px in the original, x 18 x 0.284


def test_max_side_option():
    photo = load_photo(HERO, max_side=300)
    assert photo.size == (240, 300) and photo.scale == 0.75


@pytest.mark.parametrize("width, height", [(10_000, 10_000), (20_000, 20_000)])
def test_decompression_bomb_is_an_error(tmp_path, width, height):
    """Pillow only *warns* between 89 and 179 MP and raises above; both are refused."""
    path = png_claiming(tmp_path / "bomb.png", width, height)
    mp = width * height / 1e6
    message = (f"could not read bomb.png: {mp:.0f} megapixels is over the 89-megapixel safety "
               "limit (a possible decompression bomb) - resize the photo first")
    with pytest.raises(AvatarkitError, match=f"^{re.escape(message)}$"):
        load_photo(path)


def test_corrupt_file(tmp_path):
    data = HERO.read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])
    with pytest.raises(AvatarkitError) as info:
        load_photo(tmp_path / "cut.jpg")
    assert re.fullmatch(r"could not read cut\.jpg: the file is damaged or incomplete "
                        r"\(image file is truncated.*\)", str(info.value))


def test_garbage_after_a_valid_header(tmp_path):
    data = bytearray(HERO.read_bytes())
    data[600:] = bytes(range(256)) * ((len(data) - 600) // 256) + b"\0" * ((len(data) - 600) % 256)
    (tmp_path / "noise.jpg").write_bytes(bytes(data))
    with pytest.raises(AvatarkitError, match=r"^could not read noise\.jpg: the file is damaged"):
        load_photo(tmp_path / "noise.jpg")


@pytest.mark.parametrize("name, content, message", [
    ("notes.jpg", b"shopping list: eggs\n",
     "could not read notes.jpg: not an image file avatarkit can read (use JPEG, PNG or WebP)"),
    ("empty.png", b"", "could not read empty.png: the file is empty"),
])
def test_not_an_image(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(AvatarkitError, match=f"^{re.escape(message)}$"):
        load_photo(tmp_path / name)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(AvatarkitError, match=f"^could not read {re.escape(str(tmp_path))}"
                                             r"/gone\.jpg: no such file$"):
        load_photo(tmp_path / "gone.jpg")
    with pytest.raises(AvatarkitError, match=r": it is a folder, not a photo$"):
        load_photo(tmp_path)


def test_webp(tmp_path, hero_rgb):
    buf = io.BytesIO()
    hero().save(buf, "WEBP", quality=95)
    (tmp_path / "hero.webp").write_bytes(buf.getvalue())
    assert mean_abs_diff(load_photo(tmp_path / "hero.webp").rgb, hero_rgb) < 4.0


def _encoded(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


@pytest.mark.parametrize("name, fmt, shown", [
    ("hero.bmp", "BMP", "BMP"), ("hero.gif", "GIF", "GIF"), ("hero.tif", "TIFF", "TIFF"),
    ("hero.ico", "ICO", "ICO"), ("hero.ppm", "PPM", "PPM/PGM/PBM"), ("hero.tga", "TGA", None),
    ("hero.pcx", "PCX", None), ("hero.sgi", "SGI", "SGI"),
    ("renamed.jpg", "BMP", "BMP"),  # the bytes decide, not the name
])
def test_only_jpeg_png_webp_are_decoded(tmp_path, name, fmt, shown):
    """Pillow decodes all of these; avatarkit refuses them before any decoder sees them."""
    data = _encoded(hero().convert("RGB"), fmt)
    assert Image.open(io.BytesIO(data)).format == fmt  # Pillow itself would read it
    (tmp_path / name).write_bytes(data)
    message = (f"could not read {name}: {shown} images are not accepted - convert it to JPEG, "
               "PNG or WebP") if shown else (
        f"could not read {name}: not an image file avatarkit can read (use JPEG, PNG or WebP)")
    with pytest.raises(AvatarkitError, match=f"^{re.escape(message)}$"):
        load_photo(tmp_path / name)


def test_eps_never_reaches_ghostscript(tmp_path):
    """An EPS file (Pillow hands these to Ghostscript) is refused by its signature."""
    eps = (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\n"
           b"0 0 moveto 64 64 lineto stroke\nshowpage\n%%EOF\n")
    (tmp_path / "face.jpg").write_bytes(eps)
    with pytest.raises(AvatarkitError, match=r"^could not read face\.jpg: PostScript/EPS "
                                             r"images are not accepted"):
        load_photo(tmp_path / "face.jpg")


def test_multi_picture_jpeg_from_phones_is_accepted(tmp_path, hero_rgb):
    """Phones write MPO (a JPEG with a second picture); it is a JPEG and decodes."""
    first = hero()
    data = _encoded(first, "MPO", save_all=True, append_images=[first.resize((160, 200))],
                    quality=95)
    assert Image.open(io.BytesIO(data)).format == "MPO"
    (tmp_path / "phone.jpg").write_bytes(data)
    assert mean_abs_diff(load_photo(tmp_path / "phone.jpg").rgb, hero_rgb) < 4.0
