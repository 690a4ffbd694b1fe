"""The XLA (pure jnp) formulation of `bias_act`: the reference of the fused epilogue kernel's bias-act tail.

As the reference `_bias_act_ref` of stylegan2-ada-pytorch's `torch_utils/ops/bias_act.py`
(NVlabs/stylegan2-ada-pytorch@d72cc7d): `x + b`, then the activation, then `* gain`, then
`clip(-clamp, clamp)`; `gain=None` means the activation's default gain, `alpha=None` its default slope
(jaxgan/ops/activations.py). XLA fuses the whole chain into one elementwise pass. Imports no kernel and no
dispatcher, so the XLA epilogue (jaxgan/ops/epilogue_xla.py) and the public op (jaxgan/ops/bias_act.py) both
use it.
"""

import jax.numpy as jnp

from jaxgan.ops.activations import activation_spec


def bias_act_xla(x, b=None, act: str = "linear", alpha: float | None = None, gain: float | None = None,
                 clamp: float | None = None, axis: int = -1):
    """Add the bias `b` along `axis` (channels last by default), activate, scale by `gain`, clamp to +-`clamp`."""
    spec = activation_spec(act)
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
