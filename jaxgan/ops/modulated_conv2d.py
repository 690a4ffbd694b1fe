"""Modulated 3x3 / 1x1 convolution with optional demodulation, as stylegan2-ada-pytorch's `modulated_conv2d`.

Follows `modulated_conv2d` in stylegan2-ada-pytorch's `training/networks.py` (NVlabs/stylegan2-ada-pytorch@d72cc7d).
Two exactly equivalent forms:

- fused: per-sample weights `w[n] = weight * styles[n]` (times the demodulation coefficients), one convolution per
  sample. Written as a `jax.vmap` of the single-sample convolution, which XLA lowers to a grouped convolution.
- unfused (default): modulate the activations, convolve with the one shared weight, scale the outputs. Same
  numbers to float32 rounding; on CPU XLA's grouped convolution is several times slower than a plain one, and on
  GPU the shared weight avoids materialising N copies of it.

Only fp32 is implemented (the official code is compared against with `force_fp32=True`, the argument of
`SynthesisBlock.forward` that keeps its fp16 blocks in fp32), so the official fp16 pre-normalisation of the
weight and styles is not needed.

Everything after the convolution runs as one op, `jaxgan.ops.epilogue.fused_epilogue`: the FIR filter that closes
an upsampling convolution, the demodulation scale (unfused form), the noise, and optionally the layer's
`bias_act` (`bias`, `act`, `alpha`, `gain`, `clamp`, which SynthesisLayer / ToRGBLayer pass). `implementation`
picks XLA or the Pallas kernel for that epilogue (jaxgan/ops/implementation.py); the convolution is XLA's.
"""

import jax
import jax.numpy as jnp

from jaxgan.ops.conv2d_resample import (conv2d_resample, conv2d_resample_unfiltered, defers_fir,
                                        unfiltered_fir_step)
from jaxgan.ops.epilogue import fused_epilogue
from jaxgan.ops.upfirdn2d_plan import Padding
from jaxgan.ops.varying import varying_alike


def modulated_conv2d(x, weight, styles, noise=None, up: int = 1, down: int = 1, padding: Padding = 0,
                     resample_filter=None, demodulate: bool = True, flip_weight: bool = True, fused: bool = False, *,
                     bias=None, act: str = "linear", alpha: float | None = None, gain: float | None = None,
                     clamp: float | None = None, implementation: str | None = None):
    """x: [N, H, W, I]; weight: [O, I, kh, kw]; styles: [N, I]; noise: broadcastable to the output [N, H', W', O].

    Demodulation divides each output channel by `sqrt(sum(w**2) + 1e-8)` of its modulated weight; noise is added
    after it, as the official code does. Then `bias_act(x, bias, act, alpha, gain, clamp)` (the defaults leave x
    as it is).
    """
    w = dcoefs = None
    if fused:
        w = weight[None] * styles[:, None, :, None, None]  # [N, O, I, kh, kw]
    if demodulate:
        dcoefs = demodulation_coefficients(weight, styles)  # [N, O]

    # An upsampling convolution's closing FIR filter moves into the epilogue (one pass with the rest).
    fir = {}
    if defers_fir(weight.shape, up, down):
        fir_padding, fir_gain = unfiltered_fir_step(weight.shape, resample_filter, up, padding)
        fir = dict(resample_filter=resample_filter, fir_padding=fir_padding, fir_gain=fir_gain)

    def conv(inputs, kernel):
        if fir:
            return conv2d_resample_unfiltered(inputs, kernel, f=resample_filter, up=up, padding=padding,
                                              flip_weight=flip_weight)
        return conv2d_resample(inputs, kernel, f=resample_filter, up=up, down=down, padding=padding,
                               flip_weight=flip_weight, implementation=implementation)

    scale = None
    if fused:
        if demodulate:
            w = w * dcoefs[:, :, None, None, None]
        x = jax.vmap(lambda xi, wi: conv(xi[None], wi)[0])(x, w)
    else:
        x = conv(x * styles[:, None, None, :].astype(x.dtype), weight)
        scale = dcoefs
    return fused_epilogue(x, bias, dcoefs=scale, noise=noise, act=act, alpha=alpha, gain=gain, clamp=clamp,
                          implementation=implementation, **fir)


def demodulation_coefficients(weight, styles):
    """`rsqrt(sum((weight * styles)**2 over in, kh, kw) + 1e-8)`: weight [O, I, kh, kw], styles [N, I] -> [N, O].

    The forward is the official expression (`modulated_conv2d`, training/networks.py:49-57); XLA fuses it into one
    reduction. Its gradient is written out: autodiff of that expression keeps the modulated weight
    [N, O, I, kh, kw] of every layer alive until the backward pass (9 MB per 512-channel layer and sample, 85 MB
    for one 256 px config-F image), while the gradient needs only the [O, I] sums of the squared kernel taps.
    """
    return _demodulation(*varying_alike(weight, styles))  # a custom_vjp under shard_map (jaxgan/ops/varying.py)


@jax.custom_vjp
def _demodulation(weight, styles):
    return _demodulation_forward(weight, styles)


def _demodulation_forward(weight, styles):
    w = weight[None] * styles[:, None, :, None, None]
    return jax.lax.rsqrt(jnp.sum(jnp.square(w), axis=(2, 3, 4)) + 1e-8)


def _demodulation_fwd(weight, styles):
    dcoefs = _demodulation_forward(weight, styles)
    return dcoefs, (weight, styles, dcoefs)


def _demodulation_bwd(residuals, g):
    # d = (s + eps)^-1/2 with s[n, o] = sum_i styles[n, i]^2 * sum_k weight[o, i, k]^2, so dd/ds = -d^3 / 2.
    weight, styles, dcoefs = residuals
    g_s = -0.5 * g * dcoefs ** 3  # [N, O]
    tap_squares = jnp.sum(jnp.square(weight), axis=(2, 3))  # [O, I]
    g_styles = 2 * styles * (g_s @ tap_squares)
    g_weight = 2 * weight * (g_s.T @ jnp.square(styles))[:, :, None, None]
    return g_weight.astype(weight.dtype), g_styles.astype(styles.dtype)


_demodulation.defvjp(_demodulation_fwd, _demodulation_bwd)
