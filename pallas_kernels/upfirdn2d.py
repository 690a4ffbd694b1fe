"""`upfirdn2d` as a polyphase Pallas kernel: up 2 / down 2 / pad with any small separable or 2-D filter.

Same signature and result as the public op jaxgan/ops/upfirdn2d.py, plus `interpret`; its references are the
XLA formulations of jaxgan/ops/upfirdn2d_xla.py (`upfirdn2d_reference`, the official algorithm, and the
polyphase `upfirdn2d_xla`). The structure follows stylegan2-ada-pytorch (NVlabs/stylegan2-ada-pytorch@d72cc7d):
the CUDA kernel `upfirdn2d_kernel_small` in `torch_utils/ops/upfirdn2d.cu` visits only the polyphase taps
(filterH/up x filterW/up, 4 instead of 16 multiply-adds per output for up 2 with a 4x4 filter), and the backward
of `_upfirdn2d_cuda` in `torch_utils/ops/upfirdn2d.py` is another upfirdn2d with up and down swapped and the
filter flipped. Pallas limits it works within (jax 0.10.2): `pallas_call` cannot be differentiated (hence the
`custom_vjp`), a kernel cannot capture constants (`jax/_src/pallas/pallas_call.py`; the filter is an input),
and the Triton lowering loads and stores power-of-two blocks only (`jax/_src/pallas/triton/lowering.py`).

Tiling: the grid is (batch, output-row tiles, output-column tiles, channel tiles); one program computes a
(BQ, BP, BC) tile of every output phase (ry, rx), each phase a sum over its non-zero taps of a shifted, strided
(BQ, BP, BC) window of the zero-extended input, and writes it with a strided store to output rows
`up_y * q + ry`, columns `up_x * p + rx`. Tiles and channels are padded to powers of two in the wrapper, so
every load and store has a power-of-two size; nothing is zero-stuffed. A 1-D filter runs as two passes (along W,
then along H), as the reference's two depthwise convolutions. `axis_plan` (shared with the XLA formulation) says
which taps each phase uses.

GPU lowering: written for the **Triton** lowering (`compiler_params=pltriton.CompilerParams`). The windows of
neighbouring tiles overlap (a halo of filter_size / up rows and columns) and start at arbitrary offsets, which
the Triton lowering reads directly from global memory with `ref[pl.ds(start, size, stride)]`; the default
Mosaic GPU lowering of jax 0.10.2 stages non-overlapping BlockSpec blocks into shared memory, so it would need
explicit TMA copies of haloed tiles (`plgpu.kernel` / `emit_pipeline`), a rewrite for when the Triton backend
(deprecated in JAX 0.11) goes away. Block sizes are untuned.

**Tested only in interpret mode on CPU** (tests/pallas_kernels/): it has never been lowered or run on a GPU,
and its GPU performance is unmeasured. `implementation="pallas"` on the public op selects it.
"""

import dataclasses
import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from jaxgan.ops.upfirdn2d_plan import (AxisPlan, Padding, axis_plan, correlation_kernel, parse_padding, parse_scaling,
                                       transposed_padding)
from jaxgan.ops.upfirdn2d_xla import upfirdn2d_xla
from pallas_kernels.common import next_pow2, output_struct, triton_params


@dataclasses.dataclass(frozen=True)
class Tiling:
    """Tile of one program: BQ x BP output positions per phase, BC channels (powers of two)."""

    rows: int = 8
    cols: int = 8
    channels: int = 32

    def for_shape(self, per_phase_y: int, per_phase_x: int, channels: int) -> "Tiling":
        """Shrink the tile to the problem (small problems get one tile, still of power-of-two size)."""
        return Tiling(min(self.rows, next_pow2(per_phase_y)), min(self.cols, next_pow2(per_phase_x)),
                      min(self.channels, next_pow2(channels)))


@dataclasses.dataclass(frozen=True)
class TileIndex:
    """Where the current program's tile lies, for epilogues that read per-pixel or per-channel operands."""

    batch: jax.Array
    out_rows: Callable[[int], pl.Slice]   # phase ry -> the output rows of this tile in that phase
    out_cols: Callable[[int], pl.Slice]
    channels: pl.Slice


@dataclasses.dataclass(frozen=True)
class FirLayout:
    """The padded problem one `fir_call` computes: tile, per-phase rows / columns and channels rounded up to it."""

    tile: Tiling
    rows: int      # per-phase output rows, a multiple of tile.rows
    cols: int
    channels: int  # a multiple of tile.channels

    def padded_output(self, plan_y: AxisPlan, plan_x: AxisPlan) -> tuple[int, int]:
        """(height, width) of the kernel's output before the crop to (plan_y.out, plan_x.out)."""
        return plan_y.up * self.rows, plan_x.up * self.cols


def fir_layout(plan_y: AxisPlan, plan_x: AxisPlan, channels: int, tiling: Tiling = Tiling()) -> FirLayout:
    tile = tiling.for_shape(plan_y.per_phase, plan_x.per_phase, channels)
    return FirLayout(tile=tile, rows=-(-plan_y.per_phase // tile.rows) * tile.rows,
                     cols=-(-plan_x.per_phase // tile.cols) * tile.cols,
                     channels=-(-channels // tile.channels) * tile.channels)


def fir_call(x, kernel, plan_y: AxisPlan, plan_x: AxisPlan, *, interpret: bool, tiling: Tiling = Tiling(),
             extra: Sequence = (), tail: Callable | None = None, out_dtype=None):
    """Run the polyphase FIR kernel: NHWC `x`, 2-D correlation `kernel` [kh, kw] (gain folded in).

    `extra` arrays (laid out for `fir_layout(...)`) are passed to the kernel after x and the kernel;
    `tail(acc, extra_refs, index, ry, rx)` (optional) transforms each finished (BQ, BP, BC) float32 phase tile
    before it is stored: the fused epilogue. Returns [N, plan_y.out, plan_x.out, C].
    """
    n, _, _, c = x.shape
    layout = fir_layout(plan_y, plan_x, c, tiling)
    tile, qy, qx, cp = layout.tile, layout.rows, layout.cols, layout.channels

    # Zero-extend the input so every tap window of every (padded) tile is in bounds.
    def extent(plan: AxisPlan, q: int):
        lo = max(0, -min(plan.offsets))
        hi = max(0, plan.down * (q - 1) + max(plan.offsets) + 1 - plan.size)
        return lo, hi

    (ylo, yhi), (xlo, xhi) = extent(plan_y, qy), extent(plan_x, qx)
    xe = jnp.pad(x, ((0, 0), (ylo, yhi), (xlo, xhi), (0, cp - c)))
    kernel = jnp.asarray(kernel, jnp.float32)

    def body(x_ref, k_ref, *refs):
        extra_refs, o_ref = refs[:-1], refs[-1]
        b, i, j, cb = (pl.program_id(a) for a in range(4))
        q0, p0, c0 = i * tile.rows, j * tile.cols, cb * tile.channels
        chans = pl.ds(c0, tile.channels)
        index = TileIndex(
            batch=b, channels=chans,
            out_rows=lambda ry: pl.ds(plan_y.up * q0 + ry, tile.rows, stride=plan_y.up),
            out_cols=lambda rx: pl.ds(plan_x.up * p0 + rx, tile.cols, stride=plan_x.up))
        for ry, taps_y in enumerate(plan_y.phases):
            for rx, taps_x in enumerate(plan_x.phases):
                acc = None
                for ky, cy in taps_y:
                    rows = pl.ds(plan_y.down * q0 + cy + ylo, tile.rows, stride=plan_y.down)
                    for kx, cx in taps_x:
                        cols = pl.ds(plan_x.down * p0 + cx + xlo, tile.cols, stride=plan_x.down)
                        term = k_ref[ky, kx] * x_ref[b, rows, cols, chans].astype(jnp.float32)
                        acc = term if acc is None else acc + term
                if acc is None:  # a phase that meets no sample
                    acc = jnp.zeros((tile.rows, tile.cols, tile.channels), jnp.float32)
                if tail is not None:
                    acc = tail(acc, extra_refs, index, ry, rx)
                o_ref[b, index.out_rows(ry), index.out_cols(rx), chans] = acc.astype(o_ref.dtype)

    out = pl.pallas_call(
        body,
        out_shape=output_struct((n, plan_y.up * qy, plan_x.up * qx, cp), out_dtype or x.dtype, xe, *extra),
        grid=(n, qy // tile.rows, qx // tile.cols, cp // tile.channels),
        interpret=interpret,
        compiler_params=None if interpret else triton_params(),
        name="upfirdn2d_polyphase",
    )(xe, kernel, *extra)
    return out[:, :plan_y.out, :plan_x.out, :c]


def _forward(x, f, up, down, padding, flip_filter, gain, interpret, tiling):
    kernel, plan_x, plan_y = correlation_kernel(x.shape, f, up, down, padding, flip_filter, gain)
    if kernel.ndim == 2:
        return fir_call(x, kernel, plan_y, plan_x, interpret=interpret, tiling=tiling)
    ident_y = axis_plan(x.shape[1], 1, 1, 0, 0, 1)
    x = fir_call(x, kernel[None, :], ident_y, plan_x, interpret=interpret, tiling=tiling)
    ident_x = axis_plan(x.shape[2], 1, 1, 0, 0, 1)
    return fir_call(x, kernel[:, None], plan_y, ident_x, interpret=interpret, tiling=tiling)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5, 6, 7, 8))
def _upfirdn2d(x, f, up, down, padding, flip_filter, gain, interpret, tiling):
    return _forward(x, f, up, down, padding, flip_filter, gain, interpret, tiling)


def _upfirdn2d_fwd(x, f, up, down, padding, flip_filter, gain, interpret, tiling):
    return _forward(x, f, up, down, padding, flip_filter, gain, interpret, tiling), (x, f)


def _upfirdn2d_bwd(up, down, padding, flip_filter, gain, interpret, tiling, residuals, g):
    x, f = residuals
    # d/dx: the transposed upfirdn2d, itself this kernel (so second derivatives also run it).
    pad_t = transposed_padding(x.shape, f, up, down, padding)
    gx = _upfirdn2d(g, f, down, up, pad_t, not flip_filter, gain, interpret, tiling)
    # d/df (rarely wanted: StyleGAN's filters are fixed buffers): through the XLA formulation; under jit XLA
    # removes it when nobody uses it.
    _, filter_vjp = jax.vjp(lambda f_: upfirdn2d_xla(x, f_, up, down, padding, flip_filter, gain), f)
    (gf,) = filter_vjp(g)
    return gx.astype(x.dtype), gf


_upfirdn2d.defvjp(_upfirdn2d_fwd, _upfirdn2d_bwd)


def upfirdn2d(x, f, up=1, down=1, padding: Padding = 0, flip_filter: bool = False, gain: float = 1.0, *,
              interpret: bool = False, tiling: Tiling = Tiling()):
    """Pallas upfirdn2d of NHWC `x`; arguments as jaxgan.ops.upfirdn2d. `interpret=True` runs it on CPU."""
    if f is None:
        f = jnp.ones((1, 1), jnp.float32)
    f = jnp.asarray(f, jnp.float32)
    up = parse_scaling(up)
    down = parse_scaling(down)
    padding = parse_padding(padding)
    return _upfirdn2d(x, f, up, down, padding, bool(flip_filter), float(gain), bool(interpret), tiling)
