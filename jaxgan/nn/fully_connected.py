"""Equalised-learning-rate dense layer: stylegan2-ada-pytorch `FullyConnectedLayer`.

The weight is stored divided by `lr_multiplier` and scaled by `lr_multiplier / sqrt(in_features)` at run time;
the bias is scaled by `lr_multiplier`. So the forward depends on `lr_multiplier`, which converters read from the
checkpoint's constructor arguments. Upstream: `FullyConnectedLayer` in `training/networks.py` of
NVlabs/stylegan2-ada-pytorch@d72cc7d.
"""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxgan.ops.bias_act import bias_act


def equalized_linear(x, weight, bias, lr_multiplier: float = 1.0):
    """`FullyConnected` with the linear activation as a pure function of its stored weight [out, in] and bias
    [out]: x @ (weight * lr_multiplier / sqrt(in)).T + bias * lr_multiplier (StyleGAN3's affine layers use it on
    checkpoint arrays)."""
    gain = np.float32(lr_multiplier / np.sqrt(weight.shape[1]))
    return x @ (jnp.asarray(weight, jnp.float32) * gain).T + jnp.asarray(bias, jnp.float32) * np.float32(lr_multiplier)


class FullyConnected(nnx.Module):
    def __init__(self, in_features: int, out_features: int, *, bias: bool = True, activation: str = "linear",
                 lr_multiplier: float = 1.0, bias_init: float = 0.0, rngs: nnx.Rngs):
        self.activation = activation
        self.weight_gain = float(lr_multiplier / np.sqrt(in_features))
        self.bias_gain = float(lr_multiplier)
        self.weight = nnx.Param(jax.random.normal(rngs.params(), (out_features, in_features)) / lr_multiplier)
        self.bias = nnx.Param(jnp.full((out_features,), bias_init, jnp.float32)) if bias else None

    def __call__(self, x):
        """x: [..., in_features] -> [..., out_features]."""
        x = x @ (self.weight[...] * self.weight_gain).T
        b = None if self.bias is None else self.bias[...] * self.bias_gain
        return bias_act(x, b, act=self.activation)
