"""What clients upload, decoded with limits and never executed: PNG / JPEG data URLs and `.npy` arrays.

An image's size is read from its header and checked against the pixel limit before a single pixel is decoded, so
a decompression bomb (a small PNG of 20,000 x 20,000 pixels) is refused, not decoded (Pillow's own
`MAX_IMAGE_PIXELS` guard, left at its default, refuses the largest ones even earlier). `.npy` is read with `allow_pickle=False`.
"""

import base64
import binascii
import io
import re
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_FORMATS = {"PNG", "JPEG"}
_DATA_URL = re.compile(r"data:(?P<type>[\w.+/-]+)?(?P<params>(;[\w.+-]+=[\w.+-]+)*)(?P<b64>;base64)?,(?P<data>.*)",
                       re.DOTALL)


class UploadError(ValueError):
    """An upload that cannot be used (HTTP 400)."""


class UploadTooLarge(UploadError):
    """An upload over a size limit (HTTP 413)."""


def data_url_bytes(text: str, what: str) -> bytes:
    """The bytes of a `data:...;base64,...` URL (plain base64 is accepted too)."""
    if not isinstance(text, str):
        raise UploadError(f"{what} must be a data URL string")
    match = _DATA_URL.fullmatch(text.strip())
    payload = match.group("data") if match else text
    if match and not match.group("b64"):
        raise UploadError(f"{what} must be a base64 data URL (data:image/png;base64,...)")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise UploadError(f"{what} is not valid base64") from None


def open_image(data: bytes, what: str, max_pixels: int) -> Image.Image:
    """A PNG or JPEG from bytes, its size checked from the header before it is decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the check below is stricter
            image = Image.open(io.BytesIO(data))  # reads the header only
    except Image.DecompressionBombError as e:  # Pillow's own guard, at twice its MAX_IMAGE_PIXELS
        raise UploadTooLarge(f"{what} is over the limit of {max_pixels} pixels ({e})") from None
    except (UnidentifiedImageError, OSError):
        raise UploadError(f"{what} is not an image Pillow can read") from None
    if image.format not in IMAGE_FORMATS:
        raise UploadError(f"{what} is {image.format}; send a PNG or a JPEG")
    width, height = image.size
    if width * height > max_pixels:
        raise UploadTooLarge(f"{what} is {width}x{height} pixels, over the limit of {max_pixels} pixels")
    try:
        image.load()
    except (OSError, Image.DecompressionBombError, SyntaxError) as e:
        raise UploadError(f"{what} cannot be decoded ({e})") from None
    return image


def image_from_url(text: str, what: str, max_pixels: int) -> Image.Image:
    return open_image(data_url_bytes(text, what), what, max_pixels)


def npy_from_bytes(data: bytes, what: str) -> np.ndarray:
    """A `.npy` array, read without pickle."""
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise UploadError(f"{what} is not a .npy array readable without pickle ({e})") from None


def png_data_url(pixels: np.ndarray) -> str:
    """uint8 [H, W, C] pixels as a PNG data URL."""
    from jaxgan.images import png_writer
    buffer = io.BytesIO()
    png_writer(np.asarray(pixels))(buffer)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def png_bytes(pixels: np.ndarray) -> bytes:
    from jaxgan.images import png_writer
    buffer = io.BytesIO()
    png_writer(np.asarray(pixels))(buffer)
    return buffer.getvalue()
