"""PTI, pivotal tuning inversion (Roich et al., "Pivotal Tuning for Latent-based Editing of Real Images", 2022), as
pure functions of one photo that are vmapped over many and sharded over devices.

Follows danielroich/PTI@da94d59: `scripts/run_pti.run_PTI` -> `training/coaches/single_id_coach.SingleIDCoach.train`
with `training/coaches/base_coach.py`, `training/projectors/w_projector.py`, `criteria/localitly_regulizer.py`,
`criteria/l2_loss.py` and the settings of `configs/hyperparameters.py` as the code uses them:

1. The pivot. PTI's W projector is stylegan2-ada-pytorch's projector (`jaxgan.edit.invert`, space 'w') with other
   settings: w_avg / w_std from 600 mapped z (RandomState(123)), peak learning rate 0.01 and 450 steps. Its config
   names suggest more (`first_inv_lr` = 5e-3 is the Adam lr it is built with, but the ramp overwrites the lr every
   step, so it has no effect). The optimised noise maps are thrown away: tuning uses the generator's own
   `noise_const`. PTI returns `w_opt.repeat([1, 18, 1])`, 18 rows hard-coded for FFHQ 1024; here the pivot has the
   generator's num_ws rows (the same w in each). The pivot may instead be EditGAN's W+ embedding, or a given
   latent.
2. Tuning. Adam (lr 3e-4, betas 0.9 / 0.999, eps 1e-8) on every parameter of the generator, at the fixed pivot:
   image = G.synthesis(w_pivot, noise_mode='const'), loss = 1 MSE(image, target) + 1 LPIPS-AlexNet(image, target)
   on images in [-1, 1] (the image not clamped). Before each backward pass, a forward whose LPIPS is <= 0.06 ends
   the run (`if loss_lpips <= LPIPS_value_threshold: break`), at most 350 forwards. Only the synthesis network gets
   gradients (the pivot is fixed), so the mapping network never changes: only the synthesis parameters are
   carried and tuned here. Buffers (noise maps, filters, w_avg) are not parameters and stay as they were.
3. The locality regulariser (off by default, as in PTI): each step draws z ~ N(0, I) (PTI: the global numpy RNG;
   here the image's key), w = mapping(z) truncated towards w_avg by psi 0.5, moves it to distance alpha = 30 from
   the pivot along w - w_pivot (the norm over all num_ws x w_dim entries) and adds 0.1 MSE + 0.1 LPIPS-AlexNet
   between the tuned and the original generator's images of that latent (noise_mode 'none'), averaged over the
   samples.

Rows of the per-step losses are forwards: a run that stops early leaves NaN rows after its last forward.
"""

import dataclasses
import functools
from typing import Any, Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgan import distributed, parallel
from jaxgan.edit import invert
from jaxgan.loops import scan_steps
from jaxgan.models import lpips as lpips_model
from jaxgan.models import generators
from jaxgan.nn.leaves import replace_selected, selected_leaves, selected_names
from jaxgan.nn.split import SplitModel

PIVOT_SPACES = ("w", "w+")


@dataclasses.dataclass(frozen=True)
class PTIConfig:
    """PTI's settings (configs/hyperparameters.py, and the projector's own constants in w_projector.py)."""

    pivot_space: str = "w"              # first_inv_type 'w': the W projector; 'w+': EditGAN's W+ embedding
    pivot_steps: int = 450              # first_inv_steps
    pivot_learning_rate: float = 0.01   # w_projector.project's initial_learning_rate (first_inv_lr is overwritten)
    pivot_w_avg_samples: int = 600      # w_projector.project's w_avg_samples
    tune_steps: int = 350               # max_pti_steps: forwards at most
    learning_rate: float = 3e-4         # pti_learning_rate
    lpips_threshold: float = 0.06       # LPIPS_value_threshold: stop once the LPIPS of a forward is at or below it
    mse_weight: float = 1.0             # pt_l2_lambda
    lpips_weight: float = 1.0           # pt_lpips_lambda
    locality: bool = False              # use_locality_regularization
    locality_alpha: float = 30.0        # regulizer_alpha
    locality_psi: float = 0.5           # truncation of the regulariser's sampled w (localitly_regulizer.py)
    locality_samples: int = 1           # latent_ball_num_of_samples
    locality_mse_weight: float = 0.1    # regulizer_l2_lambda
    locality_lpips_weight: float = 0.1  # regulizer_lpips_lambda
    image_fit: str = "crop"             # PTI reads aligned crops at the generator size; others as the projector
    pivot_encoder_batch_norm: str = invert.EmbedConfig.encoder_batch_norm  # the W+ pivot's encoder, if one is given

    def __post_init__(self):
        if self.pivot_space not in PIVOT_SPACES:
            raise ValueError(f"pivot_space must be one of {PIVOT_SPACES}, got {self.pivot_space!r}")

    def tuning_only(self) -> "PTIConfig":
        """This config with the pivot settings at their defaults: the key of the compiled tuning programs, which do
        not depend on how the pivot was found (so runs that differ only there share one compilation)."""
        defaults = PTIConfig()
        return dataclasses.replace(self, pivot_space=defaults.pivot_space, pivot_steps=defaults.pivot_steps,
                                   pivot_learning_rate=defaults.pivot_learning_rate,
                                   pivot_w_avg_samples=defaults.pivot_w_avg_samples, image_fit=defaults.image_fit,
                                   pivot_encoder_batch_norm=defaults.pivot_encoder_batch_norm)

    def pivot_config(self):
        """The pivot method's config: PTI's projector settings, or the W+ embedding with `pivot_steps`."""
        if self.pivot_space == "w":
            return invert.ProjectorConfig(steps=self.pivot_steps, initial_learning_rate=self.pivot_learning_rate)
        return invert.EmbedConfig(steps=self.pivot_steps, encoder_batch_norm=self.pivot_encoder_batch_norm)


def loss_names(locality: bool) -> tuple[str, ...]:
    """The columns of the per-forward losses."""
    return ("mse", "lpips") + (("locality_mse", "locality_lpips", "locality") if locality else ()) + ("loss",)


# ----------------------------------------------------------------------------------------------------------------
# The synthesis parameters as the tuned variables


def _is_synthesis(parts) -> bool:
    return parts[0] == "synthesis"


def synthesis_params(G: SplitModel) -> list:
    """The generator's synthesis parameters, in a fixed order: what tuning changes."""
    return selected_leaves(G.params, _is_synthesis)


def synthesis_param_names(G: SplitModel) -> list[str]:
    """Dotted names ('synthesis.b4.const', the official state-dict names) of `synthesis_params(G)`."""
    return selected_names(G.params, _is_synthesis)


def with_synthesis_params(G: SplitModel, params: list) -> SplitModel:
    """G with its synthesis parameters replaced (functionally); mapping and buffers stay G's."""
    return dataclasses.replace(G, params=replace_selected(G.params, _is_synthesis, params))


def tuned_generator(G: SplitModel, result: dict, i: int) -> SplitModel:
    """Image i's tuned generator from a `tune` / `pti_images` result, as a model of its own (numpy leaves)."""
    return with_synthesis_params(G, [np.asarray(p[i]) for p in result["params"]])


def tuned_generators(G: SplitModel, result: dict, labels: list) -> Iterator[tuple[Any, SplitModel]]:
    """(label, tuned generator) for each image of a `pti_images` result, `labels` one per row of it (JSON-able).

    In a job of several processes the generators all come out on process 0, sent to it one image of each process
    at a time, and the other processes yield none: orbax writes numpy
    arrays from process 0 only and refuses a process's own jax.Array once the runtime spans several processes, so
    process 0 writes the job's checkpoints. Every process runs the loop to its end (each step is collective)."""
    if distributed.process_count() == 1:
        for i, label in enumerate(labels):
            yield label, tuned_generator(G, result, i)
        return
    like = [np.asarray(p) for p in synthesis_params(G)]
    if any(p.dtype != np.float32 for p in like):  # one float32 row per image carries them all, exactly
        raise ValueError("tuned generators are gathered as float32; this generator has other parameter dtypes")
    total, splits = sum(p.size for p in like), np.cumsum([p.size for p in like])[:-1]
    parts = distributed.allgather_objects(list(labels))
    for k in range(max(len(part) for part in parts)):
        own = (np.concatenate([np.asarray(p[k], np.float32).ravel() for p in result["params"]])[None]
               if k < len(labels) else np.zeros((0, total), np.float32))
        rows = distributed.allgather_rows(own)  # this slot's row of every process that holds one, in process order
        if distributed.is_primary():
            senders = [part for part in parts if k < len(part)]
            for part, row in zip(senders, rows):
                leaves = [leaf.reshape(p.shape) for leaf, p in zip(np.split(row, splits), like)]
                yield part[k], with_synthesis_params(G, leaves)


# ----------------------------------------------------------------------------------------------------------------
# One image's tuning state, loss and step


@dataclasses.dataclass(frozen=True)
class TuningState:
    params: Any    # list of synthesis parameters (`synthesis_params`)
    adam: Any
    step: Any      # int32 forwards made
    updates: Any   # int32 Adam steps made
    done: Any      # bool: a forward reached the LPIPS threshold (or, never, when tuning runs to the end)
    key: Any       # raw PRNG key data (uint32) of the regulariser's samples


jax.tree_util.register_dataclass(TuningState, data_fields=["params", "adam", "step", "updates", "done", "key"],
                                 meta_fields=[])


def _adam():
    return optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-8)  # torch.optim.Adam's defaults


def tune_init(G: SplitModel, key) -> TuningState:
    params = synthesis_params(G)
    return TuningState(params=params, adam=_adam().init(params), step=jnp.int32(0), updates=jnp.int32(0),
                       done=jnp.bool_(False), key=jax.random.key_data(key))


def morphed_latents(w_pivot, w_samples, alpha: float):
    """localitly_regulizer.get_morphed_w_code: each sample moved to distance alpha from the pivot along
    w - w_pivot, the norm taken over all its num_ws x w_dim entries. w_pivot [num_ws, w_dim], w_samples
    [S, num_ws, w_dim]."""
    direction = w_samples - w_pivot
    norm = jnp.sqrt(jnp.sum(jnp.square(direction), axis=(1, 2), keepdims=True))
    return w_pivot + alpha * direction / norm


def locality_terms(G0: SplitModel, G: SplitModel, lpips_alex: SplitModel, w_pivot, z, cfg: PTIConfig):
    """The regulariser's (mse, lpips, total) for the latent samples z [S, z_dim], and the morphed latents."""
    w_samples = generators.mapping(G0, z, jnp.zeros((z.shape[0], G0.config.c_dim)),
                                   truncation_psi=cfg.locality_psi)
    w_morphed = morphed_latents(w_pivot, w_samples, cfg.locality_alpha)
    new = generators.synthesis(G, w_morphed, noise_mode="none")
    old = jax.lax.stop_gradient(generators.synthesis(G0, w_morphed, noise_mode="none"))
    # Per sample: MSE over its pixels and its LPIPS; PTI sums the weighted terms over samples and divides by S.
    mse = jnp.mean(jnp.square(old - new), axis=(1, 2, 3))
    dist = lpips_model.lpips_distance(lpips_alex, old, new)
    mse, dist = jnp.mean(mse), jnp.mean(dist)
    return (mse, dist, cfg.locality_mse_weight * mse + cfg.locality_lpips_weight * dist), w_morphed


def tuning_loss(G0: SplitModel, params: list, lpips_alex: SplitModel, target, w_pivot, cfg: PTIConfig, z=None):
    """(loss, terms in `loss_names(cfg.locality)` order without 'loss') of one forward: G0 with synthesis
    `params` at `w_pivot` [num_ws, w_dim] against `target` [H, W, C] in [-1, 1]; z [S, z_dim] the regulariser's
    samples (with cfg.locality)."""
    G = with_synthesis_params(G0, params)
    image = generators.synthesis(G, w_pivot[None], noise_mode="const")
    mse = jnp.mean(jnp.square(image - target[None]))  # criteria/l2_loss.py: MSELoss(reduction='mean')
    dist = lpips_model.lpips_distance(lpips_alex, invert.as_rgb(image), invert.as_rgb(target[None]))[0]
    loss = cfg.mse_weight * mse + cfg.lpips_weight * dist
    terms = (mse, dist)
    if cfg.locality:
        reg_terms, _ = locality_terms(G0, G, lpips_alex, w_pivot, z, cfg)
        terms += reg_terms
        loss = loss + reg_terms[-1]
    return loss, terms


def locality_samples(G0: SplitModel, state: TuningState, cfg: PTIConfig):
    """The regulariser's z [S, z_dim] for the state's next forward, from its key and step alone."""
    key = jax.random.fold_in(jax.random.wrap_key_data(state.key), state.step)
    return jax.random.normal(key, (cfg.locality_samples, G0.config.z_dim), jnp.float32)


def tune_step(G0: SplitModel, lpips_alex: SplitModel, target, w_pivot, state: TuningState, cfg: PTIConfig,
              z=None) -> tuple[TuningState, jax.Array]:
    """One tuning forward for one image, then the Adam step unless this forward's LPIPS is at or below the
    threshold (or an earlier one was). Returns the new state and the row of losses (`loss_names`; NaN once done).
    z: the regulariser's samples for this forward (default: drawn from the state's key)."""
    if cfg.locality and z is None:
        z = locality_samples(G0, state, cfg)
    (loss, terms), grads = jax.value_and_grad(
        lambda p: tuning_loss(G0, p, lpips_alex, target, w_pivot, cfg, z), has_aux=True)(state.params)
    stop = state.done | (terms[1] <= cfg.lpips_threshold)  # single_id_coach.py: break before the backward pass
    direction, adam = _adam().update(grads, state.adam)
    stepped = [p - cfg.learning_rate * d for p, d in zip(state.params, direction)]
    keep = functools.partial(jax.tree_util.tree_map, lambda old, new: jnp.where(stop, old, new))
    row = jnp.stack([*terms, loss])
    new_state = TuningState(params=keep(state.params, stepped), adam=keep(state.adam, adam),
                            step=state.step + jnp.where(state.done, 0, 1),
                            updates=state.updates + jnp.where(stop, 0, 1), done=stop, key=state.key)
    return new_state, jnp.where(state.done, jnp.nan, row)


def render(G0: SplitModel, params: list, w_pivot):
    """The tuned generator's image of the pivot, [H, W, C] (noise_mode 'const')."""
    return generators.synthesis(with_synthesis_params(G0, params), w_pivot[None], noise_mode="const")[0]


# ----------------------------------------------------------------------------------------------------------------
# Many images: vmap over per-image parameter copies, scan, shard


@functools.cache
def _batched_tune_steps(cfg: PTIConfig, mesh, steps_per_call: int):
    def per_image(G0, lpips_alex, target, w_pivot, state):
        return scan_steps(lambda s: tune_step(G0, lpips_alex, target, w_pivot, s, cfg), state, steps_per_call)

    def per_device(shared, batched):
        G0, lpips_alex = shared
        targets, pivots, states = batched
        return jax.vmap(per_image, in_axes=(None, None, 0, 0, 0))(G0, lpips_alex, targets, pivots, states)
    return parallel.shard_problems(per_device, mesh)


@functools.cache
def _batched_tune_init():
    return jax.jit(jax.vmap(tune_init, in_axes=(None, 0)))


@functools.cache
def _per_image_metrics(per_image_params: bool):
    def metrics(G0, lpips, lpips_alex, params, pivots, targets):
        def one(row):  # one image at a time (`lax.map`): its numbers do not depend on the batch it is part of
            p, w, target = row
            image = render(G0, p if per_image_params else params, w)
            shown = jnp.clip(image, -1, 1)[None]  # as the PNG shows it (invert.finish's rule)
            target = target[None]
            return (image, invert.lpips_between(lpips, shown, target)[0],
                    invert.lpips_between(lpips_alex, shown, target)[0], jnp.mean(jnp.square((shown - target) / 2)))
        return jax.lax.map(one, (params if per_image_params else None, pivots, targets))
    return jax.jit(metrics)


METRICS = ("lpips", "lpips_alex", "mse", "psnr")


def reconstruction_metrics(G0: SplitModel, lpips: SplitModel, lpips_alex: SplitModel, params, pivots,
                           targets) -> dict:
    """`images` [N, H, W, C] of the generators with per-image synthesis `params` (leaves with a leading N axis; None:
    G0's own for every image) at the pivots [N, num_ws, w_dim], and (`METRICS`) their `lpips` (VGG, as the other
    inversion methods report it), `lpips_alex` (the tuning loss's), `mse` (on [0, 1] images) and `psnr` against the
    targets, one image after another, so that they are the same whatever batch an image is in."""
    per_image = params is not None
    params = params if per_image else synthesis_params(G0)
    images, dist, dist_alex, mse = (np.asarray(a) for a in _per_image_metrics(per_image)(
        G0, lpips, lpips_alex, params, jnp.asarray(pivots), jnp.asarray(targets)))
    return {"images": images, "lpips": dist, "lpips_alex": dist_alex, "mse": mse,
            "psnr": -10 * np.log10(np.maximum(mse, 1e-12))}


def tune(G: SplitModel, lpips_alex: SplitModel, targets, pivots, *, cfg: PTIConfig | None = None, keys=None,
         mesh=None, steps_per_call: int = 1, on_progress: Callable[[int], None] | None = None,
         padded_size: int | None = None) -> dict:
    """Tune one copy of G's synthesis network per target ([N, H, W, C] in [-1, 1]) at its pivot [N, num_ws, w_dim],
    all at once (vmapped, sharded over `mesh`), until each reaches the LPIPS threshold or `cfg.tune_steps` forwards.

    keys: one PRNG key per image (the regulariser's samples). Calls stop as soon as every image is done.
    padded_size: the rows fed to the mesh (default: N rounded up to its size); in a job of several processes the
    targets are this process's rows of a mesh over all of them, as in `invert.invert`, and calls stop when every
    process's images are done.
    Returns numpy `params` (list of [N, ...] synthesis parameters, `synthesis_param_names` order), `losses`
    [N, tune_steps, columns] (`loss_names`; NaN rows after an image's last forward), `updates` [N] (Adam steps
    made), `stopped_early` [N] (bool).
    """
    cfg = PTIConfig() if cfg is None else cfg
    targets = np.asarray(targets, np.float32)
    pivots = np.asarray(pivots, np.float32)
    count = targets.shape[0]
    gcfg = G.config
    if pivots.shape != (count, gcfg.num_ws, gcfg.w_dim):
        raise ValueError(f"pivots must have shape [{count}, {gcfg.num_ws}, {gcfg.w_dim}], got {pivots.shape}")
    keys = invert.image_keys(0, range(count)) if keys is None else keys
    states = _batched_tune_init()(G, keys)
    mesh = parallel.data_mesh() if mesh is None else mesh
    shared = parallel.replicate((G, lpips_alex), mesh)
    size = -(-count // mesh.devices.size) * mesh.devices.size if padded_size is None else padded_size
    targets_p, pivots_p, states_p = parallel.pad_rows(
        (targets, pivots, jax.tree_util.tree_map(np.asarray, states)), size)
    job = parallel.multiprocess(mesh)
    losses, done = [], 0
    while done < cfg.tune_steps:
        k = min(steps_per_call, cfg.tune_steps - done)
        states_p, rows = _batched_tune_steps(cfg.tuning_only(), mesh, k)(shared, (targets_p, pivots_p, states_p))
        losses.append(parallel.to_host(rows)[:count])
        done += k
        if on_progress is not None:
            on_progress(k)
        pending = not np.all(parallel.to_host(states_p.done)[:count])
        if not (distributed.any_true([pending])[0] if job else pending):
            break  # every image (of every process) reached the threshold: the remaining forwards would be skipped
    states = jax.tree_util.tree_map(lambda leaf: leaf[:count], parallel.to_host(states_p))
    rows = np.concatenate(losses, axis=1)
    rows = np.concatenate([rows, np.full((count, cfg.tune_steps - rows.shape[1], rows.shape[2]), np.nan,
                                         np.float32)], axis=1)
    return {"params": list(states.params), "losses": rows, "loss_names": loss_names(cfg.locality),
            "updates": states.updates, "stopped_early": states.done}


# ----------------------------------------------------------------------------------------------------------------
# Memory per image and the batch it allows


def tuning_memory_per_image(G: SplitModel, lpips_alex: SplitModel, cfg: PTIConfig | None = None, *,
                            temporaries: bool = True) -> dict:
    """Bytes one image's tuning needs: `state` (its synthesis parameters and their Adam moments), `temp` (XLA's
    memory analysis of the compiled one-image step; None with temporaries=False, which skips that compilation) and
    `total` = twice the state (the step's input and its new copy) plus the temporaries: about what each further
    image in a batch adds. G and lpips_alex may be abstract (`jax.eval_shape` of their init): nothing is computed."""
    cfg = PTIConfig() if cfg is None else cfg
    gcfg = G.config
    state = jax.eval_shape(lambda g: tune_init(g, jax.random.key(0)), G)
    state_bytes = int(sum(np.prod(leaf.shape) * leaf.dtype.itemsize for leaf in jax.tree_util.tree_leaves(state)))
    temp = None
    if temporaries:
        target = jax.ShapeDtypeStruct((gcfg.img_resolution, gcfg.img_resolution, gcfg.img_channels), jnp.float32)
        pivot = jax.ShapeDtypeStruct((gcfg.num_ws, gcfg.w_dim), jnp.float32)
        step = jax.jit(lambda g, a, s, t, w: tune_step(g, a, t, w, s, cfg))  # the networks as arguments
        analysis = step.lower(G, lpips_alex, state, target, pivot).compile().memory_analysis()
        temp = int(analysis.temp_size_in_bytes) if analysis is not None else None
    return {"state": state_bytes, "temp": temp, "total": 2 * state_bytes + (temp or 0)}


def device_memory_limit(device=None) -> int | None:
    """The allocator's byte limit of `device` (default: the first local one); None where the backend reports none
    (the CPU)."""
    device = jax.local_devices()[0] if device is None else device
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    return (stats or {}).get("bytes_limit") or None


def images_per_device(per_image_bytes: int, limit: int, fraction: float = 0.8) -> int:
    """How many images' tuning fit in `fraction` of a device's memory `limit` (at least one)."""
    return max(1, int(fraction * limit) // max(per_image_bytes, 1))


# ----------------------------------------------------------------------------------------------------------------
# The whole method on many photos


def pivot_of(G: SplitModel, latent) -> np.ndarray:
    """A given pivot as [num_ws, w_dim]: a W+ latent of the generator's num_ws rows, one w [w_dim], or a latent
    whose rows are all the same w (such as PTI's own 18-row pivots, written for 1024 px generators whatever the
    generator: its w is used on the generator's num_ws layers). A leading axis of 1 is dropped."""
    gcfg = G.config
    latent = np.asarray(latent, np.float32)
    if latent.ndim == 3 and latent.shape[0] == 1:
        latent = latent[0]
    if latent.ndim == 1 and latent.shape[0] == gcfg.w_dim:
        return np.broadcast_to(latent, (gcfg.num_ws, gcfg.w_dim)).copy()
    if latent.ndim != 2 or latent.shape[1] != gcfg.w_dim:
        raise ValueError(f"a pivot is a latent of shape [{gcfg.num_ws}, {gcfg.w_dim}] (or [{gcfg.w_dim}]), "
                         f"got {latent.shape}")
    if latent.shape[0] == gcfg.num_ws:
        return latent
    if np.all(latent == latent[:1]):
        return np.broadcast_to(latent[0], (gcfg.num_ws, gcfg.w_dim)).copy()
    raise ValueError(f"the pivot has {latent.shape[0]} different layers, the generator takes {gcfg.num_ws}")


def images_of_process(count: int, batch_size: int) -> list[int]:
    """The images (indices) that `pti_images` runs on this process: all of them in a one-process job."""
    return [i for _, _, batch in invert.batch_plan(count, batch_size) for i in batch]


def pti_images(G: SplitModel, lpips: SplitModel, lpips_alex: SplitModel, targets, *, cfg: PTIConfig | None = None,
               seed: int = 0, pivots=None, encoder: SplitModel | None = None, batch_size: int = 8,
               steps_per_call: int = 1, devices=None, on_progress: Callable[[int, str], None] | None = None) -> dict:
    """PTI on any number of targets ([H, W, C] float32 in [-1, 1] each): the pivot of each (PTI's projector, the W+
    embedding, started from EditGAN's `encoder` when one is given, or the given `pivots` [N, num_ws, w_dim]), then
    the tuning, `batch_size` images per device at a time. `lpips` is LPIPS-VGG (the pivot's distance, and the
    reported metrics), `lpips_alex` LPIPS-AlexNet (the tuning loss). Image i's random numbers come from
    `invert.image_keys(seed, [i])` whatever batch it is in.

    Returns numpy arrays: `ws` [N, num_ws, w_dim] (the pivots), `params` (per-image tuned synthesis parameters,
    lists of [N, ...]; `tuned_generator` makes a model of one), `images` [N, H, W, C] (tuned reconstructions),
    `before` / `after` ({images, lpips, lpips_alex, mse, psnr} of the pivot on G and on the tuned G), `pivot_losses`
    [N, steps, columns] and `pivot_loss_names` (None with given pivots), `losses`, `loss_names`, `updates`,
    `stopped_early`. `on_progress(k, phase)` is called after every k steps of 'pivot' or 'tuning'.

    In a job of several processes (`jaxgan.distributed`; `devices` not given) the batches are the job's, on a mesh
    of every process's devices (`invert.batch_plan`), and each process feeds and reads back only its rows of each
    batch: only those images are read from `targets`, and the result holds them (none, on a process that holds no
    image), their places in `targets` in `rows` (all of them in one process). A batch's tuning stops when all of
    its images are done, on every process at once, as in one process.
    """
    cfg = PTIConfig() if cfg is None else cfg
    job = devices is None and jax.process_count() > 1
    devices = list(jax.local_devices() if devices is None else devices)
    count = len(targets)
    if count == 0:
        raise ValueError("no images to invert")
    if pivots is not None and len(pivots) != count:
        raise ValueError(f"{len(pivots)} pivots for {count} images")
    if encoder is not None and (cfg.pivot_space != "w+" or pivots is not None):
        raise ValueError("an encoder goes with the W+ embedding pivot (pivot_space 'w+') only")
    pivot_cfg = cfg.pivot_config()
    w_stats = invert.w_statistics(G, samples=cfg.pivot_w_avg_samples) if cfg.pivot_space == "w" else None
    parts = []
    gcfg = G.config
    for mesh, rows, batch in invert.batch_plan(count, batch_size, None if job else devices):
        # In a job every process takes part in every batch's programs, with padding rows only where it holds none
        # of the batch's images.
        padded_size = None if rows is None else rows.size
        batch_targets = np.asarray([targets[i] for i in batch], np.float32).reshape(
            (len(batch), gcfg.img_resolution, gcfg.img_resolution, gcfg.img_channels))
        keys = invert.image_keys(seed, batch)
        part = {"rows": np.asarray(batch, np.int64)}
        if pivots is None:
            # The pivot and the tuning draw from two keys derived from the image's own.
            pivot_keys = jax.vmap(lambda k: jax.random.fold_in(k, 0))(keys)
            progress = None if on_progress is None else (lambda k: on_progress(k, "pivot"))
            found = invert.invert(G, lpips, batch_targets, space=cfg.pivot_space, cfg=pivot_cfg, keys=pivot_keys,
                                  w_stats=w_stats, encoder=encoder, mesh=mesh, steps_per_call=steps_per_call,
                                  on_progress=progress, padded_size=padded_size)
            part["ws"], part["pivot_losses"] = found["ws"], found["losses"]
        else:
            part["ws"] = np.asarray([pivots[i] for i in batch], np.float32).reshape(
                (len(batch), gcfg.num_ws, gcfg.w_dim))
        progress = None if on_progress is None else (lambda k: on_progress(k, "tuning"))
        tuned = tune(G, lpips_alex, batch_targets, part["ws"], cfg=cfg,
                     keys=jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys), mesh=mesh,
                     steps_per_call=steps_per_call, on_progress=progress, padded_size=padded_size)
        part.update(tuned)
        part["before"] = reconstruction_metrics(G, lpips, lpips_alex, None, part["ws"], batch_targets)
        part["after"] = reconstruction_metrics(G, lpips, lpips_alex, tuned["params"], part["ws"], batch_targets)
        parts.append(part)

    def joined(get):
        return np.concatenate([get(p) for p in parts])
    result = {name: joined(lambda p, n=name: p[n]) for name in ("ws", "losses", "updates", "stopped_early", "rows")}
    result["params"] = [np.concatenate(leaves) for leaves in zip(*(p["params"] for p in parts))]
    for phase in ("before", "after"):
        result[phase] = {k: joined(lambda p, k=k, ph=phase: p[ph][k]) for k in ("images", *METRICS)}
    result["images"] = result["after"]["images"]
    result["loss_names"] = parts[0]["loss_names"]
    result["pivot_losses"] = joined(lambda p: p["pivot_losses"]) if pivots is None else None
    result["pivot_loss_names"] = (invert.loss_names(cfg.pivot_space, encoder is not None) if pivots is None
                                  else None)
    return result
