"""The per-layer epilogue of a modulated convolution, as one op: what SynthesisLayer does after its convolution.

Follows ../shared/specs/stylegan2.md §1.1 (`conv2d_resample`'s up path ends with an FIR filter, pad (1, 1) and
gain 4 for [1, 3, 3, 1]; `modulated_conv2d`'s non-fused path scales by the demodulation coefficients and adds
the noise; `bias_act`: + bias, activation, * gain, clamp) and §5.4 item 1 (the fusion candidate). In order:

1. the FIR filter that closes an upsampling (transposed) convolution, when `resample_filter` is given
   (`upfirdn2d` with `fir_padding`, `fir_gain` and optionally `fir_up` / `fir_down`);
2. `* dcoefs[n, c]` (the non-fused path's demodulation; the fused path folds it into the weights);
3. `+ noise` (broadcastable to the output: [1 or N, H, W, 1] per pixel, or per channel);
4. `bias_act(x, bias, act, alpha, gain, clamp)`.

`implementation="xla"` runs exactly these jnp ops (XLA fuses 2-4 into one elementwise pass, but the FIR stays a
separate pass); "pallas" runs all four in one pass over the activations (pallas_kernels/epilogue.py); None:
jaxgan/ops/implementation.py decides.
"""

from jaxgan.ops import implementation as impl
from jaxgan.ops.bias_act import bias_act
from jaxgan.ops.upfirdn2d import Padding, upfirdn2d


def fused_epilogue(x, bias=None, *, dcoefs=None, noise=None, resample_filter=None, fir_padding: Padding = 0,
                   fir_up: int = 1, fir_down: int = 1, fir_gain: float = 1.0, act: str = "linear",
                   alpha: float | None = None, gain: float | None = None, clamp: float | None = None,
                   implementation: str | None = None):
    """x: [N, H, W, C] (the convolution's output, before the closing FIR when there is one); bias: [C];
    dcoefs: [N, C]; noise: broadcastable to the output. Returns [N, H', W', C]."""
    if impl.resolve("epilogue", implementation) == "pallas":
        from pallas_kernels.epilogue import fused_epilogue as epilogue_pallas  # pallas_kernels imports jaxgan.ops
        return epilogue_pallas(x, bias, dcoefs=dcoefs, noise=noise, resample_filter=resample_filter,
                               fir_padding=fir_padding, fir_up=fir_up, fir_down=fir_down, fir_gain=fir_gain,
                               act=act, alpha=alpha, gain=gain, clamp=clamp, interpret=impl.interpret_mode())
    if resample_filter is not None:
        x = upfirdn2d(x, resample_filter, up=fir_up, down=fir_down, padding=fir_padding, gain=fir_gain,
                      implementation="xla")
    if dcoefs is not None:
        x = x * dcoefs[:, None, None, :].astype(x.dtype)
    if noise is not None:
        x = x + noise.astype(x.dtype)
    return bias_act(x, bias, act=act, alpha=alpha, gain=gain, clamp=clamp, implementation="xla")
