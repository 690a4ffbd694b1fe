"""`computed_after`: the same values, made to depend on another value so that XLA computes what uses them later.

XLA orders a program by its data dependences and then by its memory scheduler, which on CPU places work that
depends only on a program's arguments early (a layer's reordered weight copy, a block of the image that no gradient
needs). Held from there until they are used, those buffers add to the peak. `jax.lax.optimization_barrier` keeps
values from being merged or moved across it, but the CPU pipeline removes it before scheduling, so it does not
change the order there. A data dependence does: `x * (1 + 0 * s)`, with `s` one element of the value to wait for,
equals x exactly (1 + 0 * s is exactly 1 for finite s, and x * 1 is x, signed zeros and NaNs included) and XLA does
not fold `0 * s` for floating-point s.

Under `jax.vmap` the element is taken across the whole batch (a custom batching rule), so a shared value (a
weight) tied to per-problem values (activations) stays shared, not one copy per problem. The gradient passes
through unchanged (a custom VJP), and under `jax.shard_map` the tied value takes the dependency's varying axes.
"""

import jax
import jax.numpy as jnp
from jax import lax

from jaxgan.ops.varying import varying_alike


def computed_after(tree, dependency):
    """`tree` (a pytree of arrays), its floating-point leaves unchanged in value but computed from `dependency`
    (any array or pytree of arrays with a floating-point leaf), so nothing that uses them can run before it."""
    first = next(leaf for leaf in jax.tree_util.tree_leaves(dependency) if jnp.issubdtype(leaf.dtype, jnp.floating))

    def tie(leaf):
        if not jnp.issubdtype(leaf.dtype, jnp.floating):
            return leaf
        return _tied(*varying_alike(leaf, first))
    return jax.tree_util.tree_map(tie, tree)


def _times_one_of(x, s):
    one = 1 + jnp.zeros((), s.dtype) * lax.index_in_dim(s.reshape(-1), 0, keepdims=False)
    return x * one.astype(x.dtype)


@jax.custom_batching.custom_vmap
def _tied_value(x, s):
    return _times_one_of(x, s)


@_tied_value.def_vmap
def _tied_value_batched(axis_size, in_batched, x, s):
    del axis_size
    return _times_one_of(x, s), in_batched[0]  # s's first element over the batch too: x stays as batched as it was


@jax.custom_vjp
def _tied(x, s):
    return _tied_value(x, s)


def _tied_fwd(x, s):
    return _tied_value(x, s), s


def _tied_bwd(s, g):
    return g, varying_alike(jnp.zeros_like(s), s)[0]


_tied.defvjp(_tied_fwd, _tied_bwd)
