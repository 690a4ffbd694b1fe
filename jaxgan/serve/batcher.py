"""Dynamic batching of stateless requests (generate, LPIPS distance): requests that arrive within a short wait
share one compiled call.

Each request brings rows (a pytree with a leading axis) under a key naming its program; when the oldest waiting
request of a key has waited `wait_s`, or `max_batch` rows are waiting, the rows of all its waiting requests are
joined, run in chunks of at most `max_batch` rows padded to a power of two (so a few shapes compile), and split
back to their requests. A request's rows are computed as they would be alone: rows never interact.
"""

import time
from concurrent.futures import Future
from typing import Any, Callable

import jax
import numpy as np

from jaxgan import parallel
from jaxgan.serve.scheduler import bucket_for


class Batcher:
    def __init__(self, max_batch: int, wait_s: float):
        self.max_batch = max_batch
        self.wait_s = wait_s
        self._pending: dict[Any, list] = {}  # key -> [(arrival, rows, count, future, runner)]

    def add(self, key, runner: Callable, rows, future: Future) -> None:
        """`runner(stacked rows) -> outputs` (numpy, leading axis the rows), run on the engine thread."""
        count = jax.tree_util.tree_leaves(rows)[0].shape[0]
        self._pending.setdefault(key, []).append((time.monotonic(), rows, count, future, runner))

    def next_due(self) -> float | None:
        """Seconds until the next batch is due (0: now), None when nothing waits."""
        if not self._pending:
            return None
        now = time.monotonic()
        waits = []
        for requests in self._pending.values():
            if sum(r[2] for r in requests) >= self.max_batch:
                return 0.0
            waits.append(max(0.0, requests[0][0] + self.wait_s - now))
        return min(waits)

    def flush(self, force: bool = False) -> None:
        """Run every key whose batch is due (all of them with `force`)."""
        now = time.monotonic()
        for key in list(self._pending):
            requests = self._pending[key]
            if not (force or requests[0][0] + self.wait_s <= now or sum(r[2] for r in requests) >= self.max_batch):
                continue
            del self._pending[key]
            self._run(requests)

    def cancel(self, error: Exception) -> None:
        for requests in self._pending.values():
            for *_, future, _ in requests:
                future.set_exception(error)
        self._pending = {}

    def _run(self, requests) -> None:
        runner = requests[0][4]
        rows = jax.tree_util.tree_map(lambda *parts: np.concatenate(parts), *(r[1] for r in requests))
        total = sum(r[2] for r in requests)
        try:
            outputs = []
            for start in range(0, total, self.max_batch):
                part = jax.tree_util.tree_map(lambda a: a[start:start + self.max_batch], rows)
                n = min(self.max_batch, total - start)
                padded, _ = parallel.pad_problems(part, bucket_for(n))
                out = runner(padded)
                outputs.append(jax.tree_util.tree_map(lambda a: np.asarray(a)[:n], out))
            joined = jax.tree_util.tree_map(lambda *parts: np.concatenate(parts), *outputs)
        except Exception as error:  # noqa: BLE001 - every waiting request learns why
            for *_, future, _ in requests:
                future.set_exception(error)
            return
        offset = 0
        for _, _, count, future, _ in requests:
            future.set_result(jax.tree_util.tree_map(lambda a, o=offset, c=count: a[o:o + c], joined))
            offset += count
