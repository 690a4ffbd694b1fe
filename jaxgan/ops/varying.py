"""`varying_alike`: arrays cast to vary over the same manual mesh axes, for `jax.custom_vjp` under `jax.shard_map`.

Inside `shard_map`, every value's type says over which mesh axes it varies (`jax.typeof(x).manual_axis_type`),
and a custom_vjp's backward rule must return cotangents of exactly its arguments' types. A custom_vjp op that mixes
a replicated weight with per-device activations would have to return a per-device weight cotangent as a
replicated one. Casting the arguments to the union of their axes before the call
(`jax.lax.pcast(..., to="varying")`, free at run time) leaves that sum over devices to JAX's own transpose of the
cast, as for any jnp op.
"""

import jax


def varying_axes(a) -> frozenset:
    """The manual mesh axes `a` varies over (empty outside shard_map)."""
    return jax.typeof(a).manual_axis_type.varying


def varying_alike(*arrays):
    """The arrays, each cast to vary over every mesh axis any of them varies over (unchanged outside shard_map)."""
    axes = frozenset().union(*(varying_axes(a) for a in arrays))
    if not axes:
        return arrays

    def cast(a):
        missing = tuple(sorted(axes - varying_axes(a)))
        return jax.lax.pcast(a, missing, to="varying") if missing else a
    return tuple(cast(a) for a in arrays)
