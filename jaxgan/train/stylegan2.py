"""StyleGAN2 training as in stylegan2-ada-pytorch (`training/training_loop.py`, `training/loss.py` StyleGAN2Loss),
data-parallel over all devices of the job (of several processes, too: `jaxgan.distributed`).

One training iteration shows `batch_size` real images and runs the official phases in the official order, each its
own Adam step (the lazy-regularisation scheme of the StyleGAN2 paper):

* Gmain, every iteration: softplus(-D(G(z))) on the generated batch;
* Greg, every `g_reg_interval` iterations (when pl_weight > 0): the path-length penalty on `batch / pl_batch_shrink`
  generated images: lengths = sqrt(mean_ws(sum_w(g^2))) of g = d<G(ws), u>/d ws with u ~ N(0, 1) / sqrt(H W),
  pl_mean <- lerp(pl_mean, mean(lengths), pl_decay) (the updated mean, gradient included, enters the penalty, as in
  the official code), loss = pl_weight (lengths - pl_mean)^2 times the interval;
* Dmain, every iteration: softplus(D(G(z))) + softplus(-D(x)), fake and real in separate D passes;
* Dreg, every `d_reg_interval` iterations: R1 = gamma / 2 * |dD(x)/dx|^2 on the real batch, times the interval.

Phases that regularise lazily scale their optimiser (official `mb_ratio = interval / (interval + 1)`): lr * ratio
and betas ** ratio; the main and regularisation phases of a network share one Adam state. Each phase draws its own
latents; G runs with random noise and style mixing (probability 0.9: one cutoff per device batch in
[1, num_ws), layers from the cutoff on taken from a second latent's mapping). Every mapping call (except the mixing
one) updates w_avg <- lerp(mean_batch(w), w_avg, w_avg_beta). Gradients are cleaned as the official loop does
(NaN -> 0, +-inf -> +-1e5) before each Adam step. After the phases G_ema <- lerp(G, G_ema, beta) with
beta = 0.5 ** (batch / max(ema_nimg, 1e-8)), ema_nimg = min(ema_kimg * 1000, cur_nimg * ema_rampup); G_ema's
buffers (w_avg, noise) are copied from G. The mapping network's learning-rate multiplier (0.01) is part of the
model: FullyConnected stores weights divided by it and scales them at run time, so Adam's steps on the stored
weights are that much smaller in effect, exactly as in the official equalised-learning-rate layers.

Data parallelism (JAX docs, 'Manual parallelism with shard_map'): each phase is `jit(shard_map(...))` over the 1-D
`data` mesh. Every device holds the whole state, runs its slice of the batch (so minibatch-std groups and style-mixing
cutoffs stay per device, as per GPU in the official code), and gradients, loss values, the w_avg batch mean and the
path-length mean are averaged over the mesh with `pmean` (the official code keeps a pl_mean per GPU). Random
numbers come from `fold_in(fold_in(fold_in(key, iteration), phase), device)`, so a run is a function of its seed.

Not modelled: ADA's augmentation pipeline (toyfaces is an endless stream; there is no data to overfit), mixed
precision (float32 throughout), conditional training (c_dim 0), the metrics (FID).
"""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import PartitionSpec as P

from jaxgan import parallel
from jaxgan.data import toyfaces
from jaxgan.models import stylegan2
from jaxgan.models.stylegan2 import DiscriminatorConfig, GeneratorConfig
from jaxgan.nn.split import SplitModel
from jaxgan.train.settings import JsonSettings

PHASES = ("Gmain", "Greg", "Dmain", "Dreg")


@dataclasses.dataclass(frozen=True)
class TrainConfig(JsonSettings):
    """Everything that defines a training run; the defaults are stylegan2-ada-pytorch's (`train.py` and
    StyleGAN2Loss) except the small network widths. Lengths of `g_channels` / `d_channels`: one per resolution
    4, 8, ..., resolution."""

    SETTINGS_NAME = "training settings"

    resolution: int = 64
    g_channels: tuple[int, ...] = (128, 128, 128, 64, 32)
    d_channels: tuple[int, ...] = (128, 128, 128, 64, 32)
    z_dim: int = 128
    w_dim: int = 128
    mapping_layers: int = 2  # the ADA "auto" config's map=2
    conv_clamp: float | None = None
    mbstd_group_size: int = 4
    batch_size: int = 32
    g_lr: float = 0.0025
    d_lr: float = 0.0025
    betas: tuple[float, float] = (0.0, 0.99)
    eps: float = 1e-8
    r1_gamma: float | None = None  # None: ADA "auto", 0.0002 * resolution^2 / batch_size
    d_reg_interval: int = 16
    pl_weight: float = 2.0  # 0 turns the path-length regulariser (and the Greg phase) off
    g_reg_interval: int = 4
    pl_batch_shrink: int = 2
    pl_decay: float = 0.01
    style_mixing_prob: float = 0.9
    ema_kimg: float | None = None  # None: ADA "auto", batch_size * 10 / 32
    ema_rampup: float | None = 0.05
    dataset: str = "toyfaces"
    dataset_seed: int = 0
    seed: int = 0  # network init and every random draw of training

    def __post_init__(self):
        n = len(stylegan2.resolutions_up_to(self.resolution))
        if len(self.g_channels) != n or len(self.d_channels) != n:
            raise ValueError(f"g_channels and d_channels need {n} entries (resolutions 4..{self.resolution}), "
                             f"got {len(self.g_channels)} and {len(self.d_channels)}")
        if self.batch_size < 1 or self.batch_size % self.pl_batch_shrink:
            raise ValueError(f"batch_size must be a positive multiple of pl_batch_shrink ({self.pl_batch_shrink}), "
                             f"got {self.batch_size}")
        if self.dataset != "toyfaces":
            raise ValueError(f"unknown dataset {self.dataset!r}; jaxgan trains on 'toyfaces'")
        if self.resolution not in toyfaces.RESOLUTIONS:
            raise ValueError(f"toyfaces are drawn at {toyfaces.RESOLUTIONS} px, not {self.resolution}")
        if self.g_reg_interval < 1 or self.d_reg_interval < 1:
            raise ValueError("the regularisation intervals must be at least 1")

    @property
    def gamma(self) -> float:
        return 0.0002 * self.resolution ** 2 / self.batch_size if self.r1_gamma is None else self.r1_gamma

    @property
    def ema_nimg_max(self) -> float:
        return (self.batch_size * 10 / 32 if self.ema_kimg is None else self.ema_kimg) * 1000

    @property
    def generator(self) -> GeneratorConfig:
        return GeneratorConfig(z_dim=self.z_dim, c_dim=0, w_dim=self.w_dim, img_resolution=self.resolution,
                               img_channels=3, channels=tuple(self.g_channels), mapping_layers=self.mapping_layers,
                               conv_clamp=self.conv_clamp)

    @property
    def discriminator(self) -> DiscriminatorConfig:
        return DiscriminatorConfig(c_dim=0, img_resolution=self.resolution, img_channels=3,
                                   channels=tuple(self.d_channels), conv_clamp=self.conv_clamp,
                                   mbstd_group_size=self.mbstd_group_size)


def lazy_adam(lr: float, betas, eps: float, reg_interval: int | None) -> optax.GradientTransformation:
    """torch.optim.Adam with the official lazy-regularisation adjustment (lr * r, betas ** r, r = k / (k + 1))."""
    ratio = 1.0 if reg_interval is None else reg_interval / (reg_interval + 1)
    return optax.adam(lr * ratio, b1=betas[0] ** ratio, b2=betas[1] ** ratio, eps=eps)


def g_reg_interval(cfg: TrainConfig) -> int | None:
    return cfg.g_reg_interval if cfg.pl_weight > 0 else None


def d_reg_interval(cfg: TrainConfig) -> int | None:
    return cfg.d_reg_interval if cfg.gamma > 0 else None


def optimisers(cfg: TrainConfig):
    return (lazy_adam(cfg.g_lr, cfg.betas, cfg.eps, g_reg_interval(cfg)),
            lazy_adam(cfg.d_lr, cfg.betas, cfg.eps, d_reg_interval(cfg)))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class TrainState:
    """The whole training state: a pytree that jit, shard_map and the checkpoint reader take as it is."""

    G: SplitModel
    D: SplitModel
    G_ema: SplitModel
    g_opt: Any
    d_opt: Any
    pl_mean: jax.Array  # float32 []
    step: jax.Array     # int32 [], iterations done (the official batch_idx)


def init_state(cfg: TrainConfig) -> TrainState:
    """A fresh run: G, D with the official N(0, 1) init from `cfg.seed`, G_ema a copy of G, zeroed Adam moments."""
    g_key, d_key = jax.random.split(jax.random.key(cfg.seed))
    G = stylegan2.init_generator(cfg.generator, g_key)
    D = stylegan2.init_discriminator(cfg.discriminator, d_key)
    g_tx, d_tx = optimisers(cfg)
    G_ema = jax.tree_util.tree_map(jnp.array, G)  # a copy, not an alias
    return TrainState(G=G, D=D, G_ema=G_ema, g_opt=g_tx.init(G.params), d_opt=d_tx.init(D.params),
                      pl_mean=jnp.zeros((), jnp.float32), step=jnp.zeros((), jnp.int32))


def abstract_state(cfg: TrainConfig) -> TrainState:
    """Shapes and dtypes of `init_state(cfg)` (nothing computed), the restore target of a training checkpoint."""
    return jax.eval_shape(lambda: init_state(cfg))


def real_images_to_float(images_uint8):
    """uint8 NHWC -> float32 in [-1, 1], as the official loop (x / 127.5 - 1)."""
    return jnp.asarray(images_uint8, jnp.float32) / 127.5 - 1


# ----------------------------------------------------------------------------------------------------------------
# Per-device phase computations (inside shard_map; `axis` is the mesh axis to average over)


def _clean(grads):
    return jax.tree_util.tree_map(lambda g: jnp.nan_to_num(g, nan=0.0, posinf=1e5, neginf=-1e5), grads)


def _with_params(model: SplitModel, params) -> SplitModel:
    return SplitModel(model.graphdef, params, model.buffers)


def _with_w_avg(G: SplitModel, w_avg) -> SplitModel:
    buffers = jax.tree_util.tree_map(lambda x: x, G.buffers)  # a new State object; leaves are shared
    buffers["mapping"]["w_avg"][...] = w_avg
    return SplitModel(G.graphdef, G.params, buffers)


def _w_avg(G: SplitModel):
    return G.buffers["mapping"]["w_avg"][...]


def mapped_ws(G: SplitModel, cfg: TrainConfig, n: int, key, axis: str):
    """The mapping half of the official `run_G` on `n` fresh latents: (ws with style mixing, the updated w_avg)."""
    gcfg = G.config
    z_key, mix_z_key, mix_key, cut_key = jax.random.split(key, 4)
    module = G.module()
    w = module.mapping(jax.random.normal(z_key, (n, gcfg.z_dim)))[:, 0]  # [n, w_dim], the w_avg update's input
    ws = jnp.broadcast_to(w[:, None], (n, gcfg.num_ws, gcfg.w_dim))
    batch_mean = jax.lax.pmean(jax.lax.stop_gradient(w).mean(axis=0), axis)
    w_avg = stylegan2.torch_lerp(batch_mean, _w_avg(G), gcfg.w_avg_beta)
    if cfg.style_mixing_prob > 0:
        cutoff = jax.random.randint(cut_key, (), 1, gcfg.num_ws)
        cutoff = jnp.where(jax.random.uniform(mix_key, ()) < cfg.style_mixing_prob, cutoff, gcfg.num_ws)
        ws_mix = module.mapping(jax.random.normal(mix_z_key, (n, gcfg.z_dim)))
        ws = jnp.where((jnp.arange(gcfg.num_ws) >= cutoff)[None, :, None], ws_mix, ws)
    return ws, w_avg


def run_generator(G: SplitModel, cfg: TrainConfig, n: int, key, axis: str):
    """The official `run_G`: (images from random noise, ws, the updated w_avg)."""
    map_key, noise_key = jax.random.split(key)
    ws, w_avg = mapped_ws(G, cfg, n, map_key, axis)
    return stylegan2.synthesis(G, ws, noise_mode="random", noise_key=noise_key), ws, w_avg


def _adam(tx, params, opt_state, grads):
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def g_main(state: TrainState, key, cfg: TrainConfig, n: int, axis: str):
    g_tx, _ = optimisers(cfg)

    def loss_fn(params):
        img, _, w_avg = run_generator(_with_params(state.G, params), cfg, n, key, axis)
        logits = stylegan2.discriminate(state.D, img)
        return jnp.mean(jax.nn.softplus(-logits)), w_avg

    (loss, w_avg), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.G.params)
    grads = _clean(jax.lax.pmean(grads, axis))
    params, g_opt = _adam(g_tx, state.G.params, state.g_opt, grads)
    G = _with_w_avg(_with_params(state.G, params), w_avg)
    return dataclasses.replace(state, G=G, g_opt=g_opt), {"G_loss": jax.lax.pmean(loss, axis)}


def g_reg(state: TrainState, key, cfg: TrainConfig, n: int, axis: str):
    g_tx, _ = optimisers(cfg)
    pl_n = n // cfg.pl_batch_shrink
    map_key, noise_key, pl_key = jax.random.split(key, 3)

    def loss_fn(params):
        G = _with_params(state.G, params)
        ws, w_avg = mapped_ws(G, cfg, pl_n, map_key, axis)
        # The images and the gradient of <images, u> with respect to ws (the official autograd.grad with
        # create_graph=True): one vjp of the synthesis network at these ws, differentiated again below.
        img, synthesis_vjp = jax.vjp(
            lambda w: stylegan2.synthesis(G, w, noise_mode="random", noise_key=noise_key), ws)
        pl_noise = jax.random.normal(pl_key, img.shape) / np.sqrt(img.shape[1] * img.shape[2])
        (pl_grads,) = synthesis_vjp(pl_noise)
        lengths = jnp.sqrt(jnp.mean(jnp.sum(jnp.square(pl_grads), axis=2), axis=1))
        pl_mean = state.pl_mean + cfg.pl_decay * (jax.lax.pmean(jnp.mean(lengths), axis) - state.pl_mean)
        penalty = jnp.square(lengths - pl_mean)
        loss = jnp.mean(penalty * cfg.pl_weight) * cfg.g_reg_interval
        return loss, (w_avg, pl_mean, jnp.mean(penalty))

    (_, (w_avg, pl_mean, penalty)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.G.params)
    grads = _clean(jax.lax.pmean(grads, axis))
    params, g_opt = _adam(g_tx, state.G.params, state.g_opt, grads)
    G = _with_w_avg(_with_params(state.G, params), w_avg)
    new = dataclasses.replace(state, G=G, g_opt=g_opt, pl_mean=jax.lax.stop_gradient(pl_mean))
    return new, {"pl_penalty": jax.lax.pmean(penalty, axis), "pl_mean": new.pl_mean}


def d_main(state: TrainState, key, real, cfg: TrainConfig, n: int, axis: str):
    _, d_tx = optimisers(cfg)
    gen_img, _, w_avg = run_generator(state.G, cfg, n, key, axis)
    gen_img = jax.lax.stop_gradient(gen_img)

    def loss_fn(params):
        D = _with_params(state.D, params)
        gen_logits = stylegan2.discriminate(D, gen_img)
        real_logits = stylegan2.discriminate(D, real)
        loss_gen, loss_real = jnp.mean(jax.nn.softplus(gen_logits)), jnp.mean(jax.nn.softplus(-real_logits))
        return loss_gen + loss_real, (loss_gen, loss_real, jnp.mean(real_logits), jnp.mean(gen_logits))

    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.D.params)
    grads = _clean(jax.lax.pmean(grads, axis))
    params, d_opt = _adam(d_tx, state.D.params, state.d_opt, grads)
    new = dataclasses.replace(state, D=_with_params(state.D, params), d_opt=d_opt, G=_with_w_avg(state.G, w_avg))
    names = ("D_loss_fake", "D_loss_real", "D_real_logit", "D_fake_logit")
    metrics = {"D_loss": loss, **dict(zip(names, aux))}
    return new, jax.tree_util.tree_map(lambda v: jax.lax.pmean(v, axis), metrics)


def r1_penalty(D: SplitModel, real):
    """Per-image |dsum(D(x))/dx|^2 (summed over pixels and channels)."""
    grads = jax.grad(lambda x: jnp.sum(stylegan2.discriminate(D, x)))(real)
    return jnp.sum(jnp.square(grads), axis=(1, 2, 3))


def d_reg(state: TrainState, key, real, cfg: TrainConfig, n: int, axis: str):
    del key, n
    _, d_tx = optimisers(cfg)

    def loss_fn(params):
        penalty = r1_penalty(_with_params(state.D, params), real)
        return jnp.mean(penalty * (cfg.gamma / 2)) * cfg.d_reg_interval, jnp.mean(penalty)

    (_, penalty), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.D.params)
    grads = _clean(jax.lax.pmean(grads, axis))
    params, d_opt = _adam(d_tx, state.D.params, state.d_opt, grads)
    return dataclasses.replace(state, D=_with_params(state.D, params), d_opt=d_opt), {
        "r1_penalty": jax.lax.pmean(penalty, axis)}


def update_ema(state: TrainState, beta):
    """The end of an iteration: G_ema <- lerp(G, G_ema, beta) for the params, G's buffers copied, step + 1."""
    params = jax.tree_util.tree_map(lambda p, e: p + beta * (e - p), state.G.params, state.G_ema.params)
    G_ema = SplitModel(state.G_ema.graphdef, params, state.G.buffers)
    return dataclasses.replace(state, G_ema=G_ema, step=state.step + 1)


def ema_beta(cfg: TrainConfig, cur_nimg: int) -> float:
    ema_nimg = cfg.ema_nimg_max
    if cfg.ema_rampup is not None:
        ema_nimg = min(ema_nimg, cur_nimg * cfg.ema_rampup)
    return float(0.5 ** (cfg.batch_size / max(ema_nimg, 1e-8)))


# ----------------------------------------------------------------------------------------------------------------
# The data-parallel trainer


class Trainer:
    """Compiled phases for one config on one mesh. `train_step(state, real_uint8)` runs one official iteration
    (the phases due at `state.step`) and the EMA update; returns (state, metrics as Python floats)."""

    def __init__(self, cfg: TrainConfig, mesh=None):
        self.cfg = cfg
        self.mesh = parallel.data_mesh() if mesh is None else mesh
        devices = self.mesh.devices.size
        if cfg.batch_size % devices:
            raise ValueError(f"batch_size {cfg.batch_size} must be a multiple of the device count {devices}")
        self.per_device = cfg.batch_size // devices
        if self.per_device % cfg.pl_batch_shrink or (self.per_device // cfg.pl_batch_shrink) < 1:
            raise ValueError(f"each device's batch ({self.per_device}) must be a positive multiple of "
                             f"pl_batch_shrink ({cfg.pl_batch_shrink})")
        self.key = jax.random.key(cfg.seed)
        axis = parallel.DATA_AXIS
        n = self.per_device

        def device_key(key, phase):
            return jax.random.fold_in(jax.random.fold_in(key, PHASES.index(phase)), jax.lax.axis_index(axis))

        def g_phase(fn, phase):
            def per_device(state, key):
                return fn(state, device_key(key, phase), cfg, n, axis)
            return jax.jit(jax.shard_map(per_device, mesh=self.mesh, in_specs=(P(), P()), out_specs=(P(), P())))

        def d_phase(fn, phase):
            def per_device(state, key, real_uint8):
                return fn(state, device_key(key, phase), real_images_to_float(real_uint8), cfg, n, axis)
            return jax.jit(jax.shard_map(per_device, mesh=self.mesh, in_specs=(P(), P(), P(axis)),
                                         out_specs=(P(), P())))

        self.phases = {"Gmain": g_phase(g_main, "Gmain"), "Greg": g_phase(g_reg, "Greg"),
                       "Dmain": d_phase(d_main, "Dmain"), "Dreg": d_phase(d_reg, "Dreg")}
        self.ema = jax.jit(update_ema)
        self.real_sharding = jax.sharding.NamedSharding(self.mesh, P(axis))

    def place(self, state: TrainState) -> TrainState:
        return parallel.replicate(state, self.mesh)

    def due(self, step: int) -> tuple[str, ...]:
        """The phases the official loop runs at iteration `step` (batch_idx % interval == 0)."""
        g_int, d_int = g_reg_interval(self.cfg), d_reg_interval(self.cfg)
        return tuple(p for p, interval in zip(PHASES, (1, g_int, 1, d_int))
                     if interval is not None and step % interval == 0)

    def local_rows(self) -> slice:
        """The real images of each batch that this process feeds (all of them in a one-process run)."""
        rows = parallel.local_rows(self.cfg.batch_size, self.mesh)
        return slice(rows.start, rows.stop)

    def train_step(self, state: TrainState, real_uint8: np.ndarray):
        """One iteration on `real_uint8`: the whole batch, or in a run of several processes this process's
        `local_rows()` of it."""
        step = int(parallel.to_host(state.step))
        key = parallel.replicate(jax.random.fold_in(self.key, step), self.mesh)
        if parallel.multiprocess(self.mesh):
            real = jax.make_array_from_process_local_data(self.real_sharding, np.asarray(real_uint8))
        else:
            real = jax.device_put(np.asarray(real_uint8), self.real_sharding)
        metrics = {}
        for phase in self.due(step):
            args = (state, key, real) if phase.startswith("D") else (state, key)
            state, m = self.phases[phase](*args)
            metrics.update(m)
        state = self.ema(state, ema_beta(self.cfg, step * self.cfg.batch_size))
        return state, {k: float(v) for k, v in parallel.to_host(metrics).items()}
