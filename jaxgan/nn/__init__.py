"""Flax NNX layers of StyleGAN2, named and laid out like the PyTorch reference so checkpoints map 1:1."""

from jaxgan.nn.conv2d_layer import Conv2dLayer as Conv2dLayer
from jaxgan.nn.fully_connected import FullyConnected as FullyConnected
from jaxgan.nn.modulated_layers import SynthesisLayer as SynthesisLayer
from jaxgan.nn.modulated_layers import ToRGBLayer as ToRGBLayer
from jaxgan.nn.variables import Buffer as Buffer
