"""The activation functions of `bias_act`, with their default slope and gain.

The table of stylegan2-ada-pytorch's `torch_utils/ops/bias_act.py` (`activation_funcs`,
NVlabs/stylegan2-ada-pytorch@d72cc7d): each activation has a function of (x, alpha), a default alpha (0.2 for
lrelu) and a default gain (sqrt(2) for relu, lrelu and swish, 1 for the others). A leaf module: the XLA
formulation (jaxgan/ops/bias_act_xla.py), the dispatcher (jaxgan/ops/bias_act.py), the fused epilogue kernel
(pallas_kernels/epilogue.py) and the layers all read it.
"""

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np


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
