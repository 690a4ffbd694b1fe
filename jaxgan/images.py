"""Image files on the host: reading photos as generator targets and as LPIPS inputs, writing PNGs, and the
helpers the CLI's annotated outputs share (RGB views, the default font).

`load_image` follows stylegan2-ada-pytorch's projector.py by default (fit 'crop'): centre crop to a square (the
largest one, offsets rounded down), then a Lanczos resize to the generator resolution (PIL.Image.LANCZOS, Pillow's
windowed sinc with a = 3, antialiased when shrinking). Fit 'stretch' is EditGAN's `load_one_image_for_embedding`
(`utils/data_utils.py`, nv-tlabs/editGAN_release@fef9ab8): the whole image resized to the generator's size with
`Image.resize`'s default filter, bicubic, no crop. Pixels map to [-1, 1] by x / 127.5 - 1, the convention of the lpips package and
of the generator's output. Any Pillow-readable file works: palette, 16-bit and CMYK images are converted; an alpha
channel is dropped with a warning (the generators model opaque images); grayscale generators get luminance
(Pillow's ITU-R 601-2 'L' conversion) and colour generators get RGB.
"""

import warnings
from typing import Any, Callable

import numpy as np
from PIL import Image, UnidentifiedImageError


class ImageError(ValueError):
    """An input image that cannot be used (unreadable, or the wrong kind)."""


def open_image(path) -> Image.Image:
    try:
        with Image.open(path) as image:
            image.load()
            return image
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError) as err:
        raise ImageError(f"{path}: not an image Pillow can read ({err})") from None


def _to_mode(image: Image.Image, channels: int, path) -> Image.Image:
    if "A" in image.getbands() or (image.mode == "P" and "transparency" in image.info):
        warnings.warn(f"{path}: the alpha channel is dropped (the generator models opaque images)", stacklevel=3)
    if channels == 1:
        return image.convert("L")
    if channels == 3:
        if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16/32-bit grayscale: scale to 8 bits first
            image = Image.fromarray((np.asarray(image, np.float64) / 256).clip(0, 255).astype(np.uint8))
        return image.convert("RGB")
    raise ImageError(f"generators with {channels} channels are not supported for image targets (only 1 or 3)")


def center_crop_square(image: Image.Image) -> Image.Image:
    w, h = image.size
    s = min(w, h)
    return image.crop(((w - s) // 2, (h - s) // 2, (w + s) // 2, (h + s) // 2))


FITS = {"crop": "centre crop to a square, Lanczos resize (projector.py)",
        "stretch": "the whole image resized, bicubic, no crop (EditGAN's embedding)"}


def load_image(path, resolution: int, channels: int = 3, fit: str = "crop") -> np.ndarray:
    """A photo as a float32 [resolution, resolution, channels] target in [-1, 1]; `fit` in FITS."""
    return target_of(open_image(path), resolution, channels, path, fit=fit)


def target_of(image: Image.Image, resolution: int, channels: int = 3, source="the image",
              fit: str = "crop") -> np.ndarray:
    """`load_image` for an image already opened: resized by the rule `fit`, in [-1, 1]."""
    if fit not in FITS:
        raise ValueError(f"fit must be one of {tuple(FITS)}, got {fit!r}")
    image = _to_mode(image, channels, source)
    if fit == "crop":
        image = center_crop_square(image).resize((resolution, resolution), Image.LANCZOS)
    else:
        image = image.resize((resolution, resolution), Image.BICUBIC)
    pixels = np.asarray(image, np.float32)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    return pixels / np.float32(127.5) - np.float32(1)


def load_rgb_pm1(path) -> np.ndarray:
    """An image as RGB [H, W, 3] float32 in [-1, 1], no crop or resize (the lpips package's `im2tensor`)."""
    image = open_image(path)
    if "A" in image.getbands():
        warnings.warn(f"{path}: the alpha channel is dropped", stacklevel=2)
    return np.asarray(image.convert("RGB"), np.float32) / np.float32(127.5) - np.float32(1)


PNG_MODES = {1: "L", 3: "RGB", 4: "RGBA"}  # channels -> Pillow mode


def png_writer(pixels: np.ndarray) -> Callable[[Any], None]:
    """`write(file)` that saves uint8 [H, W, C] pixels (C = 1, 3 or 4) as a PNG (the caller makes it atomic)."""
    mode = PNG_MODES.get(pixels.shape[-1])
    if mode is None:
        raise ValueError(f"cannot write a PNG with {pixels.shape[-1]} channels")
    pixels = np.ascontiguousarray(pixels[..., 0] if mode == "L" else pixels)
    return lambda f: Image.fromarray(pixels, mode).save(f, format="PNG")


def rgb(pixels: np.ndarray) -> np.ndarray:
    """[H, W, C] -> [H, W, 3] for drawing in colour: the first three channels, or the grey channel repeated."""
    return pixels[..., :3] if pixels.shape[-1] >= 3 else np.repeat(pixels[..., :1], 3, axis=-1)


def default_font(size: int):
    """Pillow's default font at `size` px (Pillow < 10.1 has only its fixed bitmap font)."""
    from PIL import ImageFont
    try:
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()


def tile_grid(images: np.ndarray) -> np.ndarray:
    """[N, H, W, C] -> one image of the N tiled row by row in a near-square grid (unused cells black)."""
    n, h, w, c = images.shape
    cols = int(np.ceil(np.sqrt(n)))
    rows = -(-n // cols)
    grid = np.zeros((rows * h, cols * w, c), images.dtype)
    for i, image in enumerate(images):
        r, col = divmod(i, cols)
        grid[r * h:(r + 1) * h, col * w:(col + 1) * w] = image
    return grid
