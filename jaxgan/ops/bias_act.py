"""Bias, activation, gain and clamp in one expression: the public `bias_act` op, as stylegan2-ada-pytorch's
`torch_utils/ops/bias_act.py` (`bias_act`, NVlabs/stylegan2-ada-pytorch@d72cc7d).

`x + b`, then the activation, then `* gain`, then `clip(-clamp, clamp)`. `gain=None` means the activation's
default gain (sqrt(2) for relu / lrelu / swish); `alpha=None` its default slope (jaxgan/ops/activations.py, whose
names this module re-exports).

This module is the dispatcher: "xla" runs the jnp formulation (jaxgan/ops/bias_act_xla.py); "pallas" runs NHWC
tensors with the channel axis last through the fused epilogue kernel (pallas_kernels/epilogue.py, no filter or
noise), imported only when selected; None: jaxgan/ops/implementation.py decides (XLA for now).
"""

from jaxgan.ops import implementation as impl
from jaxgan.ops.activations import ACTIVATIONS as ACTIVATIONS
from jaxgan.ops.activations import Activation as Activation
from jaxgan.ops.activations import activation_spec as activation_spec
from jaxgan.ops.bias_act_xla import bias_act_xla


def bias_act(x, b=None, act: str = "linear", alpha: float | None = None, gain: float | None = None,
             clamp: float | None = None, axis: int = -1, *, implementation: str | None = None):
    """Add the bias `b` along `axis` (channels last by default), activate, scale by `gain`, clamp to +-`clamp`."""
    activation_spec(act)  # an unknown activation is an error whichever implementation runs
    covered = x.ndim == 4 and axis in (-1, 3)
    chosen = impl.resolve("epilogue", implementation, supported=covered,
                          why_unsupported=f"it takes NHWC tensors with axis=-1, got shape {x.shape}, axis={axis}")
    if chosen == "pallas":
        from pallas_kernels.epilogue import fused_epilogue  # only when selected
        return fused_epilogue(x, b, act=act, alpha=alpha, gain=gain, clamp=clamp,
                              interpret=impl.interpret_mode())
    return bias_act_xla(x, b, act=act, alpha=alpha, gain=gain, clamp=clamp, axis=axis)
