"""StyleGAN3's filtered leaky ReLU: bias, upsample, leaky ReLU with gain and clamp, downsample, as the official
reference path `_filtered_lrelu_ref` (`torch_utils/ops/filtered_lrelu.py:121-153`, NVlabs/stylegan3@c233a91):

1. `x + b` (bias_act with the linear activation);
2. `upfirdn2d(x, fu, up=up, padding=padding, gain=up ** 2)` (zero-stuff, pad, filter);
3. leaky ReLU with `slope`, times `gain`, clamped to +-`clamp` (bias_act's order);
4. `upfirdn2d(x, fd, down=down)` (filter without padding, keep every `down`-th pixel).

The output is [N, (H * up + px0 + px1 - (fu_w - 1) - (fd_w - 1) + (down - 1)) // down, ..., C], the official
shape rule, which the two upfirdn2d calls give. Activations are NHWC float32; filters 1-D (separable, the T
configs) or 2-D (the R configs' radial down filters), numpy or jax arrays, `None` for no filtering.

This is the op's dispatcher: `implementation=None|"xla"` (jaxgan/ops/implementation.py) runs the jnp formulation
on jaxgan's upfirdn2d and bias_act; there is no Pallas kernel yet (the official fused CUDA kernel is the model for
one), so an explicit "pallas" is refused.
"""

import numpy as np

from jaxgan.ops import implementation as impl
from jaxgan.ops.bias_act import bias_act
from jaxgan.ops.upfirdn2d import Padding, upfirdn2d

SQRT2 = float(np.sqrt(2))


def filtered_lrelu(x, fu=None, fd=None, b=None, up: int = 1, down: int = 1, padding: Padding = 0,
                   gain: float = SQRT2, slope: float = 0.2, clamp: float | None = None, flip_filter: bool = False, *,
                   implementation: str | None = None):
    """x [N, H, W, C] -> the filtered leaky ReLU of x + b (the official `filtered_lrelu` with `impl='ref'`)."""
    impl.resolve("filtered_lrelu", implementation, supported=False, why_unsupported="there is no kernel yet")
    if x.ndim != 4:
        raise ValueError(f"filtered_lrelu takes NHWC tensors, got shape {x.shape}")
    if b is not None:
        x = bias_act(x, b, implementation="xla")
    if fu is not None or up != 1 or padding != 0:
        x = upfirdn2d(x, _filter(fu), up=up, padding=padding, flip_filter=flip_filter, gain=up ** 2,
                      implementation="xla")
    x = bias_act(x, act="lrelu", alpha=slope, gain=gain, clamp=clamp, implementation="xla")
    if fd is not None or down != 1:
        x = upfirdn2d(x, _filter(fd), down=down, flip_filter=flip_filter, implementation="xla")
    return x


def _filter(f):
    """The official `_get_filter_size(None)` is 1 x 1: no filter is the identity tap."""
    return np.ones((1,), np.float32) if f is None else f
