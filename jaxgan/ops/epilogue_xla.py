"""The XLA (pure jnp) formulation of the per-layer epilogue: the reference of the fused epilogue kernel.

What stylegan2-ada-pytorch's SynthesisLayer does after its convolution (NVlabs/stylegan2-ada-pytorch@d72cc7d),
in order:

1. the FIR filter that closes an upsampling (transposed) convolution, when `resample_filter` is given (the
   upsampling fast path of `conv2d_resample` in `torch_utils/ops/conv2d_resample.py` ends with it: pad (1, 1)
   and gain 4 for [1, 3, 3, 1]); here `upfirdn2d_xla` with `fir_padding`, `fir_gain`, `fir_up` / `fir_down`;
2. `* dcoefs[n, c]` and 3. `+ noise`, the non-fused tail of `modulated_conv2d` in `training/networks.py`
   (`fma.fma(x, dcoefs, noise)`; the fused path folds dcoefs into the weights);
4. `bias_act_xla(x, bias, act, alpha, gain, clamp)` (`torch_utils/ops/bias_act.py`).

XLA fuses 2-4 into one elementwise pass; the FIR stays a separate pass. Imports no kernel and no dispatcher:
the public op (jaxgan/ops/epilogue.py) runs it for `implementation="xla"`, and the Pallas kernel's backward
(pallas_kernels/epilogue.py) differentiates it directly.
"""

from jaxgan.ops.bias_act_xla import bias_act_xla
from jaxgan.ops.upfirdn2d_plan import Padding
from jaxgan.ops.upfirdn2d_xla import upfirdn2d_xla


def fused_epilogue_xla(x, bias=None, *, dcoefs=None, noise=None, resample_filter=None, fir_padding: Padding = 0,
                       fir_up: int = 1, fir_down: int = 1, fir_gain: float = 1.0, act: str = "linear",
                       alpha: float | None = None, gain: float | None = None, clamp: float | None = None):
    """x: [N, H, W, C] (the convolution's output, before the closing FIR when there is one); bias: [C];
    dcoefs: [N, C]; noise: broadcastable to the output. Returns [N, H', W', C]."""
    if resample_filter is not None:
        x = upfirdn2d_xla(x, resample_filter, up=fir_up, down=fir_down, padding=fir_padding, gain=fir_gain)
    if dcoefs is not None:
        x = x * dcoefs[:, None, None, :].astype(x.dtype)
    if noise is not None:
        x = x + noise.astype(x.dtype)
    return bias_act_xla(x, bias, act=act, alpha=alpha, gain=gain, clamp=clamp)
