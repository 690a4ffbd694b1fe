"""Bilinear resizing with PyTorch's `F.interpolate(mode='bilinear', align_corners=False)` numerics.

Used by DragGAN (`Renderer._render_drag_impl` in `viz/renderer.py`, line 319, XingangPan/DragGAN@336f120: the block
feature is resized to the image size with `F.interpolate(..., mode='bilinear')`) and by the other editing methods
that upsample features. The source coordinate of output pixel d is `scale * (d + 0.5) - 0.5` with `scale = in / out`
in float32, clamped at 0, with the upper neighbour clamped at the last row (PyTorch's
`area_pixel_compute_source_index`). The taps and weights depend only on the static sizes, so they are computed once
on the host in float32; the device does two gathers and two weighted sums per axis, width first then height, the
order of PyTorch's CPU kernel.
"""

import functools

import jax.numpy as jnp
import numpy as np


@functools.cache
def linear_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(lower index, upper index, lower weight, upper weight) for each output position, float32 weights."""
    scale = np.float32(in_size) / np.float32(out_size)
    dst = np.arange(out_size, dtype=np.float32)
    src = np.maximum(scale * (dst + np.float32(0.5)) - np.float32(0.5), np.float32(0))
    lower = src.astype(np.int32)  # src >= 0, so truncation is floor
    upper = np.where(lower < in_size - 1, lower + 1, lower)
    w_upper = (src - lower.astype(np.float32)).astype(np.float32)
    w_lower = (np.float32(1) - w_upper).astype(np.float32)
    return lower, upper, w_lower, w_upper


def resize_bilinear(x, size: tuple[int, int]):
    """x [..., H, W, C] -> [..., size[0], size[1], C], half-pixel centres, edges clamped, no antialiasing."""
    out_h, out_w = size
    lo, hi, w_lo, w_hi = linear_taps(x.shape[-2], out_w)
    x = (jnp.take(x, jnp.asarray(lo), axis=-2) * w_lo[:, None]
         + jnp.take(x, jnp.asarray(hi), axis=-2) * w_hi[:, None])
    lo, hi, w_lo, w_hi = linear_taps(x.shape[-3], out_h)
    return (jnp.take(x, jnp.asarray(lo), axis=-3) * w_lo[:, None, None]
            + jnp.take(x, jnp.asarray(hi), axis=-3) * w_hi[:, None, None])
