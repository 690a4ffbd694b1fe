"""Upsample, FIR-filter, downsample: `upfirdn2d` exactly as stylegan2-ada-pytorch's `torch_utils/ops/upfirdn2d.py`.

Follows ../shared/specs/stylegan2.md §1.1 (`upfirdn2d`, `setup_filter`, the helper padding table) and the
pitfalls of §4.5 (true convolution, not correlation; gain applied as `gain ** (f.ndim / 2)`).

Activations are NHWC. A filter is a 1-D (separable) or 2-D numpy/jax array; it is treated as data, so a filter
passed under `jax.jit` may be traced or constant.
"""

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np
from jax import lax

Padding = int | Sequence[int]


def setup_filter(f, normalize: bool = True, flip_filter: bool = False, gain: float = 1.0, separable: bool | None = None):
    """Prepare a low-pass filter as the official `setup_filter` does.

    A 1-D filter with fewer than 8 taps becomes the non-separable 2-D outer product (so `[1,3,3,1]` gives
    the [4, 4] tensor found in every checkpoint's `resample_filter` buffer). Returns float32 numpy.
    """
    f = np.asarray(1 if f is None else f, dtype=np.float32)
    if f.ndim == 0:
        f = f[np.newaxis]
    if f.ndim not in (1, 2) or f.size == 0:
        raise ValueError(f"filter must be a non-empty 1-D or 2-D array, got shape {f.shape}")
    if separable is None:
        separable = f.ndim == 1 and f.size >= 8
    if f.ndim == 1 and not separable:
        f = np.outer(f, f)
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = f[::-1, ::-1] if f.ndim == 2 else f[::-1]
    f = f * gain ** (f.ndim / 2)
    return f.astype(np.float32)


def _parse_scaling(scaling) -> tuple[int, int]:
    if isinstance(scaling, int):
        return scaling, scaling
    sx, sy = scaling
    return int(sx), int(sy)


def _parse_padding(padding: Padding) -> tuple[int, int, int, int]:
    """Official order: [x0, x1, y0, y1]; an int pads all sides, a pair is [x, y]."""
    if isinstance(padding, int):
        return padding, padding, padding, padding
    padding = tuple(int(p) for p in padding)
    if len(padding) == 2:
        px, py = padding
        return px, px, py, py
    if len(padding) == 4:
        return padding
    raise ValueError(f"padding must be an int, [x, y] or [x0, x1, y0, y1], got {padding}")


def filter_size(f) -> tuple[int, int]:
    """(width, height) of a 1-D or 2-D filter; None means the identity filter of size 1."""
    if f is None:
        return 1, 1
    shape = np.shape(f)
    return (shape[-1], shape[0]) if len(shape) == 2 else (shape[0], shape[0])


def _depthwise(x, kernel_hw):
    """Correlate every channel of NHWC `x` with the same [kh, kw] kernel (VALID)."""
    channels = x.shape[-1]
    kernel = jnp.broadcast_to(kernel_hw[:, :, None, None], (*kernel_hw.shape, 1, channels)).astype(x.dtype)
    return lax.conv_general_dilated(
        x, kernel, window_strides=(1, 1), padding="VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=channels)


def upfirdn2d(x, f, up=1, down=1, padding: Padding = 0, flip_filter: bool = False, gain: float = 1.0):
    """Pad, upsample, FIR-filter and downsample a batch of NHWC images.

    In order: insert `up - 1` zeros after each pixel; pad (negative values crop) with [x0, x1, y0, y1];
    convolve (a true convolution, so the filter is flipped unless `flip_filter`) with `f * gain ** (f.ndim / 2)`;
    keep every `down`-th pixel.
    """
    if f is None:
        f = jnp.ones((1, 1), jnp.float32)
    f = jnp.asarray(f, jnp.float32)
    upx, upy = _parse_scaling(up)
    downx, downy = _parse_scaling(down)
    padx0, padx1, pady0, pady1 = _parse_padding(padding)
    n, h, w, c = x.shape

    # Upsample by inserting zeros after each pixel.
    if upx > 1 or upy > 1:
        x = x.reshape(n, h, 1, w, 1, c)
        x = jnp.pad(x, ((0, 0), (0, 0), (0, upy - 1), (0, 0), (0, upx - 1), (0, 0)))
        x = x.reshape(n, h * upy, w * upx, c)

    # Pad with zeros, then crop where the padding is negative.
    x = jnp.pad(x, ((0, 0), (max(pady0, 0), max(pady1, 0)), (max(padx0, 0), max(padx1, 0)), (0, 0)))
    x = x[:, max(-pady0, 0): x.shape[1] - max(-pady1, 0), max(-padx0, 0): x.shape[2] - max(-padx1, 0), :]

    # A true convolution: correlate with the flipped filter.
    f = f * (gain ** (f.ndim / 2))
    if not flip_filter:
        f = jnp.flip(f, axis=tuple(range(f.ndim)))
    if f.ndim == 2:
        x = _depthwise(x, f)
    else:
        x = _depthwise(x, f[None, :])
        x = _depthwise(x, f[:, None])

    # Downsample by throwing away pixels.
    return x[:, ::downy, ::downx, :]


def upsample2d(x, f, up=2, padding: Padding = 0, flip_filter: bool = False, gain: float = 1.0):
    """Upsample by `up` with filter `f`; padding as the official helper (`(fw+up-1)//2`, `(fw-up)//2`), gain up**2."""
    upx, upy = _parse_scaling(up)
    padx0, padx1, pady0, pady1 = _parse_padding(padding)
    fw, fh = filter_size(f)
    p = [padx0 + (fw + upx - 1) // 2, padx1 + (fw - upx) // 2,
         pady0 + (fh + upy - 1) // 2, pady1 + (fh - upy) // 2]
    return upfirdn2d(x, f, up=(upx, upy), padding=p, flip_filter=flip_filter, gain=gain * upx * upy)


def downsample2d(x, f, down=2, padding: Padding = 0, flip_filter: bool = False, gain: float = 1.0):
    """Downsample by `down` with filter `f`; padding as the official helper (`(fw-down+1)//2`, `(fw-down)//2`)."""
    downx, downy = _parse_scaling(down)
    padx0, padx1, pady0, pady1 = _parse_padding(padding)
    fw, fh = filter_size(f)
    p = [padx0 + (fw - downx + 1) // 2, padx1 + (fw - downx) // 2,
         pady0 + (fh - downy + 1) // 2, pady1 + (fh - downy) // 2]
    return upfirdn2d(x, f, down=(downx, downy), padding=p, flip_filter=flip_filter, gain=gain)


def filter2d(x, f, padding: Padding = 0, flip_filter: bool = False, gain: float = 1.0):
    """Filter without resampling, keeping the size: padding `fw//2`, `(fw-1)//2`."""
    padx0, padx1, pady0, pady1 = _parse_padding(padding)
    fw, fh = filter_size(f)
    p = [padx0 + fw // 2, padx1 + (fw - 1) // 2, pady0 + fh // 2, pady1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=p, flip_filter=flip_filter, gain=gain)
