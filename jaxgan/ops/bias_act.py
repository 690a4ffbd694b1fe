"""Bias, activation, gain and clamp in one expression, as stylegan2-ada-pytorch's `torch_utils/ops/bias_act.py`.

Follows ../shared/specs/stylegan2.md §1.1 (`bias_act`): `x + b`, then the activation, then `* gain`, then
`clip(-clamp, clamp)`. `gain=None` means the activation's default gain (sqrt(2) for relu / lrelu / swish);
`alpha=None` its default slope. XLA fuses the whole chain into one elementwise pass.

`implementation="pallas"` runs NHWC tensors with the channel axis last through the fused epilogue kernel
(pallas_kernels/epilogue.py, no filter or noise); None: jaxgan/ops/implementation.py decides (XLA for now).
"""

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.ops import implementation as impl


@dataclasses.dataclass(frozen=True)
class Activation:
    func: Callable  # (x, alpha) -> y
    def_alpha: float
    def_gain: float


ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation(lambda x, a: x, 0.0, 1.0),
    "relu": Activation(lambda x, a: jnp.maximum(x, 0), 0.0, float(np.sqrt(2))),
    "lrelu": Activation(lambda x, a: jnp.where(x >= 0, x, x * a), 0.2, float(np.sqrt(2))),
    "tanh": Activation(lambda x, a: jnp.tanh(x), 0.0, 1.0),
    "sigmoid": Activation(lambda x, a: jax.nn.sigmoid(x), 0.0, 1.0),
    "elu": Activation(lambda x, a: jax.nn.elu(x), 0.0, 1.0),
    "selu": Activation(lambda x, a: jax.nn.selu(x), 0.0, 1.0),
    "softplus": Activation(lambda x, a: jax.nn.softplus(x), 0.0, 1.0),
    "swish": Activation(lambda x, a: jax.nn.sigmoid(x) * x, 0.0, float(np.sqrt(2))),
}


def activation_spec(act: str) -> Activation:
    try:
        return ACTIVATIONS[act]
    except KeyError:
        raise ValueError(f"unknown activation {act!r}; expected one of {sorted(ACTIVATIONS)}") from None


def bias_act(x, b=None, act: str = "linear", alpha: float | None = None, gain: float | None = None,
             clamp: float | None = None, axis: int = -1, *, implementation: str | None = None):
    """Add the bias `b` along `axis` (channels last by default), activate, scale by `gain`, clamp to +-`clamp`."""
    spec = activation_spec(act)
    covered = x.ndim == 4 and axis in (-1, 3)
    chosen = impl.resolve("epilogue", implementation, supported=covered,
                          why_unsupported=f"it takes NHWC tensors with axis=-1, got shape {x.shape}, axis={axis}")
    if chosen == "pallas":
        from pallas_kernels.epilogue import fused_epilogue  # pallas_kernels imports jaxgan.ops
        return fused_epilogue(x, b, act=act, alpha=alpha, gain=gain, clamp=clamp,
                              interpret=impl.interpret_mode())
    alpha = spec.def_alpha if alpha is None else float(alpha)
    gain = spec.def_gain if gain is None else float(gain)
    if b is not None:
        shape = [1] * x.ndim
        shape[axis] = -1
        x = x + jnp.reshape(b, shape).astype(x.dtype)
    x = spec.func(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = jnp.clip(x, -clamp, clamp)
    return x
