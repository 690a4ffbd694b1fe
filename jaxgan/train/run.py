"""A StyleGAN2 training run on disk: presets, the run directory, resumable state, logs, sample grids, snapshots.

`run_training` drives `jaxgan.train.stylegan2.Trainer` over the toyfaces stream (`jaxgan.data.toyfaces`): iteration
i trains on the faces of `batch_seeds(dataset_seed, i, batch_size)`, and every random draw of iteration i comes from
`fold_in(key(seed), i)`, so a run is a function of its config, and a run stopped and resumed from its last state
goes on exactly as if it had never stopped (same numbers, bit for bit, on the same machine and device count).

The run directory OUT:

  training.json            the TrainConfig (a resumed run must have the same one)
  log.jsonl                one JSON object per tick: kimg, iteration, seconds, images/s, mean losses of the tick
  samples-KKKKKK.png       G_ema on fixed latents (RandomState(seed).randn, seeds 0..N-1; psi 1, const noise) at
                           KKKKKK kimg; samples-init.png before the first iteration
  state-IIIIIIII/          the whole training state after iteration IIIIIIII (orbax; the last two are kept)
  network-KKKKKK/          a jaxgan checkpoint: G (= G_ema, as the official pickles' G_ema) and D, usable by
                           every jaxgan command (`jaxgan generate OUT/network-000200 ...`)

Every file and directory is written under a temporary name and renamed when complete.

A run of several processes (`jaxgan.distributed`) trains on one mesh over all their devices, each process rendering
its devices' share of every batch; process 0 alone reads and writes OUT (the others start from its state, sent to
them by a collective), so OUT need not be on a shared file system.
"""

import dataclasses
import functools
import json
import shutil
import time
from pathlib import Path
from typing import Callable

import jax
import numpy as np

from jaxgan import distributed, parallel
from jaxgan.checkpoint import process_checkpointer, save_checkpoint
from jaxgan.data import toyfaces
from jaxgan.files import atomic_directory, atomic_write, json_text, write_json
from jaxgan.images import png_writer, tile_grid
from jaxgan.models import stylegan2
from jaxgan.sampling import to_uint8, z_from_seeds
from jaxgan.train.stylegan2 import TrainConfig, Trainer, TrainState, abstract_state, init_state

CONFIG_FILE = "training.json"
LOG_FILE = "log.jsonl"
STATE_PREFIX = "state-"
KEEP_STATES = 2

PRESETS = {
    # 64 px toyfaces, narrow networks (1.13 M generator parameters); on a GPU, the way to a sharper demo model.
    "toyfaces64": TrainConfig(resolution=64, g_channels=(128, 128, 128, 64, 32), d_channels=(128, 128, 128, 64, 32),
                              z_dim=128, w_dim=128, mapping_layers=4, batch_size=32),
    # The bundled demo model: 32 px, 0.66 M generator parameters, 26 images/s of training on a 2-core CPU.
    "toyfaces32": TrainConfig(resolution=32, g_channels=(128, 128, 64, 32), d_channels=(128, 128, 64, 32),
                              z_dim=64, w_dim=64, mapping_layers=2, batch_size=32),
    # A few seconds per iteration on a CPU: for tests and for trying the trainer out.
    "tiny": TrainConfig(resolution=32, g_channels=(32, 32, 16, 8), d_channels=(32, 32, 16, 8), z_dim=32, w_dim=32,
                        mapping_layers=2, batch_size=8),
}


class RunError(ValueError):
    """A run directory that cannot be used as asked (exists without --resume, differs in config, ...)."""


def load_config(name_or_path: str, overrides: dict | None = None) -> TrainConfig:
    """A preset name, or a JSON file of TrainConfig fields (with an optional "preset" to start from); then
    `overrides` (fields set to None are ignored)."""
    if name_or_path in PRESETS:
        cfg = PRESETS[name_or_path]
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise RunError(f"{name_or_path!r} is neither a preset ({', '.join(PRESETS)}) nor a JSON config file")
        try:
            values = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise RunError(f"{path} is not valid JSON: {e}") from None
        if not isinstance(values, dict):
            raise RunError(f"{path} must hold a JSON object of training settings")
        base = values.pop("preset", None)
        if base is not None and base not in PRESETS:
            raise RunError(f"{path}: unknown preset {base!r}; presets: {', '.join(PRESETS)}")
        start = PRESETS[base].to_dict() if base else {}
        cfg = TrainConfig.from_dict({**start, **values})
    changes = {k: v for k, v in (overrides or {}).items() if v is not None}
    return dataclasses.replace(cfg, **changes) if changes else cfg


# ----------------------------------------------------------------------------------------------------------------
# Training state on disk: the state's leaves by position, with their key paths recorded for a readable mismatch


def _leaves(state) -> tuple[list, list[str], object]:
    flat, treedef = jax.tree_util.tree_flatten_with_path(state)
    return [leaf for _, leaf in flat], [jax.tree_util.keystr(path) for path, _ in flat], treedef


def state_dirs(out: Path) -> list[Path]:
    return sorted(p for p in out.glob(f"{STATE_PREFIX}*") if p.is_dir() and (p / "paths.json").is_file())


def save_state(out: Path, state: TrainState) -> Path:
    state = parallel.to_host(state)
    leaves, paths, _ = _leaves(state)
    final = out / f"{STATE_PREFIX}{int(state.step):08d}"
    with atomic_directory(final, replace=True) as tmp:  # a state of the same step (a rerun) is replaced whole
        with process_checkpointer() as checkpointer:
            checkpointer.save((tmp / "leaves").resolve(),
                              {f"{i:05d}": np.asarray(leaf) for i, leaf in enumerate(leaves)})
            checkpointer.wait_until_finished()
        (tmp / "paths.json").write_text(json_text(paths))
    for old in state_dirs(out)[:-KEEP_STATES]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_state(path: Path, cfg: TrainConfig) -> TrainState:
    return restore_state(path, abstract_state(cfg))


def restore_state(path: Path, abstract):
    """The training state saved by `save_state` in `path`, restored onto the structure of `abstract` (shapes and
    dtypes, e.g. from `jax.eval_shape`) on the first local device; a RunError when the stored leaves differ."""
    leaves, paths, treedef = _leaves(abstract)
    stored = json.loads((path / "paths.json").read_text())
    if stored != paths:
        raise RunError(f"{path} does not hold a training state of this config ({len(stored)} leaves stored, "
                       f"{len(paths)} expected; first difference at "
                       f"{next((a for a, b in zip(stored, paths) if a != b), '(lengths)')})")
    sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    target = {f"{i:05d}": jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sharding)
              for i, leaf in enumerate(leaves)}
    with process_checkpointer() as checkpointer:
        restored = checkpointer.restore((path / "leaves").resolve(), target)
    return jax.tree_util.tree_unflatten(treedef, [restored[f"{i:05d}"] for i in range(len(leaves))])


# ----------------------------------------------------------------------------------------------------------------
# Samples and snapshots


def sample_grid(G, count: int = 32, truncation_psi: float = 1.0) -> np.ndarray:
    """uint8 grid of G on the latents of seeds 0..count-1 (const noise)."""
    images = _generate(G, z_from_seeds(range(count), G.config.z_dim), truncation_psi)
    return tile_grid(to_uint8(np.asarray(images)))


@jax.jit
def _generate(G, z, truncation_psi):
    return stylegan2.generate(G, z, truncation_psi=truncation_psi)


def _write_png(path: Path, pixels: np.ndarray) -> None:
    atomic_write(path, png_writer(pixels))


def kimg_name(nimg: int) -> str:
    return f"{nimg // 1000:06d}"


def export_network(out: Path, state: TrainState, cfg: TrainConfig, nimg: int, seconds: float) -> Path:
    """OUT/network-KKKKKK: G_ema as G, and D, with the training record in jaxgan.json."""
    path = out / f"network-{kimg_name(nimg)}"
    if path.exists():
        shutil.rmtree(path)
    meta = {"training": {"trainer": "jaxgan.train.stylegan2", "dataset": f"{cfg.dataset}{cfg.resolution}",
                         "kimg": round(nimg / 1000, 3), "iterations": int(state.step),
                         "seconds": round(seconds, 1), "config": cfg.to_dict(),
                         "devices": [str(d) for d in jax.devices()]}}
    return save_checkpoint(path, {"G": parallel.to_host(state.G_ema), "D": parallel.to_host(state.D)}, meta)


# ----------------------------------------------------------------------------------------------------------------
# The run


@dataclasses.dataclass
class Tick:
    """What a tick reports: progress and the tick's mean metrics."""

    kimg: float
    iteration: int
    seconds: float
    images_per_s: float
    metrics: dict


def check_run_directory(out, cfg: TrainConfig, resume: bool) -> Path | None:
    """Refuse, with a RunError, a run directory that does not fit `cfg` and `resume`; returns the saved state to
    resume from (None for a fresh run). Reads nothing but JSON, so a command line can check before it compiles."""
    out = Path(out).resolve()
    config_file = out / CONFIG_FILE
    if not resume:
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise RunError(f"{out} already holds files; pass --resume to continue that run, or choose a new --out")
        return None
    if not config_file.is_file():
        raise RunError(f"--resume: {out} holds no training run ({CONFIG_FILE} is missing)")
    stored = TrainConfig.from_dict(json.loads(config_file.read_text()))
    if stored != cfg:
        diff = {k: (v, getattr(cfg, k)) for k, v in dataclasses.asdict(stored).items() if getattr(cfg, k) != v}
        raise RunError(f"--resume: {out} was trained with other settings: "
                       + ", ".join(f"{k} {a!r} there, {b!r} now" for k, (a, b) in diff.items()))
    states = state_dirs(out)
    if not states:
        raise RunError(f"--resume: {out} holds no saved training state yet")
    return states[-1]


def prepare_run(out: Path, cfg: TrainConfig, resume: bool) -> TrainState | None:
    """Check OUT against `cfg` and `resume`; returns the state to resume from (None for a fresh run)."""
    saved = check_run_directory(out, cfg, resume)
    if saved is None:
        return None
    state = load_state(saved, cfg)
    _truncate_log(out, int(state.step))
    return state


def run_training(cfg: TrainConfig, out, *, kimg: float, resume: bool = False, snapshot_kimg: float = 10.0,
                 tick_kimg: float = 1.0, mesh=None, on_tick: Callable[[Tick], None] | None = None,
                 stop_after_iterations: int | None = None) -> TrainState:
    """Train until `kimg` thousand real images have been shown in all (counting those of the run resumed).

    Every `tick_kimg` a Tick goes to `on_tick` and to log.jsonl; every `snapshot_kimg` (and at the end) a sample
    grid, a network checkpoint and the training state are written. `stop_after_iterations` ends the call early
    (after that many iterations of this call), saving the state as at the end: for tests of resumption.
    """
    out = Path(out).resolve()
    primary = distributed.is_primary()
    trainer = get_trainer(cfg, parallel.data_mesh() if mesh is None else mesh)

    def start():  # process 0's view of OUT: the state to resume from, or None for a fresh run
        saved = prepare_run(out, cfg, resume)
        out.mkdir(parents=True, exist_ok=True)
        if saved is None:
            write_json(out / CONFIG_FILE, cfg.to_dict())
        return saved
    if distributed.process_count() == 1:
        start_state = start()
        fresh = start_state is None
        state = trainer.place(init_state(cfg) if fresh else start_state)
    else:
        kept = {}

        def start_on_primary():  # a refusal (RunError) stops every process with the same error
            kept["state"] = start()
            return kept["state"] is None
        fresh = distributed.primary_result(start_on_primary)
        first = (init_state(cfg) if fresh else kept["state"]) if primary else None
        state = trainer.place(distributed.broadcast_from_primary(parallel.to_host(first), like=abstract_state(cfg)))
    if fresh and primary:
        _write_png(out / "samples-init.png", sample_grid(parallel.to_host(state.G_ema)))
    step = int(parallel.to_host(state.step))
    batches = toyfaces.iterate_batches(cfg.dataset_seed, cfg.batch_size, cfg.resolution, start=step,
                                       rows=trainer.local_rows())
    total_nimg = int(round(kimg * 1000))
    nimg = step * cfg.batch_size
    tick_start, tick_nimg, tick_metrics = time.perf_counter(), nimg, []
    run_start, seconds_before = time.perf_counter(), _seconds_so_far(out) if primary else 0.0
    snapshot_nimg = int(snapshot_kimg * 1000)
    next_snapshot = (nimg // snapshot_nimg + 1) * snapshot_nimg
    done_here = 0
    while nimg < total_nimg:
        state, metrics = trainer.train_step(state, next(batches).images)
        step += 1
        done_here += 1
        nimg = step * cfg.batch_size
        tick_metrics.append(metrics)
        finished = nimg >= total_nimg or (stop_after_iterations is not None and done_here >= stop_after_iterations)
        if nimg - tick_nimg >= tick_kimg * 1000 or finished:
            elapsed = time.perf_counter() - tick_start
            tick = Tick(kimg=nimg / 1000, iteration=step, seconds=round(seconds_before + time.perf_counter()
                                                                          - run_start, 2),
                        images_per_s=(nimg - tick_nimg) / max(elapsed, 1e-9), metrics=_mean(tick_metrics))
            if primary:
                _append_log(out, tick)
            if on_tick is not None:
                on_tick(tick)
            tick_start, tick_nimg, tick_metrics = time.perf_counter(), nimg, []
        if (nimg >= next_snapshot or finished) and primary:
            seconds = seconds_before + time.perf_counter() - run_start
            _write_png(out / f"samples-{kimg_name(nimg)}.png", sample_grid(parallel.to_host(state.G_ema)))
            export_network(out, state, cfg, nimg, seconds)
            save_state(out, state)
        if nimg >= next_snapshot or finished:
            next_snapshot = (nimg // snapshot_nimg + 1) * snapshot_nimg
        if finished:
            break
    return state


@functools.lru_cache(maxsize=4)
def get_trainer(cfg: TrainConfig, mesh) -> Trainer:
    """One Trainer (so one set of compiled phases) per config and mesh in this process: a resumed or repeated run
    in the same process does not compile again."""
    return Trainer(cfg, mesh)


def _mean(metrics: list[dict]) -> dict:
    keys = sorted({k for m in metrics for k in m})
    return {k: round(float(np.mean([m[k] for m in metrics if k in m])), 5) for k in keys}


def _append_log(out: Path, tick: Tick) -> None:
    with open(out / LOG_FILE, "a") as f:
        f.write(json.dumps(dataclasses.asdict(tick)) + "\n")


def _truncate_log(out: Path, step: int) -> None:
    """Drop the ticks logged after the state a run resumes from (a run killed between its last tick and its last
    save), so the log reads as one run."""
    log = out / LOG_FILE
    if log.is_file():
        lines = [line for line in log.read_text().splitlines() if line.strip()]
        kept = [line for line in lines if json.loads(line)["iteration"] <= step]
        if len(kept) != len(lines):
            atomic_write(log, lambda f: f.write("".join(line + "\n" for line in kept).encode()))


def _seconds_so_far(out: Path) -> float:
    """Training seconds of the run before this call (the last tick's), so a resumed run's clock goes on."""
    log = out / LOG_FILE
    if not log.is_file():
        return 0.0
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    return float(json.loads(lines[-1])["seconds"]) if lines else 0.0
