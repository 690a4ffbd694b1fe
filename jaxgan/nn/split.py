"""A model split once into (graph, params, buffers): the pytree every jaxgan compute function takes.

Every model family (StyleGAN2, LPIPS, the segmentation branch, pix2pixHD, VGG19) is an `nnx.Module` built from a
frozen config. `split` turns a module into a `SplitModel` once (flax NNX's `nnx.split` into the graph definition, the
`nnx.Param` state and the `Buffer` state); after that the compute API is pure functions of the `SplitModel` pytree,
which `jax.jit`, `jax.vmap`, `jax.grad` and `jax.shard_map` transform like any other pytree. The graph definition is
static (pytree metadata), so a jitted function compiles once per model structure.
"""

import dataclasses
from typing import Any

import jax
from flax import nnx

from jaxgan.nn.variables import Buffer


@dataclasses.dataclass(frozen=True)
class SplitModel:
    """A module split once into its static graph and its two state pytrees (trainable params, buffers)."""

    graphdef: Any
    params: Any
    buffers: Any

    @property
    def config(self):
        return self.module().cfg

    def module(self):
        return nnx.merge(self.graphdef, self.params, self.buffers)


jax.tree_util.register_dataclass(SplitModel, data_fields=["params", "buffers"], meta_fields=["graphdef"])


def split(module: nnx.Module) -> SplitModel:
    graphdef, params, buffers = nnx.split(module, nnx.Param, Buffer)
    return SplitModel(graphdef, params, buffers)
