"""The XLA (pure jnp) formulations of upfirdn2d: the reference that the Pallas kernel is checked against and
falls back to.

Both compute stylegan2-ada-pytorch's `upfirdn2d` (`torch_utils/ops/upfirdn2d.py`,
NVlabs/stylegan2-ada-pytorch@d72cc7d) on NHWC activations:

- `upfirdn2d_reference`: the official steps of `_upfirdn2d_ref` literally (zero-stuff, pad or crop, depthwise
  true convolution with `f * gain ** (f.ndim / 2)`, decimate).
- `upfirdn2d_xla`: polyphase taps, the structure of the official CUDA kernel (`upfirdn2d_kernel_small` in
  `torch_utils/ops/upfirdn2d.cu`, same commit). Each output phase is a sum of the filter's non-zero taps times
  shifted, strided slices of the input, so an upsampling touches only the taps that meet a sample (4 of 16 for
  up 2 with a 4x4 filter) and nothing is zero-stuffed. On CPU, XLA's depthwise convolution was 38x slower than
  this for the synthesis layers' FIR (134 ms vs 3.5 ms on [1, 257, 257, 64]) and made up half of the
  generator's time; results agree with the reference to float32 rounding (the sum runs in a different order).

This module imports no kernel and no dispatcher: the public op (jaxgan/ops/upfirdn2d.py) runs `upfirdn2d_xla`
for `implementation="xla"`, and the Pallas kernel's backward (pallas_kernels/upfirdn2d.py) calls it directly.
The polyphase plan is jaxgan/ops/upfirdn2d_plan.py, shared with the kernel.
"""

import functools

import jax
import jax.numpy as jnp
from jax import lax

from jaxgan.ops.upfirdn2d_plan import (AxisPlan, Padding, correlation_kernel, identity_plan, parse_padding,
                                       parse_scaling, transposed_padding)


def upfirdn2d_xla(x, f, up=1, down=1, padding: Padding = 0, flip_filter: bool = False, gain: float = 1.0):
    """upfirdn2d of NHWC `x` computed polyphase in jnp (arguments as jaxgan.ops.upfirdn2d.upfirdn2d).

    Differentiated as the official op is (`_upfirdn2d_cuda`'s backward): the gradient w.r.t. x is the adjoint
    upfirdn2d (up and down swapped, the filter flipped, `transposed_padding`), itself this function, so second
    derivatives take the same path. Autodiff of the polyphase slices instead kept one full-size buffer per tap
    alive (a 12-tap up-2 / down-2 pair on [1, 150, 150, 512]: 3.2 GB of temporaries against 0.28 GB this way)."""
    if f is None:
        f = jnp.ones((1, 1), jnp.float32)
    return _upfirdn2d(x, jnp.asarray(f, jnp.float32), parse_scaling(up), parse_scaling(down), parse_padding(padding),
                      bool(flip_filter), float(gain))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5, 6))
def _upfirdn2d(x, f, up, down, padding, flip_filter, gain):
    return _polyphase(x, f, up, down, padding, flip_filter, gain)


def _upfirdn2d_fwd(x, f, up, down, padding, flip_filter, gain):
    return _polyphase(x, f, up, down, padding, flip_filter, gain), (x, f)


def _upfirdn2d_bwd(up, down, padding, flip_filter, gain, residuals, g):
    x, f = residuals
    gx = _upfirdn2d(g, f, down, up, transposed_padding(x.shape, f, up, down, padding), not flip_filter, gain)
    # d/df (StyleGAN's filters are fixed buffers, so rarely wanted): autodiff of the plain formulation; under jit
    # XLA removes it when nothing uses it.
    _, filter_vjp = jax.vjp(lambda f_: _polyphase(x, f_, up, down, padding, flip_filter, gain), f)
    (gf,) = filter_vjp(g)
    return gx.astype(x.dtype), gf


_upfirdn2d.defvjp(_upfirdn2d_fwd, _upfirdn2d_bwd)


def _polyphase(x, f, up, down, padding, flip_filter, gain):
    kernel, plan_x, plan_y = correlation_kernel(x.shape, f, up, down, padding, flip_filter, gain)
    if kernel.ndim == 2:
        return _polyphase_2d(x, kernel, plan_y, plan_x)
    # Separable: along W, then along H, as the reference's two depthwise convolutions.
    x = _polyphase_2d(x, kernel[None, :], identity_plan(x.shape[1]), plan_x)
    return _polyphase_2d(x, kernel[:, None], plan_y, identity_plan(x.shape[2]))


def _axis_padding(plan: AxisPlan) -> tuple[int, int]:
    """Zeros needed before and after an axis so that every tap `x[down * q + c]` of the plan reads inside it."""
    offsets = plan.offsets
    lo = max(0, -min(offsets))
    hi = max(0, plan.down * (plan.per_phase - 1) + max(offsets) + 1 - plan.size)
    return lo, hi


def _strided_taps(x, plan_y: AxisPlan, plan_x: AxisPlan):
    """{(cy, cx): x[down_y * q + cy, down_x * p + cx]} for the plans' offsets, zero outside the input.

    One zero-padded copy of x, every tap a strided slice of it: XLA fuses the slices into the sum that reads
    them. (Padding the row-shifted slices along W, one copy per row shift, kept 4 image-size copies alive at once
    for a 4x4 filter: 4 x 32 MB at a 256 px layer of 128 channels.)"""
    (lo_y, hi_y), (lo_x, hi_x) = _axis_padding(plan_y), _axis_padding(plan_x)
    padded = jnp.pad(x, ((0, 0), (lo_y, hi_y), (lo_x, hi_x), (0, 0)))
    span_y = plan_y.down * (plan_y.per_phase - 1) + 1
    span_x = plan_x.down * (plan_x.per_phase - 1) + 1
    n, c = x.shape[0], x.shape[3]
    return {(cy, cx): lax.slice(padded, (0, cy + lo_y, cx + lo_x, 0), (n, cy + lo_y + span_y, cx + lo_x + span_x, c),
                                (1, plan_y.down, plan_x.down, 1))
            for cy in sorted(set(plan_y.offsets)) for cx in sorted(set(plan_x.offsets))}


def _polyphase_2d(x, kernel, plan_y: AxisPlan, plan_x: AxisPlan):
    """Correlate NHWC `x` with the 2-D `kernel` [kh, kw] as planned, one output phase at a time."""
    n, _, _, c = x.shape
    grid = _strided_taps(x, plan_y, plan_x)
    zeros = jnp.zeros((n, plan_y.per_phase, plan_x.per_phase, c), x.dtype)
    phase_rows = []
    for taps_y in plan_y.phases:
        phase_cols = []
        for taps_x in plan_x.phases:
            acc = None
            for ky, cy in taps_y:
                for kx, cx in taps_x:
                    term = kernel[ky, kx].astype(x.dtype) * grid[cy, cx]
                    acc = term if acc is None else acc + term
            phase_cols.append(zeros if acc is None else acc)
        phase_rows.append(jnp.stack(phase_cols, axis=3))  # [N, Qy, Qx, up_x, C]
    out = jnp.stack(phase_rows, axis=2)  # [N, Qy, up_y, Qx, up_x, C]: output (up*q + r) is row-major here
    out = out.reshape(n, plan_y.per_phase * plan_y.up, plan_x.per_phase * plan_x.up, c)
    return out[:, :plan_y.out, :plan_x.out]


def _depthwise(x, kernel_hw):
    """Correlate every channel of NHWC `x` with the same [kh, kw] kernel (VALID)."""
    channels = x.shape[-1]
    kernel = jnp.broadcast_to(kernel_hw[:, :, None, None], (*kernel_hw.shape, 1, channels)).astype(x.dtype)
    return lax.conv_general_dilated(
        x, kernel, window_strides=(1, 1), padding="VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=channels)


def upfirdn2d_reference(x, f, up=1, down=1, padding: Padding = 0, flip_filter: bool = False, gain: float = 1.0):
    """The official algorithm step by step (the formulation the polyphase implementations are tested against).

    In order: insert `up - 1` zeros after each pixel; pad (negative values crop) with [x0, x1, y0, y1];
    convolve (a true convolution, so the filter is flipped unless `flip_filter`) with `f * gain ** (f.ndim / 2)`;
    keep every `down`-th pixel.
    """
    if f is None:
        f = jnp.ones((1, 1), jnp.float32)
    f = jnp.asarray(f, jnp.float32)
    upx, upy = parse_scaling(up)
    downx, downy = parse_scaling(down)
    padx0, padx1, pady0, pady1 = parse_padding(padding)
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
