"""Pure jnp reference ops, NHWC activations, numerics as in stylegan2-ada-pytorch's `torch_utils/ops`; the hot ones
take `implementation=None|"xla"|"pallas"` (jaxgan/ops/implementation.py)."""

from jaxgan.ops.activations import ACTIVATIONS as ACTIVATIONS
from jaxgan.ops.bias_act import bias_act as bias_act
from jaxgan.ops.conv2d_resample import conv2d_resample as conv2d_resample
from jaxgan.ops.epilogue import fused_epilogue as fused_epilogue
from jaxgan.ops.implementation import set_default_implementation as set_default_implementation
from jaxgan.ops.implementation import use_implementation as use_implementation
from jaxgan.ops.modulated_conv2d import modulated_conv2d as modulated_conv2d
from jaxgan.ops.point_tracking import nearest_in_window as nearest_in_window
from jaxgan.ops.upfirdn2d import downsample2d as downsample2d
from jaxgan.ops.upfirdn2d import filter2d as filter2d
from jaxgan.ops.upfirdn2d import setup_filter as setup_filter
from jaxgan.ops.upfirdn2d import upfirdn2d as upfirdn2d
from jaxgan.ops.upfirdn2d import upsample2d as upsample2d
