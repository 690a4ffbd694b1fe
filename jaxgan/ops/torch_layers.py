"""The plain `torch.nn` layers of the ported CNNs, as pure jnp functions with PyTorch's numerics (NHWC activations).

The layers of pix2pixHD's `models/networks.py` (`GlobalGenerator`, `LocalEnhancer`, `ResnetBlock`, `get_norm_layer`;
NVIDIA/pix2pixHD@14b3b3c) and of EditGAN's encoder (`models/encoder/encoder.py`, nv-tlabs/editGAN_release@fef9ab8:
a ResNet-50 FPN), with the numerical traps of moving them to JAX:

* `reflection_pad`: `nn.ReflectionPad2d(p)`, the edge pixel is not repeated (numpy's 'reflect', not 'symmetric');
* `instance_norm`: `nn.InstanceNorm2d(affine=False)` with PyTorch >= 0.4 defaults (no running statistics), per sample
  and channel over H and W, biased variance, eps 1e-5 inside the square root;
* `conv2d`: `nn.Conv2d` with an OIHW weight, zero padding and a bias (or none, `bias=False`);
* `batch_norm`: `nn.BatchNorm2d` (eps 1e-5) with the batch's statistics (train mode: mean and biased variance over
  N, H and W; the running averages are updated with the unbiased variance, momentum 0.1) or with the running ones
  (eval mode); train mode refuses a single value per channel, as PyTorch does;
* `max_pool_3x3_s2`: `F.max_pool2d(kernel_size=3, stride=2, padding=1)`, padded with -inf (never selected);
* `conv_transpose2d`: `nn.ConvTranspose2d(k, stride, padding, output_padding)` with its IOHW weight, written as the
  equivalent stride-1 convolution of the input dilated by the stride, with the spatially flipped kernel and padding
  (k-1-p, k-1-p+output_padding) on each axis (for pix2pixHD's 3/2/1/1: (1, 2), an output exactly twice the input);
* `avg_pool_3x3_s2`: `nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)`, a window sum over the
  zero-padded input divided by the number of real pixels in the window, so border outputs average real pixels only.
"""

import jax.numpy as jnp
from jax import lax

INSTANCE_NORM_EPS = 1e-5
BATCH_NORM_EPS = 1e-5
BATCH_NORM_MOMENTUM = 0.1


def reflection_pad(x, pad: int):
    """x [N, H, W, C] -> [N, H + 2 pad, W + 2 pad, C], mirrored about the edge pixels (needs pad < H, W)."""
    return jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")


def instance_norm(x, eps: float = INSTANCE_NORM_EPS):
    """(x - mean) / sqrt(var + eps) over H and W of each sample and channel; var is biased (divides by H W)."""
    mean = jnp.mean(x, axis=(1, 2), keepdims=True)
    centred = x - mean
    var = jnp.mean(jnp.square(centred), axis=(1, 2), keepdims=True)
    return centred * lax.rsqrt(var + eps)


def conv2d(x, weight, bias=None, *, stride: int = 1, padding: int = 0):
    """x [N, H, W, I], weight [O, I, kh, kw] (PyTorch layout), bias [O] or None -> [N, H', W', O]."""
    y = lax.conv_general_dilated(x, weight, window_strides=(stride, stride), padding=((padding, padding),) * 2,
                                 dimension_numbers=("NHWC", "OIHW", "NHWC"))
    return y if bias is None else y + bias


def batch_statistics(x):
    """(mean, biased variance) over every axis but the last (channels) of x [..., C], as BatchNorm's train mode."""
    axes = tuple(range(x.ndim - 1))
    values = x.size // x.shape[-1]
    if values < 2:
        # PyTorch: "Expected more than 1 value per channel when training"; the variance would be 0 and the output 0.
        raise ValueError(f"batch-statistics BatchNorm needs more than one value per channel, got input shape "
                         f"{x.shape}: use a larger batch or image, or the running statistics")
    mean = jnp.mean(x, axis=axes)
    return mean, jnp.mean(jnp.square(x - mean), axis=axes)


def running_average(running_mean, running_var, mean, var, values: int, momentum: float = BATCH_NORM_MOMENTUM):
    """The running statistics after one train-mode BatchNorm call over `values` values per channel (PyTorch keeps
    the unbiased variance in `running_var`)."""
    unbiased = var * (values / (values - 1))
    return ((1 - momentum) * running_mean + momentum * mean, (1 - momentum) * running_var + momentum * unbiased)


def batch_norm(x, weight, bias, mean, var, eps: float = BATCH_NORM_EPS):
    """(x - mean) / sqrt(var + eps) * weight + bias over the channel (last) axis of x [..., C], in the form ATen's
    CPU kernel evaluates it (`batch_norm_cpu_collect_linear_and_constant_terms`): x * alpha + beta with
    alpha = weight / sqrt(var + eps) and beta = bias - mean * alpha, per channel."""
    alpha = weight / jnp.sqrt(var + eps)
    return x * alpha + (bias - mean * alpha)


def max_pool_3x3_s2(x):
    """x [N, H, W, C] -> [N, ceil(H/2), ceil(W/2), C]: 3x3 windows, stride 2, padding 1 (padding never wins)."""
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, 3, 3, 1), (1, 2, 2, 1), ((0, 0), (1, 1), (1, 1), (0, 0)))


def conv_transpose2d(x, weight, bias, *, stride: int, padding: int, output_padding: int):
    """x [N, H, W, I], weight [I, O, k, k] (PyTorch's ConvTranspose2d layout), bias [O]
    -> [N, (H-1) stride - 2 padding + k + output_padding, ..., O]."""
    k = weight.shape[-1]
    flipped = jnp.flip(weight, axis=(2, 3)).transpose(1, 0, 2, 3)  # [O, I, k, k], kernel rotated by 180 degrees
    lo, hi = k - 1 - padding, k - 1 - padding + output_padding
    y = lax.conv_general_dilated(x, flipped, window_strides=(1, 1), padding=((lo, hi), (lo, hi)),
                                 lhs_dilation=(stride, stride), dimension_numbers=("NHWC", "OIHW", "NHWC"))
    return y + bias


def avg_pool_3x3_s2(x):
    """x [N, H, W, C] -> [N, ceil(H/2), ceil(W/2), C]: 3x3 windows, stride 2, padding 1, padded zeros not counted."""
    window, strides, pads = (1, 3, 3, 1), (1, 2, 2, 1), ((0, 0), (1, 1), (1, 1), (0, 0))
    sums = lax.reduce_window(x, 0.0, lax.add, window, strides, pads)  # a Python 0: the differentiable sum
    ones = jnp.ones((1,) + x.shape[1:3] + (1,), x.dtype)
    counts = lax.reduce_window(ones, 0.0, lax.add, window, strides, pads)
    return sums / counts
