"""The per-layer epilogue of a modulated convolution, as one op: what SynthesisLayer does after its convolution.

In order (jaxgan/ops/epilogue_xla.py has the upstream sources of each step):

1. the FIR filter that closes an upsampling (transposed) convolution, when `resample_filter` is given
   (`upfirdn2d` with `fir_padding`, `fir_gain` and optionally `fir_up` / `fir_down`);
2. `* dcoefs[n, c]` (the non-fused path's demodulation; the fused path folds it into the weights);
3. `+ noise` (broadcastable to the output: [1 or N, H, W, 1] per pixel, or per channel);
4. `bias_act(x, bias, act, alpha, gain, clamp)`.

stylegan2-ada-pytorch (NVlabs/stylegan2-ada-pytorch@d72cc7d) runs these as separate passes (the `upfirdn2d.cu`
kernel, `fma`, the `bias_act.cu` kernel); doing all four in one pass over the activations is why this op exists.

This module is the dispatcher: `implementation="xla"` runs exactly these jnp ops (`fused_epilogue_xla`: XLA fuses
2-4 into one elementwise pass, but the FIR stays a separate pass); "pallas" runs all four in one pass
(pallas_kernels/epilogue.py), imported only when selected; None: jaxgan/ops/implementation.py decides.
"""

from jaxgan.ops import implementation as impl
from jaxgan.ops.epilogue_xla import fused_epilogue_xla
from jaxgan.ops.upfirdn2d_plan import Padding


def fused_epilogue(x, bias=None, *, dcoefs=None, noise=None, resample_filter=None, fir_padding: Padding = 0,
                   fir_up: int = 1, fir_down: int = 1, fir_gain: float = 1.0, act: str = "linear",
                   alpha: float | None = None, gain: float | None = None, clamp: float | None = None,
                   implementation: str | None = None):
    """x: [N, H, W, C] (the convolution's output, before the closing FIR when there is one); bias: [C];
    dcoefs: [N, C]; noise: broadcastable to the output. Returns [N, H', W', C]."""
    if impl.resolve("epilogue", implementation) == "pallas":
        from pallas_kernels.epilogue import fused_epilogue as epilogue_pallas  # only when selected
        return epilogue_pallas(x, bias, dcoefs=dcoefs, noise=noise, resample_filter=resample_filter,
                               fir_padding=fir_padding, fir_up=fir_up, fir_down=fir_down, fir_gain=fir_gain,
                               act=act, alpha=alpha, gain=gain, clamp=clamp, interpret=impl.interpret_mode())
    return fused_epilogue_xla(x, bias, dcoefs=dcoefs, noise=noise, resample_filter=resample_filter,
                              fir_padding=fir_padding, fir_up=fir_up, fir_down=fir_down, fir_gain=fir_gain,
                              act=act, alpha=alpha, gain=gain, clamp=clamp)
