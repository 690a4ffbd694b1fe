"""Bilinear sampling with zero padding, as PyTorch's `F.grid_sample(mode='bilinear', padding_mode='zeros',
align_corners=True)` reads a [H, W, C] map at arbitrary points.

DragGAN's motion supervision (`Renderer._render_drag_impl` in `viz/renderer.py`, lines 345-360,
XingangPan/DragGAN@336f120) samples the feature map at pixel positions shifted by a unit vector. The official code
normalises the positions to [-1, 1] and grid_sample maps them back; that float32 round trip is reproduced here
(`grid_coordinate`) because it moves positions by up to 1e-5 px, which decides the floor when a shift is exactly
axis-aligned. Taps outside the map read zeros.
"""

import jax.numpy as jnp


def grid_coordinate(pixel, size: int):
    """The float32 position grid_sample actually reads for `pixel`: normalise with align_corners=True, then
    unnormalise (PyTorch computes `(g + 1) * ((size - 1) / 2)`, which equals `((g + 1) / 2) * (size - 1)`)."""
    pixel = jnp.asarray(pixel, jnp.float32)
    g = pixel / jnp.float32(size - 1) * jnp.float32(2) - jnp.float32(1)
    return (g + jnp.float32(1)) * jnp.float32((size - 1) / 2)


def sample_bilinear_zeros(x, rows, cols):
    """x [H, W, C]; rows, cols: float32 arrays of one shape S (pixel units) -> [*S, C]. Out-of-map taps are 0."""
    return sample_bilinear_zeros_of(lambda r, c: x[r, c], x.shape[0], x.shape[1], rows, cols)


def sample_bilinear_zeros_of(read, height: int, width: int, rows, cols):
    """`sample_bilinear_zeros` of a [height, width, C] map that `read(r, c)` reads at integer arrays r, c (inside the
    map) instead of indexing it: e.g. an upsampled map read through its taps (`resize.resize_bilinear_at`)."""
    r0 = jnp.floor(rows)
    c0 = jnp.floor(cols)
    w_south = rows - r0
    w_east = cols - c0
    w_north = 1 - w_south
    w_west = 1 - w_east
    r0 = r0.astype(jnp.int32)
    c0 = c0.astype(jnp.int32)

    def tap(r, c):
        inside = (r >= 0) & (r < height) & (c >= 0) & (c < width)
        value = read(jnp.clip(r, 0, height - 1), jnp.clip(c, 0, width - 1))
        return jnp.where(inside[..., None], value, 0)

    return ((w_north * w_west)[..., None] * tap(r0, c0) + (w_north * w_east)[..., None] * tap(r0, c0 + 1)
            + (w_south * w_west)[..., None] * tap(r0 + 1, c0) + (w_south * w_east)[..., None] * tap(r0 + 1, c0 + 1))
