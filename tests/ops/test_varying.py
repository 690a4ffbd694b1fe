"""varying_alike: custom_vjp ops (conv2d_resample, the demodulation) differentiate under shard_map with replicated
weights and per-device activations, and give the unsharded gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import parallel
from jaxgan.ops.conv2d_resample import conv2d_resample
from jaxgan.ops.modulated_conv2d import demodulation_coefficients


@pytest.mark.slow  # 18 s in CI; tests/edit/test_drag.py's sharded sessions run these ops under shard_map too
def test_gradients_under_shard_map_are_the_unsharded_ones():
    weight = jax.random.normal(jax.random.key(0), (5, 4, 3, 3))
    n = 2 * jax.device_count()  # two problems per device
    xs = jax.random.normal(jax.random.key(1), (n, 1, 6, 6, 4))
    styles = jax.random.normal(jax.random.key(2), (n, 1, 4))

    def per_problem(weight, x, s):
        def loss(x, s):
            y = conv2d_resample(x * s[:, None, None, :], weight, padding=1)
            return jnp.sum(jnp.square(y * demodulation_coefficients(weight, s)[:, None, None, :]))
        return jax.grad(loss, argnums=(0, 1))(x, s)

    def per_device(weight, batch):
        return jax.vmap(per_problem, in_axes=(None, 0, 0))(weight, *batch)
    sharded = parallel.shard_problems(per_device, parallel.data_mesh())(weight, (xs, styles))
    alone = jax.vmap(per_problem, in_axes=(None, 0, 0))(weight, xs, styles)
    for a, b in zip(sharded, alone):  # two programs: float32 rounding apart
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-5, atol=1e-5)
