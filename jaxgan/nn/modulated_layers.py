"""Style-modulated layers of the StyleGAN2 synthesis network: `SynthesisLayer` and `ToRGBLayer`.

SynthesisLayer: `affine` maps w to per-input-channel styles (its stored bias already includes the +1), modulated
3x3 convolution with demodulation (up=2 for each block's `conv0`), noise added after demodulation and before the
bias, then lrelu with gain sqrt(2) and the conv clamp. The weight gets no `1/sqrt(fan_in)`: demodulation removes it.

ToRGBLayer: styles scaled by `1/sqrt(I*k*k)`, no demodulation, 1x1 convolution, bias, clamp, no activation.

Upstream: `SynthesisLayer`, `ToRGBLayer` and `modulated_conv2d` in `training/networks.py` of
NVlabs/stylegan2-ada-pytorch@d72cc7d.
"""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxgan.nn.fully_connected import FullyConnected
from jaxgan.nn.variables import Buffer
from jaxgan.ops.bias_act import activation_spec
from jaxgan.ops.modulated_conv2d import modulated_conv2d
from jaxgan.ops.upfirdn2d import setup_filter

NOISE_MODES = ("const", "random", "none")


class SynthesisLayer(nnx.Module):
    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, *, kernel_size: int = 3,
                 up: int = 1, use_noise: bool = True, activation: str = "lrelu",
                 resample_filter: tuple[float, ...] = (1, 3, 3, 1), conv_clamp: float | None = None,
                 rngs: nnx.Rngs):
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.activation = activation
        self.conv_clamp = conv_clamp
        self.resample_filter = tuple(resample_filter)
        self.padding = kernel_size // 2
        self.act_gain = activation_spec(activation).def_gain
        self.affine = FullyConnected(w_dim, in_channels, bias_init=1.0, rngs=rngs)
        self.weight = nnx.Param(jax.random.normal(rngs.params(), (out_channels, in_channels, kernel_size, kernel_size)))
        self.bias = nnx.Param(jnp.zeros((out_channels,), jnp.float32))
        if use_noise:
            self.noise_const = Buffer(jax.random.normal(rngs.params(), (resolution, resolution)))
            self.noise_strength = nnx.Param(jnp.zeros((), jnp.float32))

    def __call__(self, x, w, *, noise_mode: str = "const", noise_key=None, fused: bool = False, gain: float = 1.0):
        """x: [N, H, W, I], w: [N, w_dim] -> [N, res, res, O]. `noise_key` is required for noise_mode='random'.

        Everything after the convolution (up-layers' FIR, demodulation, noise, bias, activation, clamp) is one
        `fused_epilogue` op, whose implementation the context chooses (jaxgan/ops/implementation.py)."""
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        styles = self.affine(w)
        noise = None
        if self.use_noise and noise_mode == "random":
            if noise_key is None:
                raise ValueError("noise_mode='random' needs an explicit noise_key")
            shape = (x.shape[0], self.resolution, self.resolution, 1)
            noise = jax.random.normal(noise_key, shape, x.dtype) * self.noise_strength[...]
        elif self.use_noise and noise_mode == "const":
            noise = (self.noise_const[...] * self.noise_strength[...])[None, :, :, None]
        clamp = None if self.conv_clamp is None else self.conv_clamp * gain
        return modulated_conv2d(x, self.weight[...], styles, noise=noise, up=self.up, padding=self.padding,
                                resample_filter=setup_filter(self.resample_filter), flip_weight=(self.up == 1),
                                fused=fused, bias=self.bias[...], act=self.activation, gain=self.act_gain * gain,
                                clamp=clamp)


class ToRGBLayer(nnx.Module):
    def __init__(self, in_channels: int, out_channels: int, w_dim: int, *, kernel_size: int = 1,
                 conv_clamp: float | None = None, rngs: nnx.Rngs):
        self.conv_clamp = conv_clamp
        self.weight_gain = float(1 / np.sqrt(in_channels * kernel_size ** 2))
        self.affine = FullyConnected(w_dim, in_channels, bias_init=1.0, rngs=rngs)
        self.weight = nnx.Param(jax.random.normal(rngs.params(), (out_channels, in_channels, kernel_size, kernel_size)))
        self.bias = nnx.Param(jnp.zeros((out_channels,), jnp.float32))

    def __call__(self, x, w, *, fused: bool = False):
        """x: [N, H, W, I], w: [N, w_dim] -> [N, H, W, img_channels]."""
        styles = self.affine(w) * self.weight_gain
        return modulated_conv2d(x, self.weight[...], styles, demodulate=False, fused=fused, bias=self.bias[...],
                                clamp=self.conv_clamp)
