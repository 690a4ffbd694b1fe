"""Run independent problems on all devices of the job: a 1-D ('data',) mesh and `jax.shard_map`.

Follows JAX's 'Manual parallelism with shard_map' docs: shared inputs (network weights) are replicated with `P()`, the
leading problem axis is split with `P('data')`, and each device runs the single-device program on its local
problems. No collectives are needed. The problem count is padded to a multiple of the device count (padding rows
repeat the last problem and are dropped from the result), so any count runs and one compiled shape serves all.

In a job of several processes (`jaxgan.distributed`) the mesh spans every process's devices (JAX docs, 'Distributed
arrays and automatic parallelization' / multi-process): a program's input is assembled from each process's own rows
(`jax.make_array_from_process_local_data`), and each process reads back only the rows of its own devices. Process p
holds a contiguous block of every chunk (`local_rows`); a process with one process's devices is the one-process case.
"""

import dataclasses

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"


def data_mesh(devices=None) -> Mesh:
    """A 1-D mesh over `devices` (default: every device of the job, all local in a one-process job), in the given
    order, so each process's devices are one block of it. The axis type is explicit, never a JAX default."""
    devices = list(jax.devices() if devices is None else devices)
    return Mesh(np.array(devices), (DATA_AXIS,), axis_types=(AxisType.Explicit,))


def multiprocess(mesh: Mesh) -> bool:
    """Whether `mesh` has devices of other processes (so its arrays are assembled from each process's rows)."""
    return any(d.process_index != jax.process_index() for d in mesh.devices.flat)


@dataclasses.dataclass(frozen=True)
class LocalRows:
    """This process's rows of a chunk of `count` problems padded to the mesh: rows [start, stop) of the padded
    chunk; the real ones are [start, min(stop, count))."""

    start: int
    stop: int
    count: int

    @property
    def size(self) -> int:
        """Rows this process feeds the program (padding included): the same on every process."""
        return self.stop - self.start

    @property
    def real(self) -> range:
        return range(self.start, max(self.start, min(self.stop, self.count)))


def local_rows(count: int, mesh: Mesh, padded: int | None = None) -> LocalRows:
    """Which rows of a chunk of `count` problems padded to `padded` rows (default: the next multiple of the mesh
    size) this process's devices run, read off the sharding itself; all of them in a one-process job."""
    padded = -(-count // mesh.devices.size) * mesh.devices.size if padded is None else padded
    slices = NamedSharding(mesh, P(DATA_AXIS)).addressable_devices_indices_map((padded,)).values()
    bounds = sorted((s[0].indices(padded)[:2] for s in slices))
    start, stop = bounds[0][0], bounds[-1][1]
    if sum(b - a for a, b in bounds) != stop - start:
        raise ValueError("this process's devices are not one block of the mesh; build it with `data_mesh`")
    return LocalRows(start, stop, count)


def pad_rows(batched, size: int):
    """Pad every leaf's leading axis to `size` rows by repeating its last row (zeros when it has none: a process
    holding only padding rows of a chunk)."""
    def pad(leaf):  # jnp.repeat and concatenate handle typed PRNG key arrays as well as numbers
        extra = size - leaf.shape[0]
        if extra == 0:
            return leaf
        leaf = jax.numpy.asarray(leaf)
        if leaf.shape[0]:
            filler = jax.numpy.repeat(leaf[-1:], extra, axis=0)
        elif jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            data = jax.random.key_data(leaf)
            filler = jax.random.wrap_key_data(jax.numpy.zeros((extra,) + data.shape[1:], data.dtype),
                                              impl=jax.random.key_impl(leaf))
        else:
            filler = jax.numpy.zeros((extra,) + leaf.shape[1:], leaf.dtype)
        return jax.numpy.concatenate([leaf, filler], axis=0)
    return jax.tree_util.tree_map(pad, batched)


def to_host(tree):
    """numpy copies of a program's outputs: of this process's rows where an output is split over the job's
    processes (in row order), of the whole array otherwise."""
    def fetch(leaf):
        if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            return leaf  # key arrays have no numpy form; keys stay on their device
        if not isinstance(leaf, jax.Array) or leaf.is_fully_addressable:
            return np.asarray(leaf)
        if leaf.sharding.is_fully_replicated:
            return np.asarray(leaf.addressable_shards[0].data)
        shards = sorted(leaf.addressable_shards, key=lambda s: s.index[0].indices(leaf.shape[0])[0])
        return np.concatenate([np.asarray(s.data) for s in shards], axis=0)
    return jax.tree_util.tree_map(fetch, tree)


def pad_problems(batched, multiple: int):
    """Pad every leaf's leading axis to a multiple of `multiple` by repeating its last row; returns (padded, n)."""
    sizes = {leaf.shape[0] for leaf in jax.tree_util.tree_leaves(batched)}
    if len(sizes) != 1:
        raise ValueError(f"batched inputs disagree on the problem count: {sorted(sizes)}")
    n = sizes.pop()
    if n % multiple == 0:
        return batched, n
    return pad_rows(batched, n + (-n % multiple)), n


def replicate(tree, mesh: Mesh):
    """Place a pytree (e.g. network weights) on every device of `mesh`; a no-op if it already is.

    Over several processes each process places its own copy from host memory (every process holds the same
    value: the same checkpoint, or the result of the same computation), since no backend moves an array of one
    process's device to another's."""
    sharding = NamedSharding(mesh, P())
    if not multiprocess(mesh):
        return jax.device_put(tree, sharding)

    def place(leaf):
        if isinstance(leaf, jax.Array) and leaf.sharding == sharding:
            return leaf
        if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(place(jax.random.key_data(leaf)), impl=jax.random.key_impl(leaf))
        return jax.device_put(np.asarray(leaf), sharding)
    return jax.tree_util.tree_map(place, tree)


def shard_problems(per_device_fn, mesh: Mesh):
    """jit(shard_map(per_device_fn)): `per_device_fn(shared, batched)` sees the local slice of `batched` (a pytree
    whose leaves share a leading problem axis divisible by the device count) and the whole of `shared`.

    The mesh is explicit, so inputs are placed with their shardings first (shard_map does not reshard silently).
    In a job of several processes `batched` holds this process's rows only (`local_rows(...).size` of them) and
    the outputs are global arrays; `to_host` reads this process's rows of them.
    """
    mapped = jax.jit(jax.shard_map(per_device_fn, mesh=mesh, in_specs=(P(), P(DATA_AXIS)), out_specs=P(DATA_AXIS)))
    split = NamedSharding(mesh, P(DATA_AXIS))
    if not multiprocess(mesh):
        return lambda shared, batched: mapped(replicate(shared, mesh), jax.device_put(batched, split))

    def assemble(leaf):  # outputs of an earlier call (e.g. an optimiser state) are global arrays already
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            return leaf
        return jax.make_array_from_process_local_data(split, leaf)

    def run(shared, batched):
        return mapped(replicate(shared, mesh), jax.tree_util.tree_map(assemble, batched))
    return run


def mesh_for(count: int, devices=None) -> Mesh:
    """A data mesh over the first min(count, len(devices)) devices (default: the job's devices): a job of fewer
    problems than devices runs on as many devices as it has problems, not beside padding copies on the others. In
    a job of several processes every process takes part in every program, so the mesh is always all devices."""
    devices = list(jax.devices() if devices is None else devices)
    if jax.process_count() > 1 and devices == jax.devices():
        return data_mesh(devices)
    return data_mesh(devices[:max(1, min(count, len(devices)))])


def chunk_size(count: int, batch_size: int, num_devices: int) -> int:
    """Problems per call: batch_size per device, but no more than `count` rounded up to the device count."""
    return min(batch_size * num_devices, -(-count // num_devices) * num_devices)


def map_chunks(program, shared, problems, *, batch_size: int, mesh: Mesh, on_chunk=None, on_outputs=None,
               count: int | None = None):
    """Run `program(shared, chunk)` (e.g. a `shard_problems` program) over the leading axis of the pytree
    `problems`, `batch_size` problems per device per call, and return the outputs joined as numpy arrays.

    Every call gets the same chunk shape (the last chunk is padded by repeating its last problem, and the padding's
    outputs are dropped), so the program compiles once. `shared` is replicated on the mesh once, not per chunk.
    `on_chunk(n)` is called after each chunk with its number of real problems (of the whole job), and
    `on_outputs(indices, outputs)` with the chunk's outputs that this process holds and their indices in the job
    (so a caller can write each chunk's results as they come).

    In a job of several processes each process feeds and returns only its rows of each chunk, the problems
    `owned_problems(count, batch_size, mesh)` lists, in that order. `count`: the job's problem count when
    `problems` holds only those rows of this process (so that it reads no other process's inputs); by default
    `problems` holds every problem of the job.
    """
    sizes = {leaf.shape[0] for leaf in jax.tree_util.tree_leaves(problems)}
    if len(sizes) != 1:
        raise ValueError(f"batched inputs disagree on the problem count: {sorted(sizes)}")
    given = sizes.pop()
    owned_only = count is not None
    count = given if count is None else count
    if owned_only and given != len(owned_problems(count, batch_size, mesh)):
        raise ValueError(f"{given} problems given; this process runs {len(owned_problems(count, batch_size, mesh))}")
    if count == 0:
        raise ValueError("no problems to run")
    chunk = chunk_size(count, batch_size, mesh.devices.size)
    shared = replicate(shared, mesh)
    outputs, taken = [], 0
    for start in range(0, count, chunk):
        n = min(chunk, count - start)
        rows = local_rows(n, mesh, chunk) if multiprocess(mesh) else LocalRows(0, chunk, n)
        first = taken if owned_only else start + rows.real.start
        part = jax.tree_util.tree_map(lambda a: a[first:first + len(rows.real)], problems)
        taken += len(rows.real)
        result = to_host(program(shared, pad_rows(part, rows.size)))
        outputs.append(jax.tree_util.tree_map(lambda a: a[:len(rows.real)], result))
        if on_outputs is not None:
            on_outputs([start + i for i in rows.real], outputs[-1])
        if on_chunk is not None:
            on_chunk(n)
    return jax.tree_util.tree_map(lambda *parts: np.concatenate(parts, axis=0), *outputs)


def owned_problems(count: int, batch_size: int, mesh: Mesh) -> list[int]:
    """The problems (indices into the job) whose outputs `map_chunks` returns to this process, in its order: all
    of them in a one-process job."""
    if not multiprocess(mesh):
        return list(range(count))
    chunk = chunk_size(count, batch_size, mesh.devices.size)
    owned = []
    for start in range(0, count, chunk):
        owned.extend(start + i for i in local_rows(min(chunk, count - start), mesh, chunk).real)
    return owned


def local_device_count() -> int:
    return len(jax.local_devices())


def device_count() -> int:
    """Devices of the whole job (every process's)."""
    return len(jax.devices())
