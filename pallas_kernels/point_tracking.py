"""DragGAN point tracking as a Pallas kernel: windowed nearest-neighbour search for many points and sessions.

Same signature and result as jaxgan/ops/point_tracking.py `nearest_in_window` (the jnp reference), plus
`interpret`. Computes the point tracking of DragGAN's `Renderer._render_drag_impl` (`viz/renderer.py`, lines
328-341, XingangPan/DragGAN@336f120): for each point, the L2 distance (sqrt of the sum of squares over channels)
between its reference feature and every pixel of the (2r+1)^2 window centred on it, clipped at the border; the
first minimum in row-major order wins, as `torch.min` over the flattened window returns it.

One program per point (grid (P,)). It reads the point's (row, col) as scalars, loads one (B, B, C) window of the
feature map at a data-dependent offset (B = the next power of two >= 2r+1; the map is zero-padded by r on the
top and left and enough on the bottom and right, so no load leaves the array and no clipping is needed), computes
the distances, masks what lies outside the window or the image, and takes the first minimum explicitly:
min over distances, then the smallest row-major index (row * B + col orders exactly as the window's row-major
order) among the pixels equal to it, so the tie rule does not depend on how a backend implements argmin.
Channels are zero-padded to a power of two (adding 0 to every distance). Many sessions: `jax.vmap` over the
op (drag.make_batched_step does) becomes an extra grid axis through pallas_call's batching rule, so one launch
covers every point of every session.

Gradient: none is needed and no custom_vjp is defined. The outputs are integer pixel positions, piecewise
constant in the features (their derivative is zero wherever it exists), and JAX gives integer outputs no
cotangent; the wrapper applies `lax.stop_gradient` to the features so that differentiating a function that also
tracks (drag_step differentiates the features it tracks on) never asks pallas_call for a JVP.

GPU lowering: written for the **Triton** lowering (`compiler_params=pltriton.CompilerParams`): the window starts
at a position read from memory, a direct `ref[pl.ds(row, B), pl.ds(col, B), :]` load from global memory there,
whereas Mosaic GPU's BlockSpec pipelining has block indices fixed by the grid (a data-dependent window would need
scalar prefetch and a manual TMA copy). B * B * C floats per program (16 * 16 * 256 * 4 bytes = 256 KiB for
r = 6 at 256 px) is large for registers; a GPU version would loop over channel chunks. **Tested only in interpret
mode on CPU**: never lowered or run on a GPU; GPU performance unmeasured.
"""

import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from pallas_kernels.common import next_pow2, output_struct, triton_params


def nearest_in_window(feat, refs, points, radius: int, *, interpret: bool = False):
    """feat: [H, W, C]; refs: [P, C]; points: [P, 2] integer (row, col) inside the map -> [P, 2] int32."""
    radius = int(radius)
    h, w, c = feat.shape
    p = refs.shape[0]
    side = 2 * radius + 1
    block = next_pow2(side)
    cp = next_pow2(c)
    # The window of a point at (row, col) starts at (row, col) in the padded map.
    feat = jnp.pad(lax.stop_gradient(feat).astype(jnp.float32),
                   ((radius, block - radius), (radius, block - radius), (0, cp - c)))
    refs = jnp.pad(lax.stop_gradient(refs).astype(jnp.float32), ((0, 0), (0, cp - c)))
    points = jnp.asarray(points, jnp.int32)

    def body(feat_ref, refs_ref, points_ref, out_ref):
        i = pl.program_id(0)
        row, col = points_ref[i, 0], points_ref[i, 1]
        window = feat_ref[pl.ds(row, block), pl.ds(col, block), :]
        ref = refs_ref[i, :]
        dist = jnp.sqrt(jnp.sum(jnp.square(window - ref[None, None, :]), axis=-1))
        dy = lax.broadcasted_iota(jnp.int32, (block, block), 0)
        dx = lax.broadcasted_iota(jnp.int32, (block, block), 1)
        rows, cols = row - radius + dy, col - radius + dx
        inside = (dy < side) & (dx < side) & (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
        dist = jnp.where(inside, dist, jnp.inf)
        order = dy * block + dx
        first = jnp.min(jnp.where(dist == jnp.min(dist), order, block * block))
        out_ref[i, 0] = row - radius + first // block
        out_ref[i, 1] = col - radius + first % block

    return pl.pallas_call(
        body,
        out_shape=output_struct((p, 2), jnp.int32, feat, refs, points),
        grid=(p,),
        interpret=interpret,
        compiler_params=None if interpret else triton_params(),
        name="draggan_point_tracking",
    )(feat, refs, points)
