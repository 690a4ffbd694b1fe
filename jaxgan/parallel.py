"""Run independent problems on all local devices: a 1-D ('data',) mesh and `jax.shard_map`.

Follows JAX's 'Manual parallelism with shard_map' docs: shared inputs (network weights) are replicated with `P()`, the
leading problem axis is split with `P('data')`, and each device runs the single-device program on its local
problems. No collectives are needed. The problem count is padded to a multiple of the device count (padding rows
repeat the last problem and are dropped from the result), so any count runs and one compiled shape serves all.
"""

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"


def data_mesh(devices=None) -> Mesh:
    """A 1-D mesh over `devices` (default: all local devices). The axis type is explicit, never a JAX default."""
    devices = list(jax.local_devices() if devices is None else devices)
    return jax.make_mesh((len(devices),), (DATA_AXIS,), axis_types=(AxisType.Explicit,), devices=devices)


def pad_problems(batched, multiple: int):
    """Pad every leaf's leading axis to a multiple of `multiple` by repeating its last row; returns (padded, n)."""
    sizes = {leaf.shape[0] for leaf in jax.tree_util.tree_leaves(batched)}
    if len(sizes) != 1:
        raise ValueError(f"batched inputs disagree on the problem count: {sorted(sizes)}")
    n = sizes.pop()
    extra = -n % multiple
    if extra == 0:
        return batched, n

    def pad(leaf):  # jnp.repeat handles typed PRNG key arrays as well as numbers
        leaf = jax.numpy.asarray(leaf)
        return jax.numpy.concatenate([leaf, jax.numpy.repeat(leaf[-1:], extra, axis=0)], axis=0)
    return jax.tree_util.tree_map(pad, batched), n


def replicate(tree, mesh: Mesh):
    """Place a pytree (e.g. network weights) on every device of `mesh`; a no-op if it already is."""
    return jax.device_put(tree, NamedSharding(mesh, P()))


def shard_problems(per_device_fn, mesh: Mesh):
    """jit(shard_map(per_device_fn)): `per_device_fn(shared, batched)` sees the local slice of `batched` (a pytree
    whose leaves share a leading problem axis divisible by the device count) and the whole of `shared`.

    The mesh is explicit, so inputs are placed with their shardings first (shard_map does not reshard silently).
    """
    mapped = jax.jit(jax.shard_map(per_device_fn, mesh=mesh, in_specs=(P(), P(DATA_AXIS)), out_specs=P(DATA_AXIS)))
    split = NamedSharding(mesh, P(DATA_AXIS))

    def run(shared, batched):
        return mapped(replicate(shared, mesh), jax.device_put(batched, split))
    return run


def mesh_for(count: int, devices=None) -> Mesh:
    """A data mesh over the first min(count, len(devices)) devices (default: the local devices): a job of fewer
    problems than devices runs on as many devices as it has problems, not beside padding copies on the others."""
    devices = list(jax.local_devices() if devices is None else devices)
    return data_mesh(devices[:max(1, min(count, len(devices)))])


def chunk_size(count: int, batch_size: int, num_devices: int) -> int:
    """Problems per call: batch_size per device, but no more than `count` rounded up to the device count."""
    return min(batch_size * num_devices, -(-count // num_devices) * num_devices)


def map_chunks(program, shared, problems, *, batch_size: int, mesh: Mesh, on_chunk=None):
    """Run `program(shared, chunk)` (e.g. a `shard_problems` program) over the leading axis of the pytree
    `problems`, `batch_size` problems per device per call, and return the outputs joined as numpy arrays.

    Every call gets the same chunk shape (the last chunk is padded by repeating its last problem, and the padding's
    outputs are dropped), so the program compiles once. `shared` is replicated on the mesh once, not per chunk.
    `on_chunk(n)` is called after each chunk with its number of real problems.
    """
    sizes = {leaf.shape[0] for leaf in jax.tree_util.tree_leaves(problems)}
    if len(sizes) != 1:
        raise ValueError(f"batched inputs disagree on the problem count: {sorted(sizes)}")
    count = sizes.pop()
    if count == 0:
        raise ValueError("no problems to run")
    chunk = chunk_size(count, batch_size, mesh.devices.size)
    shared = replicate(shared, mesh)
    outputs = []
    for start in range(0, count, chunk):
        part = jax.tree_util.tree_map(lambda a: a[start:start + chunk], problems)
        padded, n = pad_problems(part, chunk)
        result = program(shared, padded)
        outputs.append(jax.tree_util.tree_map(lambda a: np.asarray(a)[:n], result))
        if on_chunk is not None:
            on_chunk(n)
    return jax.tree_util.tree_map(lambda *parts: np.concatenate(parts, axis=0), *outputs)


def local_device_count() -> int:
    return len(jax.local_devices())
