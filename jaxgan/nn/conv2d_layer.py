"""Equalised-learning-rate convolution with resampling: stylegan2-ada-pytorch `Conv2dLayer`.

Weight [O, I, k, k] scaled by `1/sqrt(I*k*k)`; `flip_weight = (up == 1)` exactly as the official layer (it only
selects the equivalent fast path); bias, activation with gain `def_gain * gain` and clamp `conv_clamp * gain`.
Upstream: `Conv2dLayer` in `training/networks.py` of NVlabs/stylegan2-ada-pytorch@d72cc7d.
"""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxgan.ops.bias_act import activation_spec, bias_act
from jaxgan.ops.conv2d_resample import conv2d_resample
from jaxgan.ops.upfirdn2d import setup_filter


class Conv2dLayer(nnx.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, bias: bool = True,
                 activation: str = "linear", up: int = 1, down: int = 1,
                 resample_filter: tuple[float, ...] = (1, 3, 3, 1), conv_clamp: float | None = None,
                 rngs: nnx.Rngs):
        self.activation = activation
        self.up = up
        self.down = down
        self.conv_clamp = conv_clamp
        self.resample_filter = tuple(resample_filter)  # static: the taps, not an array leaf
        self.padding = kernel_size // 2
        self.weight_gain = float(1 / np.sqrt(in_channels * kernel_size ** 2))
        self.act_gain = activation_spec(activation).def_gain
        self.weight = nnx.Param(jax.random.normal(rngs.params(), (out_channels, in_channels, kernel_size, kernel_size)))
        self.bias = nnx.Param(jnp.zeros((out_channels,), jnp.float32)) if bias else None

    def __call__(self, x, gain: float = 1.0):
        """x: [N, H, W, I] -> [N, H*up/down, W*up/down, O]."""
        w = self.weight[...] * self.weight_gain
        x = conv2d_resample(x, w, f=setup_filter(self.resample_filter), up=self.up, down=self.down,
                            padding=self.padding, flip_weight=(self.up == 1))
        clamp = None if self.conv_clamp is None else self.conv_clamp * gain
        b = None if self.bias is None else self.bias[...]
        return bias_act(x, b, act=self.activation, gain=self.act_gain * gain, clamp=clamp)
