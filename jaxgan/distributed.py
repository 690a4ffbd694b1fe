"""One job over several processes: JAX's multi-process runtime (`jax.distributed`), set up once per command.

A batch command runs as N processes (one per host, or one per GPU), each started with the same command line plus
its place in the job (`JobConfig`), or under SLURM, where JAX reads the place from the environment itself
(`jax.distributed.initialize()`'s cluster detection, JAX docs 'Multi-process environments'). After `initialize`
`jax.devices()` lists every process's devices, so `jaxgan.parallel`'s mesh spans the whole job and one compiled
step runs on all of them; each process feeds and reads only its own devices' rows.

What the processes say to each other beyond the compiled steps is small and goes through `process_allgather`
(collectives over the global devices): which items are already done, the summary entries that the first process
writes once, the first process's verdict on a run directory. On the CPU the collectives are Gloo's
(`jax_cpu_collectives_implementation`), so the same code runs as two processes on one laptop.

Faults: the runtime sends heartbeats; a process that stops answering for `heartbeat_timeout_s` makes every other
process stop (JAX aborts it with 'the JAX distributed service detected fatal errors'). A collective whose peer
died fails at once with a connection error, which `lost_peer` recognises, so the command can say so in one line
and exit without waiting for the runtime's shutdown barrier.
"""

import dataclasses
import json
import os

import numpy as np

ENV_PREFIX = "JAXGAN_"  # JAXGAN_COORDINATOR, JAXGAN_NUM_PROCESSES, JAXGAN_PROCESS_ID


@dataclasses.dataclass(frozen=True)
class JobConfig:
    """A process's place in a multi-process job. All None: a one-process job, unless `detect` finds a cluster."""

    coordinator: str | None = None       # HOST:PORT of process 0's coordination service
    num_processes: int | None = None
    process_id: int | None = None
    heartbeat_timeout_s: int = 60        # a silent process is declared dead after this long
    initialization_timeout_s: int = 300  # how long process 0 waits for the others to join
    detect: bool = True                  # without a coordinator: join a SLURM job step of several tasks

    def is_explicit(self) -> bool:
        return any(v is not None for v in (self.coordinator, self.num_processes, self.process_id))

    def validate(self) -> None:
        if not self.is_explicit():
            return
        if None in (self.coordinator, self.num_processes, self.process_id):
            raise ValueError("a multi-process job needs all of --coordinator, --num-processes and --process-id")
        host, _, port = self.coordinator.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"--coordinator {self.coordinator!r} is not HOST:PORT")
        if self.num_processes < 1:
            raise ValueError(f"--num-processes must be at least 1, got {self.num_processes}")
        if not 0 <= self.process_id < self.num_processes:
            raise ValueError(f"--process-id {self.process_id} is not in [0, {self.num_processes})")


def slurm_tasks(environ=None) -> int:
    """The task count of the SLURM job step this process runs in (started by `srun`), else 1."""
    environ = os.environ if environ is None else environ
    if "SLURM_STEP_ID" not in environ:
        return 1
    try:
        return int(environ.get("SLURM_STEP_NUM_TASKS") or environ.get("SLURM_NTASKS") or 1)
    except ValueError:
        return 1


_joined = False


def initialize(cfg: JobConfig = JobConfig()) -> bool:
    """Join the job described by `cfg` (or detected from SLURM); returns whether it has more than one process.

    Must run before anything touches a JAX backend; a second call is a no-op. A one-process `cfg` (or
    --num-processes 1) starts no runtime at all, so a plain command is unchanged.
    """
    global _joined
    import jax
    cfg.validate()
    if _joined:
        return jax.process_count() > 1
    explicit = cfg.is_explicit() and cfg.num_processes > 1
    detected = not cfg.is_explicit() and cfg.detect and slurm_tasks() > 1
    if not (explicit or detected):
        return False
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    timeouts = {"heartbeat_timeout_seconds": cfg.heartbeat_timeout_s,
                "initialization_timeout": cfg.initialization_timeout_s}
    if explicit:
        jax.distributed.initialize(cfg.coordinator, cfg.num_processes, cfg.process_id, **timeouts)
    else:
        jax.distributed.initialize(**timeouts)
    _joined = True
    if jax.process_count() > 1:
        _connect_collectives()
    return jax.process_count() > 1


def _connect_collectives() -> None:
    """Open the collectives' connections now, with stdout sent to stderr meanwhile: Gloo announces each
    connection on stdout ('[Gloo] Rank 0 is connected to 1 peer ranks...'), which would mix with a command's
    results there (`jaxgan lpips --json`)."""
    import sys
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        allgather_objects(None)
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def process_count() -> int:
    """Processes in the job (1 until `initialize` joined one; asks no JAX backend before that)."""
    if not _joined:
        return 1
    import jax
    return jax.process_count()


def process_index() -> int:
    if not _joined:
        return 0
    import jax
    return jax.process_index()


def is_primary() -> bool:
    """Whether this is process 0, the one that writes the job's shared files (summaries, run logs)."""
    return process_index() == 0


def allgather_objects(obj) -> list:
    """[the JSON-able `obj` of process 0, of process 1, ...] on every process (one process: [obj])."""
    if process_count() == 1:
        return [obj]
    from jax.experimental import multihost_utils
    data = np.frombuffer(json.dumps(obj).encode(), np.uint8)
    sizes = np.asarray(multihost_utils.process_allgather(np.int64(data.size))).reshape(-1)
    padded = np.zeros(int(sizes.max()), np.uint8)
    padded[:data.size] = data
    rows = np.asarray(multihost_utils.process_allgather(padded)).reshape(len(sizes), -1)
    return [json.loads(bytes(row[:int(size)]).decode()) for row, size in zip(rows, sizes)]


def allgather_rows(rows) -> np.ndarray:
    """Every process's array `rows` (the same shape but for the leading axis) joined along that axis in process
    order, on every process (one process: `rows`). For per-item results whose one summary file process 0 writes."""
    rows = np.asarray(rows)
    if process_count() == 1:
        return rows
    from jax.experimental import multihost_utils
    sizes = np.asarray(multihost_utils.process_allgather(np.int64(rows.shape[0]))).reshape(-1)
    padded = np.zeros((int(sizes.max()),) + rows.shape[1:], rows.dtype)
    padded[:rows.shape[0]] = rows
    gathered = np.asarray(multihost_utils.process_allgather(padded)).reshape((len(sizes),) + padded.shape)
    return np.concatenate([part[:int(size)] for part, size in zip(gathered, sizes)], axis=0)


def primary_result(fn):
    """fn() evaluated on process 0 only, its JSON-able result returned on every process; an exception of process 0
    (its message) is raised as ValueError on all of them, so every process stops with the same error."""
    outcome = None
    if is_primary():
        try:
            outcome = {"value": fn()}
        except (ValueError, OSError) as e:
            outcome = {"error": str(e)}
    outcome = allgather_objects(outcome)[0]
    if "error" in outcome:
        raise ValueError(outcome["error"])
    return outcome["value"]


def broadcast_from_primary(tree, like=None):
    """Process 0's numpy pytree `tree` on every process (bit for bit: the others add zeros to it); the other
    processes pass `like`, a pytree of the same structure with shapes and dtypes (e.g. `jax.eval_shape`'s), in
    place of a tree of their own. One process: `tree` as numpy."""
    import jax
    if process_count() == 1:
        return jax.tree_util.tree_map(np.asarray, tree)
    from jax.experimental import multihost_utils
    if not is_primary():
        tree = jax.tree_util.tree_map(lambda leaf: np.zeros(leaf.shape, leaf.dtype), like)
    return jax.tree_util.tree_map(np.asarray, multihost_utils.broadcast_one_to_all(tree))


def any_true(flags) -> np.ndarray:
    """Elementwise OR of a boolean vector over the processes (the same length on each)."""
    flags = np.asarray(flags, bool)
    if process_count() == 1:
        return flags
    from jax.experimental import multihost_utils
    return np.asarray(multihost_utils.process_allgather(flags.astype(np.uint8))).reshape(-1, flags.size).any(0)


LOST_PEER_MARKERS = ("Gloo", "Connection reset by peer", "connection closed", "heartbeat", "Socket closed",
                     "DEADLINE_EXCEEDED", "UNAVAILABLE")


def lost_peer(error: BaseException) -> bool:
    """Whether `error` is a collective that failed because another process of the job is gone."""
    if process_count() == 1:
        return False
    text = f"{type(error).__name__}: {error}"
    return any(marker in text for marker in LOST_PEER_MARKERS)


def describe() -> str:
    """'process I of N' (for messages), '' in a one-process job."""
    return f"process {process_index()} of {process_count()}" if process_count() > 1 else ""


def message_prefix() -> str:
    """'process I of N: ' to start a process's report line with, '' in a one-process job."""
    return f"{describe()}: " if process_count() > 1 else ""
