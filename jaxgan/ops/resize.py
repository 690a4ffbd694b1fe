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


def resize_bilinear_at(x, size: tuple[int, int], rows, cols):
    """`resize_bilinear(x, size)[rows, cols]` without the resized map: x [H, W, C]; rows, cols integer arrays of one
    shape S inside the output -> [*S, C]. The same taps, weights and order of operations (width, then height) at
    just those pixels, so a caller that reads a few windows of an upsampled map (DragGAN's patches and search
    windows) neither stores the map nor, when differentiating, its gradient."""
    r_lo, r_hi, r_wlo, r_whi = (jnp.asarray(t) for t in linear_taps(x.shape[0], size[0]))
    c_lo, c_hi, c_wlo, c_whi = (jnp.asarray(t) for t in linear_taps(x.shape[1], size[1]))
    rows, cols = jnp.asarray(rows), jnp.asarray(cols)
    lo_c, hi_c = c_lo[cols], c_hi[cols]
    wlo_c, whi_c = c_wlo[cols][..., None], c_whi[cols][..., None]

    def along_width(source_rows):
        return x[source_rows, lo_c] * wlo_c + x[source_rows, hi_c] * whi_c
    return along_width(r_lo[rows]) * r_wlo[rows][..., None] + along_width(r_hi[rows]) * r_whi[rows][..., None]


def resize_bilinear_rows(x, size: tuple[int, int], rows):
    """`resize_bilinear(x, size)[rows]` for x [H, W, C] and a 1-D integer array of output rows -> [len(rows),
    size[1], C]: a band of the resized map (DragGAN's mask term, formed band by band), with the same arithmetic."""
    r_lo, r_hi, r_wlo, r_whi = (jnp.asarray(t) for t in linear_taps(x.shape[0], size[0]))
    c_lo, c_hi, c_wlo, c_whi = linear_taps(x.shape[1], size[1])
    rows = jnp.asarray(rows)

    def along_width(source_rows):
        band = jnp.take(x, source_rows, axis=0)
        return (jnp.take(band, jnp.asarray(c_lo), axis=1) * c_wlo[:, None]
                + jnp.take(band, jnp.asarray(c_hi), axis=1) * c_whi[:, None])
    return (along_width(r_lo[rows]) * r_wlo[rows][:, None, None]
            + along_width(r_hi[rows]) * r_whi[rows][:, None, None])
