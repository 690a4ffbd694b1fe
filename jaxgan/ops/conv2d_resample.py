"""2-D convolution with optional up/downsampling, as stylegan2-ada-pytorch's `torch_utils/ops/conv2d_resample.py`.

Follows `conv2d_resample` and `_conv2d_wrapper` there (NVlabs/stylegan2-ada-pytorch@d72cc7d): the resampling
filter's padding folded into the convolution's, then one of the fast paths (1x1 with down: FIR first; 1x1 with
up: FIR last; down only: FIR then a strided convolution; up: a strided transposed convolution, its weight
transposed rather than flipped, then the FIR; otherwise a plain convolution). `conv2d` is a correlation while
upfirdn2d is a true convolution, and no padding is ever 'SAME'. The same fast path as the official code is taken
for every case, so results agree to float32 rounding, not just in expectation.

`x` is NHWC; `w` keeps the PyTorch layout [out, in, kh, kw] so converted weights need no transposes.

`conv2d_resample_unfiltered` stops the upsampling path before its closing FIR filter and says how to apply it,
so that `modulated_conv2d` can fuse that filter into the layer's epilogue (jaxgan/ops/epilogue.py).
`implementation` reaches the FIR filters (`upfirdn2d`); the convolutions are always XLA's.
"""

import functools

import jax
import jax.numpy as jnp
from jax import lax

from jaxgan.ops.scheduling import computed_after
from jaxgan.ops.upfirdn2d import upfirdn2d
from jaxgan.ops.upfirdn2d_plan import Padding, filter_size, parse_padding, parse_scaling
from jaxgan.ops.varying import varying_alike

_DIMS = ("NHWC", "OIHW", "NHWC")


def _conv2d(x, w, stride=1, padding=(0, 0), transpose=False, flip_weight=True):
    """torch `conv2d` / `conv_transpose2d` (the official `_conv2d_wrapper`) for NHWC `x` and OIHW `w`.

    `padding` is (py, px) as in torch. `flip_weight=True` is correlation, as torch's conv2d; for the transposed
    case the weight is [O, I] here (the official code transposes it to [I, O] before `conv_transpose2d`).

    The weight's flip and XLA's layout copy of it are made when the layer runs (`computed_after` its input, and
    in the backward pass its incoming gradient; `_conv_with_late_weight_grad`): as plain lax ops the copies
    depend only on the parameters, and XLA's CPU schedule made all of them at the start and held them, 9 MB per
    512-channel layer (twice with a gradient), 85 MB of a 256 px config-F synthesis.
    """
    x, w = varying_alike(x, w)  # a custom_vjp under shard_map (jaxgan/ops/varying.py)
    return _conv_with_late_weight_grad(x, w, stride, tuple(padding), transpose, flip_weight)


def _plain_conv(x, w, stride, padding, transpose, flip_weight):
    py, px = padding
    kh, kw = w.shape[2], w.shape[3]
    w = w.astype(x.dtype)
    if not transpose:
        if not flip_weight:
            w = jnp.flip(w, axis=(2, 3))
        return lax.conv_general_dilated(
            x, w, window_strides=(stride, stride), padding=((py, py), (px, px)), dimension_numbers=_DIMS)
    # conv_transpose2d(x, w_io, stride s, padding p) == correlation of the s-dilated input, padded by k-1-p,
    # with the spatially flipped weight in [O, I] layout.
    if flip_weight:
        w = jnp.flip(w, axis=(2, 3))
    return lax.conv_general_dilated(
        x, w, window_strides=(1, 1), padding=((kh - 1 - py, kh - 1 - py), (kw - 1 - px, kw - 1 - px)),
        lhs_dilation=(stride, stride), dimension_numbers=_DIMS)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def _conv_with_late_weight_grad(x, w, stride, padding, transpose, flip_weight):
    return _plain_conv(x, computed_after(w, x), stride, padding, transpose, flip_weight)


def _conv_fwd(x, w, stride, padding, transpose, flip_weight):
    return _conv_with_late_weight_grad(x, w, stride, padding, transpose, flip_weight), (x, w)


def _conv_bwd(stride, padding, transpose, flip_weight, residuals, g):
    # The weight's flip and layout copy wait for the incoming gradient, i.e. for the backward pass to get here.
    x, w = residuals
    w = computed_after(w, g)
    _, conv_vjp = jax.vjp(lambda x_, w_: _plain_conv(x_, w_, stride, padding, transpose, flip_weight), x, w)
    return conv_vjp(g)


_conv_with_late_weight_grad.defvjp(_conv_fwd, _conv_bwd)


def _folded_padding(w_shape, f, up: int, down: int, padding: Padding) -> tuple[int, int, int, int]:
    """The conv padding with the resampling filter's padding folded in (official `conv2d_resample.py:95-104`)."""
    fw, fh = filter_size(f)
    px0, px1, py0, py1 = parse_padding(padding)
    if up > 1:
        px0 += (fw + up - 1) // 2
        px1 += (fw - up) // 2
        py0 += (fh + up - 1) // 2
        py1 += (fh - up) // 2
    if down > 1:
        px0 += (fw - down + 1) // 2
        px1 += (fw - down) // 2
        py0 += (fh - down + 1) // 2
        py1 += (fh - down) // 2
    return px0, px1, py0, py1


def _transposed_conv_paddings(w_shape, f, up: int, down: int, padding: Padding):
    """((pyt, pxt) of the transposed convolution, [x0, x1, y0, y1] of the FIR after it) for the up path."""
    kh, kw = w_shape[2], w_shape[3]
    px0, px1, py0, py1 = _folded_padding(w_shape, f, up, down, padding)
    px0 -= kw - 1
    px1 -= kw - up
    py0 -= kh - 1
    py1 -= kh - up
    pxt = max(min(-px0, -px1), 0)
    pyt = max(min(-py0, -py1), 0)
    return (pyt, pxt), (px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt)


def defers_fir(w_shape, up: int = 1, down: int = 1) -> bool:
    """Whether `conv2d_resample` ends with an FIR filter that `conv2d_resample_unfiltered` can leave out: the
    upsampling transposed-convolution path without downsampling (SynthesisLayer's conv0)."""
    up, _ = parse_scaling(up)
    down, _ = parse_scaling(down)
    return up > 1 and down == 1 and not (w_shape[2] == 1 and w_shape[3] == 1)


def unfiltered_fir_step(w_shape, f, up: int, padding: Padding) -> tuple[tuple[int, int, int, int], float]:
    """(padding, gain) of the FIR filter that `conv2d_resample_unfiltered` leaves out (gain up**2)."""
    up, _ = parse_scaling(up)
    return _transposed_conv_paddings(w_shape, f, up, 1, padding)[1], float(up ** 2)


def conv2d_resample_unfiltered(x, w, f=None, up: int = 2, padding: Padding = 0, flip_weight: bool = True):
    """The upsampling path of `conv2d_resample` up to, not including, its closing FIR filter (`defers_fir` must
    hold). `upfirdn2d(result, f, padding=p, gain=g)` with `(p, g) = unfiltered_fir_step(...)` completes it."""
    if not defers_fir(w.shape, up, 1):
        raise ValueError("conv2d_resample_unfiltered is the up > 1 path with a kernel larger than 1x1")
    up, _ = parse_scaling(up)
    conv_padding, _ = _transposed_conv_paddings(w.shape, f, up, 1, padding)
    return _conv2d(x, w, stride=up, padding=conv_padding, transpose=True, flip_weight=not flip_weight)


def conv2d_resample(x, w, f=None, up: int = 1, down: int = 1, padding: Padding = 0, flip_weight: bool = True, *,
                    implementation: str | None = None):
    """Convolve NHWC `x` with OIHW `w`, upsampling by `up` and downsampling by `down` with the FIR filter `f`.

    `padding` is relative to the upsampled image, as in the official op.
    """
    kh, kw = w.shape[2], w.shape[3]
    up, _ = parse_scaling(up)
    down, _ = parse_scaling(down)
    px0, px1, py0, py1 = _folded_padding(w.shape, f, up, down, padding)
    fir = dict(implementation=implementation)

    # 1x1 kernel with downsampling only: downsample first, then convolve (4x fewer MACs).
    if kw == 1 and kh == 1 and down > 1 and up == 1:
        x = upfirdn2d(x, f, down=down, padding=[px0, px1, py0, py1], flip_filter=False, **fir)
        return _conv2d(x, w, flip_weight=flip_weight)

    # 1x1 kernel with upsampling only: convolve first, then upsample.
    if kw == 1 and kh == 1 and up > 1 and down == 1:
        x = _conv2d(x, w, flip_weight=flip_weight)
        return upfirdn2d(x, f, up=up, padding=[px0, px1, py0, py1], gain=up ** 2, **fir)

    # Downsampling only: FIR filter, then a strided convolution.
    if down > 1 and up == 1:
        x = upfirdn2d(x, f, padding=[px0, px1, py0, py1], **fir)
        return _conv2d(x, w, stride=down, flip_weight=flip_weight)

    # Upsampling (and optional downsampling): a strided transposed convolution, then the FIR filter.
    if up > 1:
        conv_padding, fir_padding = _transposed_conv_paddings(w.shape, f, up, down, padding)
        x = _conv2d(x, w, stride=up, padding=conv_padding, transpose=True, flip_weight=not flip_weight)
        x = upfirdn2d(x, f, padding=list(fir_padding), gain=up ** 2, **fir)
        if down > 1:
            x = upfirdn2d(x, f, down=down, **fir)
        return x

    # No resampling, symmetric non-negative padding: a plain convolution.
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return _conv2d(x, w, padding=(py0, px0), flip_weight=flip_weight)

    # General case (asymmetric or negative padding).
    x = upfirdn2d(x, f if up > 1 else None, up=up, padding=[px0, px1, py0, py1], gain=up ** 2, **fir)
    x = _conv2d(x, w, flip_weight=flip_weight)
    if down > 1:
        x = upfirdn2d(x, f, down=down, **fir)
    return x
