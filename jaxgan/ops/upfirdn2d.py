"""Upsample, FIR-filter, downsample: the public `upfirdn2d` op and its helpers, as stylegan2-ada-pytorch's
`torch_utils/ops/upfirdn2d.py` (NVlabs/stylegan2-ada-pytorch@d72cc7d): `upfirdn2d`, `setup_filter` and the
resampling helpers `upsample2d`, `downsample2d`, `filter2d` with their padding and gain rules.

Activations are NHWC. A filter is a 1-D (separable) or 2-D numpy/jax array; it is treated as data, so a filter
passed under `jax.jit` may be traced or constant.

This module is the dispatcher: `implementation=None|"xla"|"pallas"` (jaxgan/ops/implementation.py) picks the
formulation that runs. "xla" is the polyphase jnp formulation of jaxgan/ops/upfirdn2d_xla.py (which also holds
`upfirdn2d_reference`, the official steps literally); "pallas" is the kernel of pallas_kernels/upfirdn2d.py,
imported only when selected. Both share the planning helpers of jaxgan/ops/upfirdn2d_plan.py; neither imports
this module.
"""

import numpy as np

from jaxgan.ops import implementation as impl
from jaxgan.ops.upfirdn2d_plan import AxisPlan as AxisPlan
from jaxgan.ops.upfirdn2d_plan import Padding as Padding
from jaxgan.ops.upfirdn2d_plan import axis_plan as axis_plan
from jaxgan.ops.upfirdn2d_plan import correlation_kernel as correlation_kernel
from jaxgan.ops.upfirdn2d_plan import filter_size as filter_size
from jaxgan.ops.upfirdn2d_plan import parse_padding, parse_scaling
from jaxgan.ops.upfirdn2d_xla import upfirdn2d_reference as upfirdn2d_reference
from jaxgan.ops.upfirdn2d_xla import upfirdn2d_xla


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


def upfirdn2d(x, f, up=1, down=1, padding: Padding = 0, flip_filter: bool = False, gain: float = 1.0, *,
              implementation: str | None = None):
    """Pad, upsample, FIR-filter and downsample a batch of NHWC images.

    In order: insert `up - 1` zeros after each pixel; pad (negative values crop) with [x0, x1, y0, y1];
    convolve (a true convolution, so the filter is flipped unless `flip_filter`) with `f * gain ** (f.ndim / 2)`;
    keep every `down`-th pixel. `implementation` as in jaxgan/ops/implementation.py ("xla": the polyphase
    `upfirdn2d_xla`, "pallas": the Pallas kernel, None: the default).
    """
    if impl.resolve("upfirdn2d", implementation) == "pallas":
        from pallas_kernels.upfirdn2d import upfirdn2d as upfirdn2d_pallas  # only when selected
        return upfirdn2d_pallas(x, f, up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain,
                                interpret=impl.interpret_mode())
    return upfirdn2d_xla(x, f, up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain)


def upsample2d(x, f, up=2, padding: Padding = 0, flip_filter: bool = False, gain: float = 1.0, *,
               implementation: str | None = None):
    """Upsample by `up` with filter `f`; padding as the official helper (`(fw+up-1)//2`, `(fw-up)//2`), gain up**2."""
    upx, upy = parse_scaling(up)
    padx0, padx1, pady0, pady1 = parse_padding(padding)
    fw, fh = filter_size(f)
    p = [padx0 + (fw + upx - 1) // 2, padx1 + (fw - upx) // 2,
         pady0 + (fh + upy - 1) // 2, pady1 + (fh - upy) // 2]
    return upfirdn2d(x, f, up=(upx, upy), padding=p, flip_filter=flip_filter, gain=gain * upx * upy,
                     implementation=implementation)


def downsample2d(x, f, down=2, padding: Padding = 0, flip_filter: bool = False, gain: float = 1.0, *,
                 implementation: str | None = None):
    """Downsample by `down` with filter `f`; padding as the official helper (`(fw-down+1)//2`, `(fw-down)//2`)."""
    downx, downy = parse_scaling(down)
    padx0, padx1, pady0, pady1 = parse_padding(padding)
    fw, fh = filter_size(f)
    p = [padx0 + (fw - downx + 1) // 2, padx1 + (fw - downx) // 2,
         pady0 + (fh - downy + 1) // 2, pady1 + (fh - downy) // 2]
    return upfirdn2d(x, f, down=(downx, downy), padding=p, flip_filter=flip_filter, gain=gain,
                     implementation=implementation)


def filter2d(x, f, padding: Padding = 0, flip_filter: bool = False, gain: float = 1.0, *,
             implementation: str | None = None):
    """Filter without resampling, keeping the size: padding `fw//2`, `(fw-1)//2`."""
    padx0, padx1, pady0, pady1 = parse_padding(padding)
    fw, fh = filter_size(f)
    p = [padx0 + fw // 2, padx1 + (fw - 1) // 2, pady0 + fh // 2, pady1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=p, flip_filter=flip_filter, gain=gain, implementation=implementation)
