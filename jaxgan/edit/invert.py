"""GAN inversion: find the latent (and noise) whose image reproduces a photo. Two official recipes, each a pure
function of one image that is vmapped over many and sharded over devices.

* `projector`: stylegan2-ada-pytorch's `projector.py` (W space). w starts at the mean of 10,000 mapped seeded z
  (RandomState(123)); every synthesis noise buffer is optimised too, starting from N(0, 1) and renormalised to zero
  mean / unit variance after each step, under the multi-scale autocorrelation regulariser (weight 1e5); the
  learning rate ramps up linearly over the first 5% and down with a cosine over the last 25% (peak 0.1); w gets
  Gaussian noise of scale w_std * 0.05 * max(0, 1 - t / 0.75)^2 in the forward pass; the distance is LPIPS on the
  images area-downsampled to 256 px when larger. (The official script reads NVIDIA's `vgg16.pt`, a TorchScript
  export of the same LPIPS VGG16 network whose squared feature distance is the LPIPS distance; jaxgan uses its
  converted LPIPS v0.1 model.)
* `embed_w_plus`: EditGAN's embedding (`run_embedding_optimization` in `utils/model_utils.py`,
  nv-tlabs/editGAN_release@fef9ab8, called as `Tool.run_embedding` calls it): W+ from a start latent (EditGAN's
  encoder output E(target) when an encoder is given, as the tool does; w_avg otherwise), `steps - 1` Adam updates
  at lr get_lr(t, 0.1) (the same ramps), loss 10 LPIPS + 1 MSE on images in [0, 1], noise constant, plus with an
  encoder the official regulariser 1 * MSE(w, E(x).detach()). Its quirk is kept: E gets the generated image x in
  [0, 1] although it was trained on [-1, 1] images (and, as everywhere in EditGAN, batch statistics of that one
  image in its BatchNorm layers).

Each method reads photos as its official code does (`ProjectorConfig.image_fit`, `EmbedConfig.image_fit`, for
`jaxgan.images.target_of`): projector.py centre-crops to a square and resizes with Lanczos; EditGAN's
`load_one_image_for_embedding` (`utils/data_utils.py`) resizes the whole image to the generator's size with
Pillow's default bicubic filter, without cropping (a non-square photo is stretched).

Targets are float32 [H, W, C] in [-1, 1] at the generator resolution. Randomness (the projector's initial noise and
w jitter) comes from an explicit key per image.
"""

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgan import parallel
from jaxgan.loops import scan_steps
from jaxgan.models import encoder as encoder_model
from jaxgan.models import lpips as lpips_model
from jaxgan.models import generators
from jaxgan.nn.leaves import replace_selected, selected_leaves, selected_names
from jaxgan.nn.split import SplitModel

# ----------------------------------------------------------------------------------------------------------------
# Settings


@dataclasses.dataclass(frozen=True)
class ProjectorConfig:
    """stylegan2-ada-pytorch projector.py defaults."""

    steps: int = 1000
    initial_learning_rate: float = 0.1
    initial_noise_factor: float = 0.05
    lr_rampdown_length: float = 0.25
    lr_rampup_length: float = 0.05
    noise_ramp_length: float = 0.75
    regularize_noise_weight: float = 1e5
    distance_resolution: int = 256  # images larger than this are area-downsampled before LPIPS
    image_fit: str = "crop"  # how photos become targets: projector.py's centre crop + Lanczos


@dataclasses.dataclass(frozen=True)
class EmbedConfig:
    """EditGAN W+ embedding defaults (`EG/utils/model_utils.py`; the CLI's 500 steps, the tool uses 100)."""

    steps: int = 500
    peak_learning_rate: float = 0.1
    lr_rampdown_length: float = 0.25
    lr_rampup_length: float = 0.05
    lpips_weight: float = 10.0
    mse_weight: float = 1.0
    encoder_weight: float = 1.0       # MSE(w, E(x).detach()), when an encoder is given (Tool.run_embedding)
    encoder_batch_norm: str = encoder_model.OFFICIAL_BATCH_NORM  # batch statistics of each image
    image_fit: str = "stretch"  # load_one_image_for_embedding: the whole photo, bicubic, no crop


def ramped_learning_rate(t, peak: float, rampdown: float, rampup: float):
    """Linear ramp-up over the first `rampup` of the run, cosine ramp-down over the last `rampdown` (both recipes)."""
    ramp = jnp.minimum(1.0, (1.0 - t) / rampdown)
    ramp = 0.5 - 0.5 * jnp.cos(ramp * jnp.pi)
    return peak * ramp * jnp.minimum(1.0, t / rampup)


def w_statistics(G: SplitModel, samples: int = 10_000, seed: int = 123, chunk: int = 2_000):
    """(w_avg [w_dim], w_std scalar) of `samples` mapped z ~ RandomState(seed), as the projector computes them:
    w_std = sqrt(sum |w - w_avg|^2 / samples). Conditional generators use zero labels."""
    cfg = G.config
    z = np.random.RandomState(seed).randn(samples, cfg.z_dim)
    map_fn = jax.jit(lambda g, zz: generators.mapping(g, zz, jnp.zeros((zz.shape[0], cfg.c_dim)))[:, 0])
    ws = np.concatenate([np.asarray(map_fn(G, z[i:i + chunk].astype(np.float32)))
                         for i in range(0, samples, chunk)]).astype(np.float32)
    w_avg = ws.mean(axis=0)
    w_std = float(np.sqrt(np.sum((ws - w_avg) ** 2) / samples))
    return w_avg, w_std


# ----------------------------------------------------------------------------------------------------------------
# Image-side helpers


def area_downsample(images, size: int):
    """F.interpolate(mode='area') to size x size for an integer factor: the mean of each factor x factor block."""
    n, h, w, c = images.shape
    if h <= size:
        return images
    if h % size or w % size or h != w:
        raise ValueError(f"area downsampling needs a square image whose side is a multiple of {size}, got {h}x{w}")
    f = h // size
    return images.reshape(n, size, f, size, f, c).mean(axis=(2, 4))


def as_rgb(images):
    """LPIPS compares RGB: grayscale images are repeated over three channels."""
    return jnp.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images


def lpips_between(lpips: SplitModel, a, b):
    return lpips_model.lpips_distance(lpips, as_rgb(a), as_rgb(b))


# ----------------------------------------------------------------------------------------------------------------
# The synthesis noise buffers as optimisation variables


def _is_noise_buffer(parts) -> bool:
    return "noise_const" in parts


def noise_buffers(G: SplitModel) -> list:
    """The generator's constant noise maps, in a fixed order (one [H, W] array per synthesis layer)."""
    return selected_leaves(G.buffers, _is_noise_buffer)


def noise_buffer_names(G: SplitModel) -> list[str]:
    """Dotted names ('synthesis.b8.conv0.noise_const') of `noise_buffers(G)`, in the same order."""
    return selected_names(G.buffers, _is_noise_buffer)


def with_noise(G: SplitModel, noise: list) -> SplitModel:
    """G with its noise maps replaced (functionally): what `noise_mode='const'` synthesis then uses."""
    return dataclasses.replace(G, buffers=replace_selected(G.buffers, _is_noise_buffer, noise))


def noise_regularization(noise: list):
    """Sum over maps and scales (halving by 2x2 mean pooling down to 8x8) of the squared mean autocorrelation with
    a one-pixel roll along each axis (projector.py)."""
    total = 0.0
    for n in noise:
        while True:
            total += jnp.mean(n * jnp.roll(n, 1, axis=1)) ** 2 + jnp.mean(n * jnp.roll(n, 1, axis=0)) ** 2
            if n.shape[0] <= 8:
                break
            n = n.reshape(n.shape[0] // 2, 2, n.shape[1] // 2, 2).mean(axis=(1, 3))
    return total


def _normalized(n):
    n = n - jnp.mean(n)
    return n * jax.lax.rsqrt(jnp.mean(jnp.square(n)))


# ----------------------------------------------------------------------------------------------------------------
# One image's optimisation state and steps


@dataclasses.dataclass(frozen=True)
class InversionState:
    w: Any        # projector: [w_dim]; W+ embedding: [num_ws, w_dim]
    noise: Any    # list of noise maps (optimised by the projector, fixed for the embedding)
    adam: Any
    step: Any     # int32 steps taken
    key: Any      # raw PRNG key data of this image (uint32, `jax.random.key_data`), so states convert to numpy


jax.tree_util.register_dataclass(InversionState, data_fields=["w", "noise", "adam", "step", "key"], meta_fields=[])


def _adam():
    return optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-8)


def projector_init(G: SplitModel, w_avg, key, start=None) -> InversionState:
    """w at w_avg (or `start`, a [w_dim] latent), noise maps ~ N(0, 1) from `key`."""
    w = jnp.asarray(w_avg if start is None else start, jnp.float32)
    noise_key, run_key = jax.random.split(key)
    noise = [jax.random.normal(jax.random.fold_in(noise_key, i), buf.shape, jnp.float32)
             for i, buf in enumerate(noise_buffers(G))]
    return InversionState(w=w, noise=noise, adam=_adam().init((w, noise)), step=jnp.int32(0),
                          key=jax.random.key_data(run_key))


def projector_step(G: SplitModel, lpips: SplitModel, target, state: InversionState, cfg: ProjectorConfig,
                   w_std) -> tuple[InversionState, jax.Array]:
    """One projector step for one image: returns the new state and [dist, noise regulariser, loss]."""
    num_ws = G.config.num_ws
    t = state.step / cfg.steps
    lr = ramped_learning_rate(t, cfg.initial_learning_rate, cfg.lr_rampdown_length, cfg.lr_rampup_length)
    w_noise_scale = w_std * cfg.initial_noise_factor * jnp.maximum(0.0, 1.0 - t / cfg.noise_ramp_length) ** 2
    step_key = jax.random.fold_in(jax.random.wrap_key_data(state.key), state.step)
    w_noise = jax.random.normal(step_key, state.w.shape) * w_noise_scale
    target_small = area_downsample(target[None], cfg.distance_resolution)

    def loss_fn(params):
        w, noise = params
        ws = jnp.broadcast_to(w + w_noise, (1, num_ws, w.shape[-1]))
        image = generators.synthesis(with_noise(G, noise), ws, noise_mode="const")
        dist = lpips_between(lpips, area_downsample(image, cfg.distance_resolution), target_small)[0]
        reg = noise_regularization(noise)
        return dist + cfg.regularize_noise_weight * reg, (dist, reg)

    (loss, (dist, reg)), grads = jax.value_and_grad(loss_fn, has_aux=True)((state.w, state.noise))
    direction, adam = _adam().update(grads, state.adam)
    w, noise = jax.tree_util.tree_map(lambda p, d: p - lr * d, (state.w, state.noise), direction)
    noise = [_normalized(n) for n in noise]
    new_state = InversionState(w=w, noise=noise, adam=adam, step=state.step + 1, key=state.key)
    return new_state, jnp.stack([dist, reg, loss])


def embed_init(G: SplitModel, w_avg, key, start=None) -> InversionState:
    """W+ from `start` ([num_ws, w_dim] or [w_dim]) or w_avg broadcast; the stored noise maps, not optimised."""
    cfg = G.config
    w = jnp.asarray(w_avg if start is None else start, jnp.float32)
    w = jnp.broadcast_to(w, (cfg.num_ws, cfg.w_dim)) if w.ndim == 1 else w
    return InversionState(w=w, noise=noise_buffers(G), adam=_adam().init(w), step=jnp.int32(0),
                          key=jax.random.key_data(key))


def embed_step(G: SplitModel, lpips: SplitModel, target, state: InversionState, cfg: EmbedConfig,
               w_std=None, encoder: SplitModel | None = None) -> tuple[InversionState, jax.Array]:
    """One EditGAN embedding update for one image: returns the new state and [lpips, mse, loss], or with an
    `encoder` [lpips, mse, encoder, loss] (`loss_names('w+', True)`).

    EditGAN's loop runs `for _ in range(1, steps)`: update i uses t = i / steps, so step k here is update k + 1.
    """
    del w_std  # the embedding adds no latent noise
    t = (state.step + 1) / cfg.steps
    lr = ramped_learning_rate(t, cfg.peak_learning_rate, cfg.lr_rampdown_length, cfg.lr_rampup_length)
    target01 = (target[None] + 1) / 2

    def loss_fn(w):
        image01 = (generators.synthesis(G, w[None], noise_mode="const") + 1) / 2
        dist = lpips_model.lpips_distance(lpips, as_rgb(image01), as_rgb(target01), normalize=True)[0]
        mse = jnp.mean(jnp.square(image01 - target01))
        terms = (dist, mse)
        loss = cfg.lpips_weight * dist + cfg.mse_weight * mse
        if encoder is not None:
            # The official regression target E(x).detach(), x in [0, 1] (the quirk), one image's batch statistics.
            encoded = jax.lax.stop_gradient(encoder_model.encode(encoder, image01,
                                                                 batch_norm=cfg.encoder_batch_norm)[0])
            regression = jnp.mean(jnp.square(w - encoded))
            terms += (regression,)
            loss = loss + cfg.encoder_weight * regression
        return loss, terms

    (loss, terms), grad = jax.value_and_grad(loss_fn, has_aux=True)(state.w)
    direction, adam = _adam().update(grad, state.adam)
    new_state = dataclasses.replace(state, w=state.w - lr * direction, adam=adam, step=state.step + 1)
    return new_state, jnp.stack([*terms, loss])


METHODS = {
    "w": ("projector", projector_init, projector_step, ProjectorConfig,
          ("lpips", "noise_reg", "loss")),
    "w+": ("w+ embedding", embed_init, embed_step, EmbedConfig, ("lpips", "mse", "loss")),
}


def loss_names(space: str, with_encoder: bool = False) -> tuple[str, ...]:
    """The columns of a method's per-step losses; the W+ embedding with an encoder adds its 'encoder' term."""
    names = METHODS[space][4]
    return names[:-1] + ("encoder",) + names[-1:] if with_encoder and space == "w+" else names


def encoder_starts(encoder: SplitModel, targets, cfg: EmbedConfig):
    """The embedding's start latents [N, num_ws, w_dim]: E(target) of each target in [-1, 1], each image alone
    (`Tool.run_embedding` encodes one image at a time, batch statistics of that image)."""
    return encoder_model.encode_each(encoder, targets, batch_norm=cfg.encoder_batch_norm)


def check_encoder(G: SplitModel, encoder: SplitModel):
    """Refuse an encoder whose W+ does not fit the generator (num_ws x w_dim) or the generator's images (size)."""
    gcfg, ecfg = G.config, encoder.config
    if (ecfg.num_ws, ecfg.w_dim) != (gcfg.num_ws, gcfg.w_dim):
        raise ValueError(f"the encoder gives W+ of {ecfg.num_ws} x {ecfg.w_dim}, the generator takes "
                         f"{gcfg.num_ws} x {gcfg.w_dim}: it was trained for another generator")
    if ecfg.in_channels != gcfg.img_channels:
        raise ValueError(f"the encoder reads {ecfg.in_channels}-channel images, the generator makes "
                         f"{gcfg.img_channels}-channel ones")
    if gcfg.img_resolution > ecfg.max_size:
        raise ValueError(f"EditGAN's encoder takes images of at most {ecfg.max_size} px, the generator's "
                         f"are {gcfg.img_resolution} px")


def updates_for(space: str, steps: int) -> int:
    """Adam updates a run makes: the projector runs `steps`, EditGAN's loop `steps - 1`."""
    return steps if space == "w" else max(steps - 1, 0)


def final_ws(G: SplitModel, state: InversionState):
    """The result as [num_ws, w_dim] (the projector's w repeated, as projector.py returns it)."""
    cfg = G.config
    return jnp.broadcast_to(state.w, (cfg.num_ws, cfg.w_dim))


def reconstruct(G: SplitModel, state: InversionState):
    """The image of the result, [H, W, C] in [-1, 1], with the run's noise maps."""
    return generators.synthesis(with_noise(G, state.noise), final_ws(G, state)[None], noise_mode="const")[0]


# ----------------------------------------------------------------------------------------------------------------
# Many images: vmap, scan, shard


@functools.cache
def _batched_steps(space: str, cfg, mesh, steps_per_call: int):
    step_fn = METHODS[space][2]

    def per_image(G, lpips, w_std, encoder, target, state):
        extra = {} if encoder is None else {"encoder": encoder}
        return scan_steps(lambda carry: step_fn(G, lpips, target, carry, cfg, w_std, **extra), state,
                          steps_per_call)

    def per_device(shared, batched):
        G, lpips, w_std, encoder = shared
        targets, states = batched
        return jax.vmap(per_image, in_axes=(None, None, None, None, 0, 0))(G, lpips, w_std, encoder, targets, states)
    return parallel.shard_problems(per_device, mesh)


@functools.cache
def _batched_init(space: str):
    init_fn = METHODS[space][1]
    return jax.jit(jax.vmap(lambda G, w_avg, key, start: init_fn(G, w_avg, key, start), in_axes=(None, None, 0, 0)))


def finish(G: SplitModel, lpips: SplitModel, targets, states) -> tuple:
    """The results of finished states (a stack of N): numpy `ws` [N, num_ws, w_dim], `images` [N, H, W, C] (the
    reconstructions in [-1, 1]), and the LPIPS distance and MSE (on [0, 1] images) of the reconstruction clipped to
    [-1, 1] against each target."""
    return tuple(np.asarray(a) for a in _batched_finish()(G, lpips, jnp.asarray(targets), states))


@functools.cache
def _batched_finish():
    def finish(G, lpips, targets, states):
        images = jax.vmap(lambda s: reconstruct(G, s))(states)
        ws = jax.vmap(lambda s: final_ws(G, s))(states)
        shown = jnp.clip(images, -1, 1)  # the metrics describe the image a user sees (and the PNG holds)
        dist = lpips_between(lpips, shown, targets)
        mse = jnp.mean(jnp.square((shown - targets) / 2), axis=(1, 2, 3))  # on [0, 1] images
        return ws, images, dist, mse
    return jax.jit(finish)


def invert(G: SplitModel, lpips: SplitModel, targets, *, space: str = "w", cfg=None, key=None, keys=None,
           starts=None, encoder: SplitModel | None = None,
           w_stats=None, mesh=None, steps_per_call: int = 1, padded_size: int | None = None,
           on_progress: Callable[[int], None] | None = None) -> dict:
    """Invert N target images [N, H, W, C] (float32 in [-1, 1]) at once, batched and sharded over devices.

    space: 'w' (the stylegan2-ada projector) or 'w+' (EditGAN's embedding). cfg: ProjectorConfig / EmbedConfig.
    key: PRNG key; image i uses fold_in(key, i), so its result does not depend on what else is in the batch.
    keys: or one PRNG key per image, e.g. to repeat image i of a batch alone with fold_in(key, i).
    starts: optional start latents [N, w_dim] or [N, num_ws, w_dim] (w+). encoder (w+ only): EditGAN's encoder;
    the start latents default to its W+ of each target, and its regulariser joins the loss (`EmbedConfig`).
    w_stats: (w_avg, w_std), computed with `w_statistics` when not given. `on_progress(k)` is called after every
    k steps. padded_size: the rows this process feeds the mesh (default: N rounded up to the mesh size); in a job
    of several processes the targets are this process's rows of the batch, `parallel.local_rows(...).real`, and
    padded_size is `.size` of those rows, the same on every process.

    Returns numpy arrays: `ws` [N, num_ws, w_dim], `images` [N, H, W, C] (reconstructions in [-1, 1]),
    `losses` [N, steps, columns] (`loss_names`), `lpips`, `mse` (images in [0, 1]), `psnr` [N] of the
    reconstruction clipped to [-1, 1] against the target, and
    `noise` (list of [N, h, w] maps: the projector's optimised noise).
    """
    if space not in METHODS:
        raise ValueError(f"space must be 'w' or 'w+', got {space!r}")
    if encoder is not None and space != "w+":
        raise ValueError("an encoder goes with the W+ embedding (space 'w+') only")
    cfg = METHODS[space][3]() if cfg is None else cfg
    gcfg = G.config
    if encoder is not None:
        check_encoder(G, encoder)
    targets = np.asarray(targets, np.float32)
    expected = (gcfg.img_resolution, gcfg.img_resolution, gcfg.img_channels)
    if targets.ndim != 4 or targets.shape[1:] != expected:
        raise ValueError(f"targets must have shape [N, {', '.join(map(str, expected))}], got {targets.shape}")
    count = targets.shape[0]
    if keys is None:
        key = jax.random.key(0) if key is None else key
        keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(count, dtype=jnp.uint32))
    elif len(keys) != count:
        raise ValueError(f"{len(keys)} keys for {count} images")
    w_avg, w_std = w_statistics(G) if w_stats is None else w_stats
    if starts is None and encoder is not None and count:
        starts = np.asarray(jax.jit(encoder_starts, static_argnames="cfg")(encoder, targets, cfg))
    if starts is None:
        starts = np.broadcast_to(np.asarray(w_avg, np.float32),
                                 (count, gcfg.w_dim) if space == "w" else (count, gcfg.num_ws, gcfg.w_dim))
    starts = np.asarray(starts, np.float32)
    if starts.shape[0] != count:
        raise ValueError(f"{starts.shape[0]} start latents for {count} images")

    mesh = parallel.data_mesh() if mesh is None else mesh
    size = -(-count // mesh.devices.size) * mesh.devices.size if padded_size is None else padded_size
    # Padding rows repeat the last image's inputs (so its state); vmap keeps every row's numbers its own.
    targets_p, keys_p, starts_p = parallel.pad_rows((targets, keys, starts), size)
    states_p = _batched_init(space)(G, jnp.asarray(w_avg, jnp.float32), keys_p, starts_p)
    shared = parallel.replicate((G, lpips, jnp.float32(w_std), encoder), mesh)
    total = updates_for(space, cfg.steps)
    losses = []
    done = 0
    while done < total:
        k = min(steps_per_call, total - done)
        states_p, step_losses = _batched_steps(space, cfg, mesh, k)(shared, (targets_p, states_p))
        losses.append(parallel.to_host(step_losses)[:count])
        done += k
        if on_progress is not None:
            on_progress(k)
    states = jax.tree_util.tree_map(lambda leaf: leaf[:count], parallel.to_host(states_p))
    if count:
        ws, images, dist, mse = finish(G, lpips, targets, states)
    else:  # a process that holds only padding rows of this batch
        ws, images = np.zeros((0, gcfg.num_ws, gcfg.w_dim), np.float32), np.zeros((0,) + expected, np.float32)
        dist = mse = np.zeros((0,), np.float32)
    return {
        "ws": ws, "images": images, "lpips": dist, "mse": mse, "psnr": -10 * np.log10(np.maximum(mse, 1e-12)),
        "losses": (np.concatenate(losses, axis=1) if losses
                   else np.zeros((count, 0, len(loss_names(space, encoder is not None))), np.float32)),
        "loss_names": loss_names(space, encoder is not None), "noise": [np.asarray(n) for n in states.noise],
    }


def image_keys(seed: int, indices) -> Any:
    """One PRNG key per image: fold_in(key(seed), i) for image index i, so an image's random numbers depend on its
    position in the job alone, whatever batch it runs in."""
    base = jax.random.key(seed)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(np.asarray(indices, np.uint32))


def invert_images(G: SplitModel, lpips: SplitModel, targets, *, space: str = "w", cfg=None, seed: int = 0,
                  encoder: SplitModel | None = None, batch_size: int = 8, steps_per_call: int = 1, devices=None,
                  indices=None, on_progress: Callable[[int, str | None], None] | None = None,
                  on_batch: Callable[[dict], None] | None = None) -> dict:
    """Invert any number of target images ([H, W, C] float32 in [-1, 1] each), `batch_size` per device at a time
    over the local devices (or `devices`), batch after batch; returns the results of `invert` joined.

    Image i uses the key `image_keys(seed, [indices[i]])` (indices: default 0 ... N-1, the images' places in the
    whole job, so that a job resumed on its remaining images draws what it would have), whichever batch it runs
    in, so results do not depend on the batch size. `targets` may be any sequence: only the images this process
    inverts are read from it. `on_progress(updates, note)` is called as `invert`'s progress callback, with a note
    naming the batch when there are several; `on_batch(result)` with each batch's results (as the joined ones).

    In a job of several processes the batches span every process's devices and each process inverts, reads and
    returns only its rows of each batch; the result's `rows` lists their places in `targets` (all of them in a
    one-process job).
    """
    space_cfg = METHODS[space][3]() if cfg is None else cfg
    devices = list(jax.devices() if devices is None else devices)
    count = len(targets)
    if count == 0:
        raise ValueError("no images to invert")
    indices = list(range(count)) if indices is None else list(indices)
    if len(indices) != count:
        raise ValueError(f"{len(indices)} indices for {count} images")
    plan = batch_plan(count, batch_size, devices)
    w_stats = w_statistics(G)
    results = []
    for b, (mesh, rows, mine) in enumerate(plan):
        note = f"batch {b + 1}/{len(plan)}" if len(plan) > 1 else None
        progress = None if on_progress is None else (lambda k, note=note: on_progress(k, note))
        result = invert(G, lpips, stack_images([targets[i] for i in mine], G), space=space, cfg=space_cfg,
                        keys=image_keys(seed, [indices[i] for i in mine]), w_stats=w_stats, encoder=encoder,
                        mesh=mesh, steps_per_call=steps_per_call, padded_size=None if rows is None else rows.size,
                        on_progress=progress)
        result["rows"] = mine
        results.append(result)
        if on_batch is not None:
            on_batch(result)
    joined = {name: np.concatenate([r[name] for r in results])
              for name in ("ws", "images", "lpips", "mse", "psnr", "losses", "rows")}
    joined["noise"] = [np.concatenate(maps) for maps in zip(*(r["noise"] for r in results))]
    joined["loss_names"] = results[0]["loss_names"]
    return joined


def batch_plan(count: int, batch_size: int, devices=None) -> list[tuple]:
    """How `invert_images` runs `count` images: per batch of `batch_size` per device, (its mesh, this process's
    `parallel.LocalRows` of it or None in a one-process job, the images this process inverts in it)."""
    devices = list(jax.devices() if devices is None else devices)
    chunk = batch_size * len(devices)
    plan = []
    for start in range(0, count, chunk):
        batch = list(range(start, min(start + chunk, count)))
        mesh = parallel.mesh_for(len(batch), devices)
        rows = parallel.local_rows(len(batch), mesh) if parallel.multiprocess(mesh) else None
        plan.append((mesh, rows, batch if rows is None else [batch[i] for i in rows.real]))
    return plan


def stack_images(images: list, G: SplitModel) -> np.ndarray:
    """[N, H, W, C] float32 of a list of images, also when it is empty (a process with no image in a batch)."""
    if images:
        return np.stack(images).astype(np.float32, copy=False)
    cfg = G.config
    return np.zeros((0, cfg.img_resolution, cfg.img_resolution, cfg.img_channels), np.float32)
