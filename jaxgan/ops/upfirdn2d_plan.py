"""How an upfirdn2d call is planned: argument parsing and the polyphase plan that every formulation shares.

A leaf module (numpy / jnp only): the XLA formulation (jaxgan/ops/upfirdn2d_xla.py), the Pallas kernels
(pallas_kernels/upfirdn2d.py, pallas_kernels/epilogue.py) and the dispatcher (jaxgan/ops/upfirdn2d.py) all
import it, so none of them needs to import another for these helpers.

- `parse_scaling`, `parse_padding`, `filter_size`: the argument conventions of stylegan2-ada-pytorch's
  `torch_utils/ops/upfirdn2d.py` (`_parse_scaling`, `_parse_padding`, `_get_filter_size`;
  NVlabs/stylegan2-ada-pytorch@d72cc7d): an int factor applies to both axes, padding is [x0, x1, y0, y1]
  (an int pads every side, a pair is [x, y]), and a filter's size is (width, height).
- `AxisPlan` / `axis_plan`: one axis of upfirdn2d written as polyphase taps, the structure the official CUDA
  kernel exploits (`upfirdn2d_kernel_small` in `torch_utils/ops/upfirdn2d.cu`, same commit, only visits the
  taps of a phase that meet an input sample rather than the zero-stuffed image).
- `correlation_kernel`: the filter turned into the correlation kernel the formulations apply (flipped unless
  `flip_filter`, since upfirdn2d is a true convolution; the gain folded in as `gain ** (f.ndim / 2)`, as the
  reference `_upfirdn2d_ref` does), together with the plans of both axes.
- `transposed_padding`: the padding of the upfirdn2d that is another's adjoint (up and down swapped, the filter
  flipped), which the backward of every formulation runs, as the official op's backward (`_upfirdn2d_cuda`).
"""

import dataclasses
from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

Padding = int | Sequence[int]


def parse_scaling(scaling) -> tuple[int, int]:
    """(x, y) factors of an up / down argument: an int applies to both axes, a pair is [x, y]."""
    if isinstance(scaling, int):
        return scaling, scaling
    sx, sy = scaling
    return int(sx), int(sy)


def parse_padding(padding: Padding) -> tuple[int, int, int, int]:
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


def identity_plan(size: int) -> AxisPlan:
    """The plan of an axis left as it is (no resampling, no padding, a 1-tap filter)."""
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
    upx, upy = parse_scaling(up)
    downx, downy = parse_scaling(down)
    padx0, padx1, pady0, pady1 = parse_padding(padding)
    fw, fh = filter_size(f)
    kernel = f * (gain ** (f.ndim / 2))
    if not flip_filter:
        kernel = jnp.flip(kernel, axis=tuple(range(f.ndim)))
    plan_x = axis_plan(shape[2], upx, downx, padx0, padx1, fw)
    plan_y = axis_plan(shape[1], upy, downy, pady0, pady1, fh)
    return kernel, plan_x, plan_y


def transposed_padding(shape, f, up, down, padding) -> tuple[int, int, int, int]:
    """Padding [x0, x1, y0, y1] of the upfirdn2d (up and down swapped, filter flipped) that is the transpose of
    this one: per axis pad0' = K - 1 - pad0 and pad1' such that the result has the input's size."""
    upx, upy = parse_scaling(up)
    downx, downy = parse_scaling(down)
    padx0, padx1, pady0, pady1 = parse_padding(padding)
    _, plan_x, plan_y = correlation_kernel(shape, f, up, down, padding, False, 1.0)
    f_shape = jnp.shape(f) if f is not None else (1, 1)
    fw, fh = (f_shape[-1], f_shape[0]) if len(f_shape) == 2 else (f_shape[0], f_shape[0])

    def axis(size, u, d, pad0, k, out):
        new0 = k - 1 - pad0
        return new0, (size - 1) * u + k - out * d - new0

    x0, x1 = axis(shape[2], upx, downx, padx0, fw, plan_x.out)
    y0, y1 = axis(shape[1], upy, downy, pady0, fh, plan_y.out)
    return x0, x1, y0, y1
