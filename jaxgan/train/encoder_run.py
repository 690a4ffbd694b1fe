"""An EditGAN encoder training run on disk: the official loop (`train_encoder.py:164-341` of
nv-tlabs/editGAN_release@fef9ab8) over `jaxgan.train.encoder`'s steps, resumable, with the result as a checkpoint.

The loop. Iteration i belongs to epoch i // B (B = len(images) // batch_size real batches per epoch; the last,
partial batch of an epoch is dropped so that one compiled shape serves every step). Within an iteration the real
step runs first, on batch i % B of the epoch's shuffle, when images are given and `epoch > train_real_start_epochs`,
then the sampling step, as the official loop. Without images every iteration is a sampling step only. The random
numbers are explicit: from key(seed) come the encoder's initialisation, iteration i's latents
(fold_in(sample key, i)) and epoch e's shuffle (fold_in(shuffle key, e)), so a run is a function of its settings
and a run stopped and resumed from its last state goes on exactly as if it had never stopped.

The run directory OUT:

  training.json      the settings (training config, encoder config, image count, generator); a resumed run must
                     have the same
  log.jsonl          one JSON object per `log_every` iterations: iteration, epoch, seconds, mean loss terms
  state-IIIIIIII/    the training state (E, Adam state, iteration) after iteration IIIIIIII, written every
                     `state_every` iterations and at the end (the last two are kept); `jaxgan.train.run` format
  encoder/           the trained encoder as a jaxgan checkpoint (model E, kind editgan-encoder), written at the
                     end (replaced whole when a resumed run ends), for `jaxgan invert --encoder OUT/encoder`

Every file and directory is written under a temporary name and renamed when complete. Data-parallel over the
largest number of the given devices that divides both batch sizes (`training_devices`): the batches are sharded,
the networks and the optimiser state replicated, and each step is partitioned by XLA with BatchNorm statistics over
the whole batch, as `jaxgan.train.encoder` explains; the state and the encoder are saved as on one device, so a run
may resume on another device count.
"""

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxgan.checkpoint import save_checkpoint
from jaxgan.files import atomic_write, write_json
from jaxgan.models.encoder import EncoderConfig, init_encoder
from jaxgan.nn.split import SplitModel
from jaxgan.train.encoder import EncoderTrainConfig, init_optimizer, real_step, sampling_step, trains_real
from jaxgan.train.run import RunError, restore_state, save_state, state_dirs

CONFIG_FILE = "training.json"
LOG_FILE = "log.jsonl"
ENCODER_DIR = "encoder"


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class EncoderTrainState:
    E: SplitModel
    opt: Any
    step: jax.Array  # int32 [], iterations done


@dataclasses.dataclass
class Progress:
    """What `on_progress` gets every `log_every` iterations: the iteration reached and the mean terms since the
    last report."""

    iteration: int
    epoch: int
    seconds: float
    terms: dict


def encoder_config_for(G: SplitModel, **widths) -> EncoderConfig:
    """The encoder for generator G: its num_ws rows of width w_dim; other sizes EncoderConfig's defaults (the
    official network) unless given."""
    return EncoderConfig(num_ws=G.config.num_ws, w_dim=G.config.w_dim, **widths)


def training_devices(cfg: EncoderTrainConfig, with_images: bool, devices=None) -> list:
    """The devices a run shards over: the most of `devices` (default: the local ones) that divides the sampled
    batch and, with real images, the real batch."""
    devices = list(jax.local_devices() if devices is None else devices)
    sizes = (cfg.sample_bs, cfg.batch_size) if with_images else (cfg.sample_bs,)
    count = max(n for n in range(1, len(devices) + 1) if all(size % n == 0 for size in sizes))
    return devices[:count]


def _keys(cfg: EncoderTrainConfig):
    init_key, sample_key, shuffle_key = jax.random.split(jax.random.key(cfg.seed), 3)
    return init_key, sample_key, shuffle_key


def init_state(encoder_cfg: EncoderConfig, cfg: EncoderTrainConfig) -> EncoderTrainState:
    """A fresh run: E with PyTorch's default initialisation from the seed's init key, zeroed Adam moments."""
    E = init_encoder(encoder_cfg, _keys(cfg)[0])
    return EncoderTrainState(E=E, opt=init_optimizer(E, cfg), step=jnp.zeros((), jnp.int32))


def batches_per_epoch(image_count: int, cfg: EncoderTrainConfig) -> int | None:
    """Real batches per epoch (the partial last batch dropped); None without images."""
    if image_count == 0:
        return None
    if image_count < cfg.batch_size:
        raise ValueError(f"{image_count} training images are fewer than one batch ({cfg.batch_size}); give more "
                         "images or a smaller batch size")
    return image_count // cfg.batch_size


def settings(cfg: EncoderTrainConfig, encoder_cfg: EncoderConfig, image_count: int, generator: str | None) -> dict:
    return {"train": cfg.to_dict(), "encoder": dataclasses.asdict(encoder_cfg), "images": image_count,
            "generator": generator}


def check_run_directory(out, expected: dict, resume: bool) -> Path | None:
    """Refuse, with a RunError, a run directory that does not fit the settings and `resume`; returns the state to
    resume from (None for a fresh run)."""
    out = Path(out).resolve()
    if not resume:
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise RunError(f"{out} already holds files; pass --resume to continue that run, or choose a new --out")
        return None
    config_file = out / CONFIG_FILE
    if not config_file.is_file():
        raise RunError(f"--resume: {out} holds no encoder training run ({CONFIG_FILE} is missing)")
    stored = json.loads(config_file.read_text())
    expected = json.loads(json.dumps(expected))  # tuples as lists, as stored
    if stored != expected:
        diff = [k for k in expected if stored.get(k) != expected[k]]
        raise RunError(f"--resume: {out} was trained with other settings ({', '.join(diff)} differ)")
    states = state_dirs(out)
    if not states:
        raise RunError(f"--resume: {out} holds no saved training state yet")
    return states[-1]


def train_encoder(G: SplitModel, lpips: SplitModel | None, out, cfg: EncoderTrainConfig = EncoderTrainConfig(), *,
                  images=None, iterations: int, encoder_cfg: EncoderConfig | None = None, resume: bool = False,
                  generator: str | None = None, state_every: int = 1000, log_every: int = 100,
                  on_progress: Callable[[Progress], None] | None = None,
                  stop_after_iterations: int | None = None, devices=None) -> EncoderTrainState:
    """Train EditGAN's encoder for generator G until `iterations` iterations are done in all (counting those of
    the run resumed), and write OUT/encoder.

    images: real images [N, R, R, 3] in [-1, 1] at G's resolution (None: sampling steps only). lpips: the VGG
    LPIPS model, or None to drop the LPIPS terms. generator: where G came from, recorded in the sidecar.
    `stop_after_iterations` ends the call early (saving the state as at the end, writing no encoder): for tests
    of resumption. devices: those to shard over (default: the local ones; see `training_devices`).
    """
    if G.config.c_dim:
        raise ValueError("the encoder is trained for unconditional generators (c_dim 0)")
    if iterations < 1 or state_every < 1 or log_every < 1:
        raise ValueError("iterations, state_every and log_every must be positive")
    encoder_cfg = encoder_config_for(G) if encoder_cfg is None else encoder_cfg
    if (encoder_cfg.num_ws, encoder_cfg.w_dim) != (G.config.num_ws, G.config.w_dim):
        raise ValueError(f"the encoder gives W+ ({encoder_cfg.num_ws}, {encoder_cfg.w_dim}); the generator takes "
                         f"({G.config.num_ws}, {G.config.w_dim})")
    res = G.config.img_resolution
    if images is not None:
        images = np.asarray(images, np.float32)
        if images.ndim != 4 or images.shape[1:] != (res, res, 3):
            raise ValueError(f"training images must be [N, {res}, {res}, 3], got {images.shape}")
    count = 0 if images is None else len(images)
    per_epoch = batches_per_epoch(count, cfg)
    expected = settings(cfg, encoder_cfg, count, generator)
    out = Path(out).resolve()
    saved = check_run_directory(out, expected, resume)
    if saved is not None:
        state = restore_state(saved, jax.eval_shape(lambda: init_state(encoder_cfg, cfg)))
        _truncate_log(out, int(state.step))
    else:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / CONFIG_FILE, expected)
        state = init_state(encoder_cfg, cfg)

    _, sample_key, shuffle_key = _keys(cfg)
    used = training_devices(cfg, images is not None, devices)
    # Auto axes: XLA partitions the whole-batch steps from their inputs' shardings
    mesh = jax.make_mesh((len(used),), ("batch",), axis_types=(AxisType.Auto,), devices=used)
    replicated, batch_sharding = NamedSharding(mesh, P()), NamedSharding(mesh, P("batch"))
    G, lpips = jax.device_put((G, lpips), replicated)
    E, opt, step = *jax.device_put((state.E, state.opt), replicated), int(state.step)
    sharded = batch_sharding if len(used) > 1 else None
    start, seconds_before = time.perf_counter(), _seconds_so_far(out)
    order, order_epoch, window, done_here = None, None, [], 0
    while step < iterations:
        epoch = step // per_epoch if per_epoch else 0
        terms = {}
        if per_epoch and trains_real(cfg, epoch):
            if order_epoch != epoch:  # the official DataLoader(shuffle=True): a new order every epoch
                order = np.asarray(jax.random.permutation(jax.random.fold_in(shuffle_key, epoch), count))
                order_epoch = epoch
            b = step % per_epoch
            batch = jax.device_put(images[order[b * cfg.batch_size:(b + 1) * cfg.batch_size]], batch_sharding)
            E, opt, real_terms = real_step(E, opt, G, lpips, batch, cfg)
            terms.update(real_terms)
        E, opt, sample_terms = sampling_step(E, opt, G, lpips, jax.random.fold_in(sample_key, step), cfg, sharded)
        terms.update(sample_terms)
        step += 1
        done_here += 1
        window.append({k: float(v) for k, v in terms.items()})
        stopping = stop_after_iterations is not None and done_here >= stop_after_iterations
        finished = step >= iterations or stopping
        if step % log_every == 0 or finished:
            report = Progress(iteration=step, epoch=epoch, terms=_mean(window),
                              seconds=round(seconds_before + time.perf_counter() - start, 2))
            _append_log(out, report)
            if on_progress is not None:
                on_progress(report)
            window = []
        if step % state_every == 0 or finished:
            state = _on_host(EncoderTrainState(E=E, opt=opt, step=jnp.asarray(step, jnp.int32)))
            save_state(out, state)
        if stopping:
            return state
    state = _on_host(EncoderTrainState(E=E, opt=opt, step=jnp.asarray(step, jnp.int32)))
    meta = {"training": {"trainer": "jaxgan.train.encoder", "recipe": "EditGAN train_encoder.py (fef9ab8)",
                         "generator": generator, "iterations": step, "images": count, "devices": len(used),
                         "lpips": lpips is not None, "config": cfg.to_dict(),
                         "seconds": round(seconds_before + time.perf_counter() - start, 1)}}
    save_checkpoint(out / ENCODER_DIR, {"E": state.E}, meta, replace=True)
    return state


def _on_host(state: EncoderTrainState) -> EncoderTrainState:
    """The (replicated) state as numpy arrays: saved and returned as on one device, whatever the run sharded over."""
    return jax.tree_util.tree_map(np.asarray, state)


def _mean(window: list[dict]) -> dict:
    keys = sorted({k for m in window for k in m})
    return {k: float(np.mean([m[k] for m in window if k in m])) for k in keys}


def _append_log(out: Path, report: Progress) -> None:
    with open(out / LOG_FILE, "a") as f:
        f.write(json.dumps(dataclasses.asdict(report)) + "\n")


def _log_lines(out: Path) -> list[str]:
    log = out / LOG_FILE
    return [line for line in log.read_text().splitlines() if line.strip()] if log.is_file() else []


def _truncate_log(out: Path, step: int) -> None:
    """Drop reports logged after the state resumed from (a run killed between a report and a save)."""
    lines = _log_lines(out)
    kept = [line for line in lines if json.loads(line)["iteration"] <= step]
    if len(kept) != len(lines):
        atomic_write(out / LOG_FILE, lambda f: f.write("".join(line + "\n" for line in kept).encode()))


def _seconds_so_far(out: Path) -> float:
    lines = _log_lines(out)
    return float(json.loads(lines[-1])["seconds"]) if lines else 0.0
