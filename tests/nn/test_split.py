"""jaxgan.nn.split: a SplitModel is a pytree whose graph is static, so jit compiles once per structure."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.models import stylegan2
from jaxgan.nn.split import SplitModel

CFG = stylegan2.GeneratorConfig(z_dim=8, c_dim=0, w_dim=8, img_resolution=8, img_channels=3, channels=(8, 4),
                                mapping_layers=2)


def test_split_model_is_a_pytree_of_its_state_only():
    G = stylegan2.init_generator(CFG, jax.random.key(0))
    assert isinstance(G, SplitModel) and G.config == CFG
    leaves, treedef = jax.tree_util.tree_flatten(G)
    again = jax.tree_util.tree_unflatten(treedef, leaves)
    assert again.graphdef == G.graphdef and again.config == CFG
    assert len(leaves) == len(jax.tree_util.tree_leaves((G.params, G.buffers)))


def test_jit_compiles_once_for_two_weight_sets():
    traces = []

    @jax.jit
    def images(G, z):
        traces.append(1)
        return stylegan2.generate(G, z)
    z = jnp.ones((1, CFG.z_dim))
    a = images(stylegan2.init_generator(CFG, jax.random.key(0)), z)
    b = images(stylegan2.init_generator(CFG, jax.random.key(1)), z)
    assert len(traces) == 1 and not np.allclose(np.asarray(a), np.asarray(b))
