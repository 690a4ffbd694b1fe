"""Pure jnp reference ops, NHWC activations, numerics as in stylegan2-ada-pytorch's `torch_utils/ops`."""

from jaxgan.ops.bias_act import ACTIVATIONS as ACTIVATIONS
from jaxgan.ops.bias_act import bias_act as bias_act
from jaxgan.ops.conv2d_resample import conv2d_resample as conv2d_resample
from jaxgan.ops.modulated_conv2d import modulated_conv2d as modulated_conv2d
from jaxgan.ops.upfirdn2d import downsample2d as downsample2d
from jaxgan.ops.upfirdn2d import filter2d as filter2d
from jaxgan.ops.upfirdn2d import setup_filter as setup_filter
from jaxgan.ops.upfirdn2d import upfirdn2d as upfirdn2d
from jaxgan.ops.upfirdn2d import upsample2d as upsample2d
