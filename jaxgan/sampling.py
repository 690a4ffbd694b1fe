"""Batched image generation from seeds, z or ws, spread over all devices.

Written as the single-problem function (`one image from one z or ws`), `jax.vmap`-ed over a chunk of problems, then
sharded over the devices (of every process of the job) with `jaxgan.parallel`. Chunks have one fixed size (the last
one padded), so generation compiles once per shape. Any generator family (`jaxgan.models.generators`); a StyleGAN3
generator's input transform is set from the options' translate / rotate first, as StyleGAN3's gen_images.py does.
Seeds give z exactly as stylegan2-ada-pytorch's generate.py:
`np.random.RandomState(seed).randn(1, z_dim)` in float64, cast to float32 inside the mapping network
(`generate_images` in `generate.py` and `MappingNetwork.forward`, NVlabs/stylegan2-ada-pytorch@d72cc7d).
"""

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan import parallel
from jaxgan.latents import as_latents
from jaxgan.models import generators
from jaxgan.nn.split import SplitModel


@dataclasses.dataclass(frozen=True)
class GenerationOptions:
    truncation_psi: float = 1.0
    truncation_cutoff: int | None = None
    noise_mode: str = "const"
    fused_modconv: bool = False                  # StyleGAN2 only
    translate: tuple[float, float] = (0.0, 0.0)  # StyleGAN3 only: the input transform, as gen_images.py
    rotate: float = 0.0                          # degrees


def z_from_seeds(seeds, z_dim: int) -> np.ndarray:
    """[len(seeds), z_dim] float64, row i = np.random.RandomState(seeds[i]).randn(1, z_dim), as generate.py."""
    return np.concatenate([np.random.RandomState(seed).randn(1, z_dim) for seed in seeds], axis=0)


def one_hot_labels(class_idx: int | None, c_dim: int, count: int) -> np.ndarray:
    if c_dim == 0:
        if class_idx is not None:
            raise ValueError("--class given, but the network is unconditional")
        return np.zeros((count, 0), np.float32)
    if class_idx is None:
        raise ValueError(f"the network is conditional ({c_dim} classes): pass a class index")
    if not 0 <= class_idx < c_dim:
        raise ValueError(f"class index {class_idx} is out of range for {c_dim} classes")
    c = np.zeros((count, c_dim), np.float32)
    c[:, class_idx] = 1
    return c


@dataclasses.dataclass(frozen=True)
class GenerationJob:
    """What to generate: the inputs of `generate_images` (z with labels c, or ws), one id per image (its noise key
    and file name) and the images' file names (seedNNNN.png for seeds, imgNNNN.png for rows of z or ws)."""

    inputs: dict
    ids: list
    names: list

    def subset(self, indices) -> "GenerationJob":
        """The images `indices` of this job, each with its own id (so its own noise) and name."""
        indices = list(indices)
        return GenerationJob(inputs={k: np.asarray(v)[indices] for k, v in self.inputs.items()},
                             ids=[self.ids[i] for i in indices], names=[self.names[i] for i in indices])


def generation_job(gcfg, *, seeds=None, z=None, ws=None, class_idx: int | None = None) -> GenerationJob:
    """The generation job of exactly one of: seeds (z as generate.py draws them), a z array [N, z_dim], or latents
    in any shape `jaxgan.latents` accepts; class_idx labels z for conditional networks."""
    if sum(x is not None for x in (seeds, z, ws)) != 1:
        raise ValueError("give exactly one of seeds, z and ws")
    if ws is not None:
        if class_idx is not None:
            raise ValueError("a class index applies to seeds or z, not to ws")
        ws = as_latents(ws, gcfg.num_ws, gcfg.w_dim)
        ids = list(range(len(ws)))
        inputs = {"ws": ws}
    else:
        if seeds is not None:
            z = z_from_seeds(seeds, gcfg.z_dim)
        z = np.asarray(z)
        if z.ndim != 2 or z.shape[1] != gcfg.z_dim:
            raise ValueError(f"z must have shape (N, {gcfg.z_dim}), got {z.shape}")
        ids = list(seeds) if seeds is not None else list(range(len(z)))
        inputs = {"z": z, "c": one_hot_labels(class_idx, gcfg.c_dim, len(z))}
    if not ids:
        raise ValueError("nothing to generate: the input has no rows")
    names = [f"seed{s:04d}.png" for s in ids] if seeds is not None else [f"img{i:04d}.png" for i in ids]
    return GenerationJob(inputs=inputs, ids=ids, names=names)


def noise_keys(ids, noise_seed: int = 0):
    """One PRNG key per image: fold_in(key(noise_seed), id), so an image's noise depends on its id alone."""
    base = jax.random.key(noise_seed)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(np.asarray(ids, np.uint32))


def _image_of_one(G: SplitModel, problem: dict, options: GenerationOptions):
    """One problem -> one image [H, W, C]. `problem` holds 'key' and either 'ws' or ('z', 'c')."""
    if "ws" in problem:
        ws = problem["ws"][None]
    else:
        ws = generators.mapping(G, problem["z"][None], problem["c"][None], truncation_psi=options.truncation_psi,
                                truncation_cutoff=options.truncation_cutoff)
    noise_key = problem["key"] if options.noise_mode == "random" else None
    family_options = {"fused_modconv": True} if options.fused_modconv else {}  # StyleGAN2's only
    return generators.synthesis(G, ws, noise_mode=options.noise_mode, noise_key=noise_key, **family_options)[0]


@functools.cache  # one jitted function per (options, mesh), so repeated calls reuse its compilations
def make_generator_fn(options: GenerationOptions, mesh):
    """A compiled `fn(G, problems) -> images` for problem chunks whose size is a multiple of the device count."""
    def per_device(G, problems):
        return jax.vmap(lambda p: _image_of_one(G, p, options))(problems)
    return parallel.shard_problems(per_device, mesh)


def generate_images(G: SplitModel, *, z=None, c=None, ws=None, keys=None, options: GenerationOptions = GenerationOptions(),
                    batch_size: int = 8, mesh=None, on_progress: Callable[[int], None] | None = None,
                    on_images: Callable[[list, np.ndarray], None] | None = None) -> np.ndarray:
    """Generate float32 images [N, H, W, C] (unclipped) from z (with labels c) or from ws, chunk by chunk.

    keys: one PRNG key per problem, used for noise_mode='random' (default: `noise_keys(range(N))`).
    batch_size: problems per device per chunk. `on_progress(n)` is called after each chunk with the images done,
    `on_images(indices, images)` with each chunk's images (and their rows of the input).
    In a job of several processes the mesh spans them all and each process gets the images of its rows,
    `parallel.owned_problems(N, batch_size, mesh)`.
    """
    if (z is None) == (ws is None):
        raise ValueError("pass exactly one of z or ws")
    mesh = parallel.data_mesh() if mesh is None else mesh
    G = generators.with_user_transform(G, options.translate, options.rotate)
    problems = {"ws": jnp.asarray(ws, jnp.float32)} if ws is not None else {
        "z": jnp.asarray(z, jnp.float32), "c": jnp.asarray(c, jnp.float32)}
    count = next(iter(problems.values())).shape[0]
    problems["key"] = noise_keys(range(count)) if keys is None else keys
    return parallel.map_chunks(make_generator_fn(options, mesh), G, problems, batch_size=batch_size, mesh=mesh,
                               on_chunk=on_progress, on_outputs=on_images)


def to_uint8(images: np.ndarray) -> np.ndarray:
    """The official conversion: (img * 127.5 + 128).clamp(0, 255), truncated to uint8, in float32."""
    return np.clip(np.asarray(images, np.float32) * np.float32(127.5) + np.float32(128), 0, 255).astype(np.uint8)
