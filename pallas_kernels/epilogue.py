"""The SynthesisLayer epilogue as one Pallas kernel: [FIR] -> * demod -> + noise -> + bias -> act * gain -> clamp.

Same signature and result as the public op jaxgan/ops/epilogue.py `fused_epilogue`, plus `interpret`; its
reference is `fused_epilogue_xla` (jaxgan/ops/epilogue_xla.py). The order of the steps is stylegan2-ada-pytorch's
(NVlabs/stylegan2-ada-pytorch@d72cc7d): the non-fused tail of `modulated_conv2d` in `training/networks.py`
(`x * dcoefs + noise`), then `_bias_act_ref` in `torch_utils/ops/bias_act.py` (x + b, activation, * gain, clamp),
which the official `bias_act_kernel` (`torch_utils/ops/bias_act.cu`) computes in one elementwise pass in float32.
Fusing the FIR that closes an up-layer's transposed convolution into the same pass as the noise, bias,
lrelu * sqrt(2) and clamp saves about two full-tensor round trips per up-layer (an estimate from the tensor
sizes; unmeasured, see jaxgan/ops/implementation.py).

The FIR is the polyphase kernel of pallas_kernels/upfirdn2d.py (the same tiling, grid and `axis_plan`); this
module adds the tail that runs on each finished (BQ, BP, BC) tile before it is stored, reading dcoefs [N, C], the
noise (per pixel [1 or N, H, W], or per channel) and the bias tile. Without a filter the FIR step is a 1x1
identity (1 * x, exact), so layers without upsampling use the same kernel as a pure elementwise pass. A 1-D
(separable) filter runs its first pass along W unfused and fuses the epilogue into the pass along H. Every
activation of jaxgan/ops/activations.py is accepted; StyleGAN2 uses lrelu (and linear for ToRGB).

Gradient: `jax.custom_vjp` whose backward is the vjp of the jnp reference `fused_epilogue_xla` (recomputing the
forward in XLA), so training, inversion and DragGAN differentiate through it with the reference's gradients
(including the clamp's and lrelu's conventions at their kinks); a backward kernel that reuses the output as the
official `bias_act.cu` does is not written.

GPU lowering: written for the **Triton** lowering (`compiler_params=pltriton.CompilerParams`), for the reason
given in pallas_kernels/upfirdn2d.py (haloed windows at arbitrary offsets). **Tested only in interpret mode on
CPU**: never lowered or run on a GPU; GPU performance unmeasured.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.ops.activations import activation_spec
from jaxgan.ops.epilogue_xla import fused_epilogue_xla
from jaxgan.ops.upfirdn2d_plan import Padding, axis_plan, correlation_kernel, parse_padding, parse_scaling
from pallas_kernels.upfirdn2d import Tiling, fir_call, fir_layout


def _as_4d(a):
    a = jnp.asarray(a)
    return a.reshape((1,) * (4 - a.ndim) + a.shape)


def _forward(x, bias, dcoefs, noise, f, config):
    (fir_up, fir_down, fir_padding, fir_gain, act, alpha, gain, clamp, interpret, tiling) = config
    spec = activation_spec(act)
    n, h, w, c = x.shape
    if f is None:
        kernel = jnp.ones((1, 1), jnp.float32)
        plan_x, plan_y = axis_plan(w, 1, 1, 0, 0, 1), axis_plan(h, 1, 1, 0, 0, 1)
    else:
        kernel, plan_x, plan_y = correlation_kernel(x.shape, f, fir_up, fir_down, fir_padding, False, fir_gain)
    if kernel.ndim == 1:  # separable: the pass along W alone, the epilogue fused into the pass along H
        x = fir_call(x, kernel[None, :], axis_plan(h, 1, 1, 0, 0, 1), plan_x, interpret=interpret, tiling=tiling)
        kernel, plan_x = kernel[:, None], axis_plan(x.shape[2], 1, 1, 0, 0, 1)
    layout = fir_layout(plan_y, plan_x, c, tiling)
    out_h, out_w = layout.padded_output(plan_y, plan_x)
    pad_c = layout.channels - c

    extra, readers = [], []
    if dcoefs is not None:
        extra.append(jnp.pad(jnp.asarray(dcoefs, jnp.float32), ((0, 0), (0, pad_c))))
        readers.append(lambda acc, ref, idx, ry, rx: acc * ref[idx.batch, idx.channels][None, None, :])
    if noise is not None:
        noise = _as_4d(noise).astype(jnp.float32)
        per_batch = noise.shape[0] != 1
        if noise.shape[-1] == 1:  # one value per pixel, shared by the channels (StyleGAN's noise)
            arr = jnp.broadcast_to(noise[..., 0], (noise.shape[0], plan_y.out, plan_x.out))
            arr = jnp.pad(arr, ((0, 0), (0, out_h - plan_y.out), (0, out_w - plan_x.out)))

            def add_noise(acc, ref, idx, ry, rx, per_batch=per_batch):
                b = idx.batch if per_batch else 0
                return acc + ref[b, idx.out_rows(ry), idx.out_cols(rx)][:, :, None]
        else:
            arr = jnp.broadcast_to(noise, (noise.shape[0], plan_y.out, plan_x.out, c))
            arr = jnp.pad(arr, ((0, 0), (0, out_h - plan_y.out), (0, out_w - plan_x.out), (0, pad_c)))

            def add_noise(acc, ref, idx, ry, rx, per_batch=per_batch):
                b = idx.batch if per_batch else 0
                return acc + ref[b, idx.out_rows(ry), idx.out_cols(rx), idx.channels]
        extra.append(arr)
        readers.append(add_noise)
    if bias is not None:
        extra.append(jnp.pad(jnp.asarray(bias, jnp.float32), (0, pad_c)))
        readers.append(lambda acc, ref, idx, ry, rx: acc + ref[idx.channels][None, None, :])

    def tail(acc, refs, idx, ry, rx):
        for read, ref in zip(readers, refs):
            acc = read(acc, ref, idx, ry, rx)
        acc = spec.func(acc, alpha)
        if gain != 1:
            acc = acc * gain
        if clamp is not None and clamp >= 0:
            acc = jnp.clip(acc, -clamp, clamp)
        return acc

    return fir_call(x, kernel, plan_y, plan_x, interpret=interpret, tiling=tiling, extra=extra, tail=tail)


def _reference(x, bias, dcoefs, noise, f, config):
    (fir_up, fir_down, fir_padding, fir_gain, act, alpha, gain, clamp, _, _) = config
    return fused_epilogue_xla(x, bias, dcoefs=dcoefs, noise=noise, resample_filter=f, fir_padding=fir_padding,
                              fir_up=fir_up, fir_down=fir_down, fir_gain=fir_gain, act=act, alpha=alpha,
                              gain=gain, clamp=clamp)


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def _epilogue(x, bias, dcoefs, noise, f, config):
    return _forward(x, bias, dcoefs, noise, f, config)


def _epilogue_fwd(x, bias, dcoefs, noise, f, config):
    return _forward(x, bias, dcoefs, noise, f, config), (x, bias, dcoefs, noise, f)


def _epilogue_bwd(config, residuals, g):
    _, vjp = jax.vjp(lambda *args: _reference(*args, config), *residuals)
    return vjp(g)


_epilogue.defvjp(_epilogue_fwd, _epilogue_bwd)


def fused_epilogue(x, bias=None, *, dcoefs=None, noise=None, resample_filter=None, fir_padding: Padding = 0,
                   fir_up: int = 1, fir_down: int = 1, fir_gain: float = 1.0, act: str = "linear",
                   alpha: float | None = None, gain: float | None = None, clamp: float | None = None,
                   interpret: bool = False, tiling: Tiling = Tiling()):
    """Pallas version of jaxgan.ops.epilogue.fused_epilogue (same arguments); `interpret=True` runs it on CPU."""
    spec = activation_spec(act)
    if x.ndim != 4:
        raise ValueError(f"fused_epilogue takes NHWC activations, got shape {x.shape}")
    config = (parse_scaling(fir_up), parse_scaling(fir_down), parse_padding(fir_padding), float(fir_gain), act,
              spec.def_alpha if alpha is None else float(alpha), spec.def_gain if gain is None else float(gain),
              None if clamp is None else float(clamp), bool(interpret), tiling)
    f = None if resample_filter is None else jnp.asarray(np.asarray(resample_filter) if isinstance(
        resample_filter, (list, tuple)) else resample_filter, jnp.float32)
    return _epilogue(x, bias, dcoefs, noise, f, config)
