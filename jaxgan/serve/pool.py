"""A pool: the running sessions of one (model, kind, static config), stacked and advanced together.

Every session carries its state as a pytree `item` of fixed shapes; the pool runs
`jax.vmap(step, in_axes=(None, 0))(shared, items)` for a chunk of sessions, sharded over the local devices with
`jaxgan.parallel.shard_problems`, one compiled program per bucket size. Stacks stay on the devices between ticks
and are rebuilt (through the host) only when the running set changes (sessions join or leave at step boundaries);
the padding rows of a chunk repeat a real session and their results are dropped.
"""

import functools
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan import parallel
from jaxgan.serve.scheduler import BucketPolicy


@functools.cache
def sharded_step(step: Callable, mesh):
    """`jax.vmap(step, in_axes=(None, 0))` sharded over `mesh`, one jitted function per (step, mesh): the networks
    are arguments, so pools of models with the same shapes (a generator and its PTI-tuned copies) share its
    compilations when their step functions are the same object (the session kinds cache their step factories)."""
    def per_device(shared, items):
        return jax.vmap(step, in_axes=(None, 0))(shared, items)
    return parallel.shard_problems(per_device, mesh)


class Pool:
    """`step(shared, item) -> (item, output)` is one session's pure step; `shared` (the networks) is placed on the
    devices once. `members` are objects with an `item` attribute (the session's state, host or device arrays)."""

    def __init__(self, key, shared, step: Callable, max_batch: int, devices=None):
        self.key = key
        self.step = step
        self.devices = list(jax.local_devices() if devices is None else devices)
        self.shared = shared
        self.policy = BucketPolicy(max_batch)
        self._programs: dict[int, Any] = {}
        self._groups: list[tuple[list, Any, int]] = []  # (members, stacked items on device, bucket)
        self._signature: tuple = ()

    # -- programs -------------------------------------------------------------------------------------------------

    def _mesh(self, bucket: int):
        count = max(d for d in range(1, min(bucket, len(self.devices)) + 1) if bucket % d == 0)
        return parallel.data_mesh(self.devices[:count])

    def program(self, bucket: int):
        """The compiled `fn(shared, items) -> (items, outputs)` for `bucket` sessions."""
        if bucket not in self._programs:
            mesh = self._mesh(bucket)
            self._programs[bucket] = (sharded_step(self.step, mesh), parallel.replicate(self.shared, mesh))
        return self._programs[bucket]

    def memory_per_session(self, item) -> int:
        """Bytes one session costs in a batch-1 step: XLA's temporaries plus its arguments and outputs, from
        `compiled.memory_analysis()` of the one-session program (the shared networks are not counted)."""
        step = self.step
        one = jax.jit(lambda shared, items: jax.vmap(step, in_axes=(None, 0))(shared, items))
        items = jax.tree_util.tree_map(lambda a: jnp.asarray(a)[None], item)
        analysis = one.lower(self.shared, items).compile().memory_analysis()
        state_bytes = sum(np.asarray(a).nbytes for a in jax.tree_util.tree_leaves(item))
        if analysis is None:  # a backend without the analysis: a generous multiple of the state
            return 64 * state_bytes
        return int(analysis.temp_size_in_bytes + analysis.output_size_in_bytes + state_bytes)

    # -- ticks ----------------------------------------------------------------------------------------------------

    def _write_back(self) -> None:
        """Copy every member's row of the current stacks back into its `item`."""
        for members, stacked, _ in self._groups:
            # One copy of the stack to the host, then rows by numpy: a row of an array sharded over an explicit
            # mesh cannot be taken on the device without naming its output sharding.
            host = jax.tree_util.tree_map(np.asarray, stacked)
            for row, member in enumerate(members):
                member.item = jax.tree_util.tree_map(lambda leaf, row=row: leaf[row], host)
        self._groups = []
        self._signature = ()

    def release(self, member) -> None:
        """Before a member leaves (or its item is read), bring its item up to date."""
        if any(member in members for members, _, _ in self._groups):
            self._write_back()

    def _regroup(self, members: list, bucket: int) -> None:
        self._write_back()
        for start in range(0, len(members), bucket):
            chunk = members[start:start + bucket]
            rows = [m.item for m in chunk] + [chunk[-1].item] * (bucket - len(chunk))
            stacked = jax.tree_util.tree_map(lambda *leaves: np.stack([np.asarray(x) for x in leaves]), *rows)
            self._groups.append((chunk, stacked, bucket))
        self._signature = (tuple(id(m) for m in members), bucket)

    def tick(self, members: list) -> list[tuple[Any, Any, Exception | None]]:
        """Advance `members` (in this order) one step each; returns (member, output row as numpy, error) for each.
        A call that raises fails only the sessions of its chunk (their items are left as before the call)."""
        if not members:
            self._write_back()
            return []
        bucket = self.policy.choose(len(members))
        if self._signature != (tuple(id(m) for m in members), bucket):
            self._regroup(members, bucket)
        results = []
        groups = []
        for chunk, stacked, size in self._groups:
            run, shared = self.program(size)
            start = time.perf_counter()
            try:
                new_stacked, outputs = run(shared, stacked)
                outputs = jax.tree_util.tree_map(np.asarray, outputs)
            except Exception as error:  # noqa: BLE001 - reported per session, the others go on
                results.extend((m, None, error) for m in chunk)
                groups.append((chunk, stacked, size))
                continue
            self.policy.record(size, time.perf_counter() - start)
            groups.append((chunk, new_stacked, size))
            for row, member in enumerate(chunk):
                results.append((member, jax.tree_util.tree_map(lambda a, row=row: a[row], outputs), None))
        self._groups = groups
        return results

    def warm(self, item) -> None:
        """Compile and measure every bucket with copies of `item` (for --warmup)."""
        for bucket in self.policy.buckets:
            run, shared = self.program(bucket)
            stacked = jax.tree_util.tree_map(lambda a: jnp.stack([jnp.asarray(a)] * bucket), item)
            for _ in range(3):
                start = time.perf_counter()
                _, outputs = run(shared, stacked)
                jax.block_until_ready(outputs)
                self.policy.record(bucket, time.perf_counter() - start)
