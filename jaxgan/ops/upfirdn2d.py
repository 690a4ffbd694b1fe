"""Upsample, FIR-filter, downsample: `upfirdn2d` exactly as stylegan2-ada-pytorch's `torch_utils/ops/upfirdn2d.py`.

Follows ../shared/specs/stylegan2.md §1.1 (`upfirdn2d`, `setup_filter`, the helper padding table) and the
pitfalls of §4.5 (true convolution, not correlation; gain applied as `gain ** (f.ndim / 2)`).

Activations are NHWC. A filter is a 1-D (separable) or 2-D numpy/jax array; it is treated as data, so a filter
passed under `jax.jit` may be traced or constant.

Two formulations of the same definition:

- `upfirdn2d_reference`: the official steps literally (zero-stuff, pad, depthwise convolution, decimate).
- the XLA implementation of `upfirdn2d` (the default): polyphase taps (spec §4.3, what the CUDA kernel does).
  Each output phase is a sum of the filter's non-zero taps times shifted, strided slices of the input, so an
  upsampling touches only the taps that meet a sample (4 of 16 for up 2 with a 4x4 filter) and nothing is
  zero-stuffed. On CPU, XLA's depthwise convolution was 38x slower than this for the synthesis layers' FIR
  (134 ms vs 3.5 ms on [1, 257, 257, 64]) and made up half of the generator's time; results agree with the
  reference to float32 rounding (the sum runs in a different order). `axis_plan` is shared with the Pallas
  kernel (pallas_kernels/upfirdn2d.py), which `implementation="pallas"` selects (jaxgan/ops/implementation.py).
"""

import dataclasses
from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxgan.ops import implementation as impl

Padding = int | Sequence[int]


def setup_filter(f, normalize: bool = True, flip_filter: bool = False, gain: float = 1.0,
                 separable: bool | None = None):
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


def upfirdn2d(x, f, up=1, down=1, padding: Padding = 0, flip_filter: bool = False, gain: float = 1.0, *,
              implementation: str | None = None):
    """Pad, upsample, FIR-filter and downsample a batch of NHWC images.

    In order: insert `up - 1` zeros after each pixel; pad (negative values crop) with [x0, x1, y0, y1];
    convolve (a true convolution, so the filter is flipped unless `flip_filter`) with `f * gain ** (f.ndim / 2)`;
    keep every `down`-th pixel. Computed polyphase (module docstring); `implementation` as in
    jaxgan/ops/implementation.py ("xla", "pallas", None: the default).
    """
    if impl.resolve("upfirdn2d", implementation) == "pallas":
        from pallas_kernels.upfirdn2d import upfirdn2d as upfirdn2d_pallas  # pallas_kernels imports this module
        return upfirdn2d_pallas(x, f, up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain,
                                interpret=impl.interpret_mode())
    kernel, plan_x, plan_y = correlation_kernel(x.shape, f, up, down, padding, flip_filter, gain)
    if kernel.ndim == 2:
        return _polyphase_2d(x, kernel, plan_y, plan_x)
    # Separable: along W, then along H, as the reference's two depthwise convolutions.
    x = _polyphase_2d(x, kernel[None, :], _identity_plan(x.shape[1]), plan_x)
    return _polyphase_2d(x, kernel[:, None], plan_y, _identity_plan(x.shape[2]))


@dataclasses.dataclass(frozen=True)
class AxisPlan:
    """One axis of upfirdn2d as polyphase taps.

    Output `up * q + r` (q = 0 .. per_phase - 1, r = 0 .. up - 1) is the sum over `(k, c)` in `phases[r]` of
    `kernel[k] * x[down * q + c]`, with x zero outside [0, size) and `kernel` the correlation kernel (the filter
    flipped unless flip_filter, times the gain). Outputs at or past `out` are computed and then cropped.
    """

    size: int
    up: int
    down: int
    out: int
    per_phase: int
    phases: tuple[tuple[tuple[int, int], ...], ...]

    @property
    def offsets(self) -> tuple[int, ...]:
        return tuple(c for phase in self.phases for _, c in phase)


def axis_plan(size: int, up: int, down: int, pad0: int, pad1: int, taps: int) -> AxisPlan:
    """Polyphase plan of one axis: which taps each output phase uses and where they read (AxisPlan).

    With the zero-stuffed, padded input u (u[i] = x[(i - pad0) / up] where that is a whole number), output o is
    sum_k kernel[k] * u[o * down + k]; only the k with (o * down + k - pad0) divisible by `up` meet a sample,
    and which ones depends on o only through its phase o mod up.
    """
    if up < 1 or down < 1:
        raise ValueError(f"up and down must be >= 1, got up={up}, down={down}")
    out = (size * up + pad0 + pad1 - taps) // down + 1
    if out <= 0:
        raise ValueError(f"upfirdn2d: an axis of {size} samples with up={up}, down={down}, padding=({pad0}, "
                         f"{pad1}) and a {taps}-tap filter leaves no output")
    phases = []
    for r in range(up):
        start = r * down - pad0
        phases.append(tuple((k, (start + k) // up) for k in range(taps) if (start + k) % up == 0))
    return AxisPlan(size=size, up=up, down=down, out=out, per_phase=-(-out // up), phases=tuple(phases))


def _identity_plan(size: int) -> AxisPlan:
    return axis_plan(size, 1, 1, 0, 0, 1)


def correlation_kernel(shape, f, up, down, padding, flip_filter: bool, gain: float):
    """(kernel, plan along W, plan along H) for NHWC `shape`: the filter as a correlation kernel with the gain
    folded in (1-D stays 1-D, i.e. separable), and the two axis plans."""
    if f is None:
        f = jnp.ones((1, 1), jnp.float32)
    f = jnp.asarray(f, jnp.float32)
    if f.ndim not in (1, 2):
        raise ValueError(f"filter must be 1-D or 2-D, got shape {f.shape}")
    if len(shape) != 4:
        raise ValueError(f"upfirdn2d expects NHWC images, got shape {tuple(shape)}")
    upx, upy = _parse_scaling(up)
    downx, downy = _parse_scaling(down)
    padx0, padx1, pady0, pady1 = _parse_padding(padding)
    fw, fh = filter_size(f)
    kernel = f * (gain ** (f.ndim / 2))
    if not flip_filter:
        kernel = jnp.flip(kernel, axis=tuple(range(f.ndim)))
    plan_x = axis_plan(shape[2], upx, downx, padx0, padx1, fw)
    plan_y = axis_plan(shape[1], upy, downy, pady0, pady1, fh)
    return kernel, plan_x, plan_y


def _strided_taps(x, axis: int, plan: AxisPlan):
    """{c: x[down * q + c] for q < per_phase} along `axis`, zero outside the input (one zero-padded copy)."""
    offsets = plan.offsets
    lo = max(0, -min(offsets))
    hi = max(0, plan.down * (plan.per_phase - 1) + max(offsets) + 1 - plan.size)
    widths = [(0, 0)] * x.ndim
    widths[axis] = (lo, hi)
    padded = jnp.pad(x, widths)
    span = plan.down * (plan.per_phase - 1) + 1
    return {c: lax.slice_in_dim(padded, c + lo, c + lo + span, plan.down, axis) for c in sorted(set(offsets))}


def _polyphase_2d(x, kernel, plan_y: AxisPlan, plan_x: AxisPlan):
    """Correlate NHWC `x` with the 2-D `kernel` [kh, kw] as planned, one output phase at a time."""
    n, _, _, c = x.shape
    rows = _strided_taps(x, 1, plan_y)  # the row shifts first, then the column shifts of each
    grid = {(cy, cx): v for cy, r in rows.items() for cx, v in _strided_taps(r, 2, plan_x).items()}
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


def upfirdn2d_reference(x, f, up=1, down=1, padding: Padding = 0, flip_filter: bool = False, gain: float = 1.0):
    """The official algorithm step by step (the formulation the polyphase implementations are tested against).

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


def upsample2d(x, f, up=2, padding: Padding = 0, flip_filter: bool = False, gain: float = 1.0, *,
               implementation: str | None = None):
    """Upsample by `up` with filter `f`; padding as the official helper (`(fw+up-1)//2`, `(fw-up)//2`), gain up**2."""
    upx, upy = _parse_scaling(up)
    padx0, padx1, pady0, pady1 = _parse_padding(padding)
    fw, fh = filter_size(f)
    p = [padx0 + (fw + upx - 1) // 2, padx1 + (fw - upx) // 2,
         pady0 + (fh + upy - 1) // 2, pady1 + (fh - upy) // 2]
    return upfirdn2d(x, f, up=(upx, upy), padding=p, flip_filter=flip_filter, gain=gain * upx * upy,
                     implementation=implementation)


def downsample2d(x, f, down=2, padding: Padding = 0, flip_filter: bool = False, gain: float = 1.0, *,
                 implementation: str | None = None):
    """Downsample by `down` with filter `f`; padding as the official helper (`(fw-down+1)//2`, `(fw-down)//2`)."""
    downx, downy = _parse_scaling(down)
    padx0, padx1, pady0, pady1 = _parse_padding(padding)
    fw, fh = filter_size(f)
    p = [padx0 + (fw - downx + 1) // 2, padx1 + (fw - downx) // 2,
         pady0 + (fh - downy + 1) // 2, pady1 + (fh - downy) // 2]
    return upfirdn2d(x, f, down=(downx, downy), padding=p, flip_filter=flip_filter, gain=gain,
                     implementation=implementation)


def filter2d(x, f, padding: Padding = 0, flip_filter: bool = False, gain: float = 1.0, *,
             implementation: str | None = None):
    """Filter without resampling, keeping the size: padding `fw//2`, `(fw-1)//2`."""
    padx0, padx1, pady0, pady1 = _parse_padding(padding)
    fw, fh = filter_size(f)
    p = [padx0 + fw // 2, padx1 + (fw - 1) // 2, pady0 + fh // 2, pady1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=p, flip_filter=flip_filter, gain=gain, implementation=implementation)
