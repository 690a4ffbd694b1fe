"""DragGAN point tracking: the nearest neighbour of a reference feature in a square window around each point.

Follows the point tracking of DragGAN's `Renderer._render_drag_impl` (`viz/renderer.py`, lines 328-341,
XingangPan/DragGAN@336f120): for every handle point, the L2 distance over channels between its reference feature and
the feature map at each pixel of the (2r+1)^2 window centred on it (clipped at the border); the new point is the
pixel of the smallest distance, the first one in row-major order on ties, as `torch.min` returns it.
jaxgan/edit/drag.py calls it once per step for every point of every session (vmapped over sessions).

`implementation="pallas"` runs pallas_kernels/point_tracking.py (one program per point, sessions through vmap's
batching rule); None: jaxgan/ops/implementation.py decides (XLA for now). The result is an integer position,
so there is nothing to differentiate: callers pass features under `lax.stop_gradient` (the kernel does so itself).
"""

import jax
import jax.numpy as jnp

from jaxgan.ops import implementation as impl


def nearest_in_window(feat, refs, points, radius: int, *, implementation: str | None = None):
    """feat: [H, W, C]; refs: [P, C]; points: [P, 2] integer (row, col) inside the map -> [P, 2] int32."""
    radius = _checked(radius)
    if impl.resolve("point_tracking", implementation) == "pallas":
        from pallas_kernels.point_tracking import nearest_in_window as tracking_pallas  # only when selected
        return tracking_pallas(feat, refs, points, radius, interpret=impl.interpret_mode())
    return _nearest_read(lambda r, c: feat[r, c], feat.shape[0], feat.shape[1], refs, points, radius)


def nearest_in_window_of(read, height: int, width: int, refs, points, radius: int, *,
                         implementation: str | None = None):
    """`nearest_in_window` of a [height, width, C] map that `read(r, c)` reads at integer arrays r, c (inside the
    map), e.g. an upsampled map through its taps (`resize.resize_bilinear_at`), so that only the windows are ever
    formed. The Pallas kernel takes a whole map: it gets `read` of every pixel."""
    radius = _checked(radius)
    if impl.resolve("point_tracking", implementation) == "pallas":
        every = read(jnp.arange(height)[:, None], jnp.arange(width)[None, :])
        return nearest_in_window(every, refs, points, radius, implementation="pallas")
    return _nearest_read(read, height, width, refs, points, radius)


def _checked(radius) -> int:
    radius = int(radius)
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    return radius


def _nearest_read(read, h: int, w: int, refs, points, radius: int):
    offsets = jnp.arange(-radius, radius + 1)
    side = 2 * radius + 1

    def track_one(point, ref):
        rows = point[0] + offsets
        cols = point[1] + offsets
        window = read(jnp.clip(rows, 0, h - 1)[:, None], jnp.clip(cols, 0, w - 1)[None, :])
        dist = jnp.sqrt(jnp.sum(jnp.square(window - ref), axis=-1))
        inside = ((rows >= 0) & (rows < h))[:, None] & ((cols >= 0) & (cols < w))[None, :]
        best = jnp.argmin(jnp.where(inside, dist, jnp.inf).reshape(-1))
        return jnp.stack([rows[best // side], cols[best % side]]).astype(jnp.int32)

    return jax.vmap(track_one)(points, refs)
