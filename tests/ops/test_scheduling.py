"""computed_after: the same values (bit for bit), now computed from another value."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.ops.scheduling import computed_after


def test_values_are_unchanged_bit_for_bit():
    tree = {"x": jnp.asarray([-0.0, 0.0, 1.5, -3.25, jnp.nan, jnp.inf, -jnp.inf], jnp.float32),
            "ids": jnp.arange(3, dtype=jnp.int32), "half": jnp.asarray([-0.0, 2.0], jnp.bfloat16)}
    dependency = (jnp.int32(7), jnp.asarray([[123.5, -1.0]], jnp.float32))  # the first floating-point leaf is used
    got = jax.jit(computed_after)(tree, dependency)
    for key in tree:
        assert got[key].dtype == tree[key].dtype
        np.testing.assert_array_equal(np.asarray(got[key]).view(np.uint8), np.asarray(tree[key]).view(np.uint8))


def test_the_result_depends_on_the_dependency():
    # What orders the schedule: the dependency is an input of the result (its gradient flows, as zeros).
    jaxpr = jax.make_jaxpr(computed_after)(jnp.ones(3), jnp.ones(2))
    assert len(jaxpr.jaxpr.invars) == 2 and jaxpr.jaxpr.eqns  # not folded away at trace time
    grad = jax.grad(lambda d: jnp.sum(computed_after(jnp.ones(3), d)))(jnp.ones(2))
    np.testing.assert_array_equal(np.asarray(grad), np.zeros(2))
