"""Pictures for ``distnet predict``: which files are pictures, by their first bytes, and a picture
read as MNIST holds its digits: 28x28 grey values in [0, 1], light strokes on black.

Pillow (``pip install pillow``) decodes the pictures; the grey values are taken here, by the range
of each picture's mode, because Pillow's ``convert("L")`` clips 16-bit pictures to black and white,
rounds floats in [0, 1] to black and drops transparency. A picture is first turned upright as its
EXIF orientation says (phones store a photo as the sensor read it, and tag how to turn it).
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from ..data.digits import SIDE
from ..errors import ConfigError, DataFormatError

PICTURE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm", ".pnm"}
PICTURE_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")
TRANSPARENT_MODES = {"RGBA", "LA", "RGBa"}
INTEGER_RANGES = (2**8 - 1, 2**16 - 1, 2**31 - 1)


def is_picture(head: bytes) -> bool:
    """Whether a file's first 12 bytes are those of a PNG, JPEG, GIF, BMP, TIFF, WEBP or Netpbm
    (PBM, PGM, PPM) picture."""
    webp = head[:4] == b"RIFF" and head[8:12] == b"WEBP"  # RIFF, the length, then the kind of content
    netpbm = re.match(rb"P[1-6]\s", head) is not None  # P5: binary grey, P6: binary colour, ...
    return webp or netpbm or head.startswith(PICTURE_SIGNATURES)


def read_picture(path: Path, invert: str = "auto") -> np.ndarray:
    """A picture as 784 values in [0, 1]: upright as its EXIF orientation says, grey, made square
    (see :func:`squared`) and scaled to 28x28, light-on-dark like MNIST."""
    try:
        from PIL import Image, ImageOps, UnidentifiedImageError
    except ImportError:
        raise ConfigError(f"{path}: reading pictures needs Pillow: pip install pillow "
                          f"(or save the image as a .npy array)") from None
    with open(path, "rb") as file, warnings.catch_warnings():
        # Pillow only warns of a picture up to twice its pixel limit; either is far too large here.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(file) as picture:
                # A phone's photo is stored as its sensor read it, with a tag that says how to turn
                # it (Orientation 6: 90 degrees clockwise); with the tag ignored, its digit is read sideways.
                upright = ImageOps.exif_transpose(picture)
                pixels = composite(*grey_and_alpha(upright, path))
                mode = picture.mode
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise too_large(path, e) from None
        except UnidentifiedImageError:  # Pillow's message names its file object, not the file
            raise DataFormatError(f"{path}: not a readable picture (Pillow knows no picture format in it)") from None
        except OSError as e:
            raise DataFormatError(f"{path}: not a readable picture ({e})") from None
    if pixels.min() == pixels.max():
        # One that is 8-bit grey already is read as it is: no other format would show more.
        advice = ("a blank scan?" if mode == "L" else
                  "if the picture shows one, save it as an 8-bit greyscale PNG")
        raise DataFormatError(f"{path}: every pixel reads as the same grey ({pixels.flat[0]:.3g}, from 0 black to "
                              f"1 white), so there is no digit to classify; {advice}")
    if pixels.shape != (SIDE, SIDE):
        pixels = np.asarray(Image.fromarray(squared(pixels)).resize((SIDE, SIDE), Image.LANCZOS))
        pixels = np.clip(pixels, 0, 1)  # Lanczos overshoots beside sharp edges
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    if invert == "yes" or (invert == "auto" and border.mean() > 0.5):
        pixels = 1 - pixels
    return pixels.reshape(-1)


def squared(pixels: np.ndarray) -> np.ndarray:
    """A picture widened (or heightened) to a square, centred, with the grey of its border's paper:
    scaled straight to 28x28, a digit in a wide picture would be squeezed thin."""
    height, width = pixels.shape
    if height == width:
        return pixels
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    side = max(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    square = np.full((side, side), np.median(border), dtype=pixels.dtype)
    square[top:top + height, left:left + width] = pixels
    return square


def grey_and_alpha(picture, path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """A Pillow picture's grey values and, where it has an alpha channel (or a palette's table of
    opacities), how opaque each pixel is; both in [0, 1]. A colour key (the one colour that a GIF
    or a PNG's tRNS marks transparent) is the picture's paper, shown as it is: laid on a background
    chosen by its strokes, the near-white edges a key leaves opaque around them would tip the choice."""
    colour_key = isinstance(picture.info.get("transparency"), (int, tuple))
    if picture.mode in ("P", "PA"):
        # Colours and transparency both from the palette (Pillow converts a palette's transparency
        # to grey only with a warning).
        picture = picture.convert("RGBA")
    return grey_values(picture, path), None if colour_key else alpha_values(picture)


def grey_values(picture, path: Path) -> np.ndarray:
    """A Pillow picture's grey values as float32 in [0, 1], each mode by its own range: 8-bit
    modes (grey, colour, palette) by 255, 16-bit ones by 65535, 32-bit integers (16-bit PGM
    files open so) by the smallest 8-, 16- or 31-bit range that holds them, floats as given."""
    mode = picture.mode
    if mode == "F":
        return float_values(np.asarray(picture, dtype=np.float32), path)
    if mode.startswith("I;16"):
        return np.asarray(picture, dtype=np.float32) / np.float32(INTEGER_RANGES[1])
    if mode == "I":
        return integer_values(np.asarray(picture), path)
    try:
        grey = picture.convert("L")
    except ValueError:  # LAB, premultiplied La: modes Pillow makes no grey of
        raise DataFormatError(f"{path}: cannot read a picture of mode {mode}; save it as greyscale or RGB") from None
    return np.asarray(grey, dtype=np.float32) / np.float32(255)


def float_values(values: np.ndarray, path: Path) -> np.ndarray:
    """A float picture's values, which must already be grey values in [0, 1]."""
    if not np.isfinite(values).all():
        raise DataFormatError(f"{path}: {np.count_nonzero(~np.isfinite(values))} pixels of the float picture are "
                              f"NaN or infinite")
    if values.min() < 0 or values.max() > 1:
        raise DataFormatError(f"{path}: a float picture's pixels must lie in [0, 1], this one's run from "
                              f"{values.min():g} to {values.max():g}; scale them into [0, 1] first")
    return values


def integer_values(values: np.ndarray, path: Path) -> np.ndarray:
    """A 32-bit integer picture's values in [0, 1]."""
    if values.min() < 0:
        raise DataFormatError(f"{path}: the picture's pixels run from {values.min()} to {values.max()}; "
                              f"integer pixels must not be negative")
    top = next(top for top in INTEGER_RANGES if values.max() <= top)
    return (values / top).astype(np.float32)


def alpha_values(picture) -> np.ndarray | None:
    """How opaque each pixel of a Pillow picture is, in [0, 1]; None where it has no transparency."""
    if picture.mode not in TRANSPARENT_MODES and "transparency" not in picture.info:
        return None
    return np.asarray(picture.convert("RGBA").getchannel("A"), dtype=np.float32) / np.float32(255)


def composite(grey: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """A picture with transparency laid on a background that contrasts with its opaque strokes:
    white under dark strokes, black under light ones (a digit drawn only in the alpha channel has
    black strokes), so that --invert auto then sees the paper it looks for at the border."""
    if alpha is None:
        return grey
    light_strokes = (grey * alpha).sum() > 0.5 * alpha.sum()
    background = np.float32(0 if light_strokes else 1)
    return grey * alpha + background * (1 - alpha)


def too_large(path: Path, error: Exception) -> DataFormatError:
    """Pillow's refusal of a picture so large that it may be a decompression bomb, as advice."""
    # Pillow refuses before it gives the picture's size; its message holds the number of pixels.
    count = re.search(r"(\d+) pixels", str(error))
    size = f"{int(count[1]):,} pixels" if count else "too many pixels"
    return DataFormatError(f"{path}: the picture has {size}, too many to read safely; predict takes 28x28 digits: "
                           f"scale it down first (to 28x28, or a few hundred pixels a side)")
