"""Inversion sessions: a photo in, its latent out, by `jaxgan.edit.invert`'s pure steps (the stylegan2-ada projector
in W, EditGAN's W+ embedding), many sessions stepped together.

A session is one image of `jaxgan invert`: the photo is loaded as the command loads it for the session's method
(`images.target_of` with the method's `image_fit`), its random numbers come from `invert.image_keys(seed, [0])` (so a session
equals `jaxgan invert CKPT photo.png --seed SEED`), and the compiled step is keyed by (model, space, steps): the
learning-rate schedule depends on the step count.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.edit import invert
from jaxgan.serve.sessions import DONE, RUNNING, CountedSession


@functools.cache
def _init_fn(space: str):
    init = invert.METHODS[space][1]
    return jax.jit(init)


@functools.cache  # one function object per config: pools share its compilations (pool.sharded_step)
def step_fn(space: str, cfg):
    """One session's step for the pool: ((G, lpips, w_std), {target, state}) -> (item, losses [3])."""
    step = invert.METHODS[space][2]

    def run(shared, item):
        G, lpips, w_std = shared
        state, losses = step(G, lpips, item["target"], item["state"], cfg, w_std)
        return {"target": item["target"], "state": state}, losses
    return run


class InvertSession(CountedSession):
    kind = "invert"

    def __init__(self, model, target: np.ndarray, space: str, steps: int | None, seed: int, w_stats):
        super().__init__(model.name)
        if space not in invert.METHODS:
            raise ValueError(f"space must be 'w' or 'w+', got {space!r}")
        config_class = invert.METHODS[space][3]
        self.cfg = config_class() if steps is None else config_class(steps=steps)
        self.space, self.seed = space, seed
        self.method, self.loss_names = invert.METHODS[space][0], invert.METHODS[space][4]
        self.updates = invert.updates_for(space, self.cfg.steps)
        w_avg, w_std = w_stats
        key = invert.image_keys(seed, [0])[0]
        state = _init_fn(space)(model.G, jnp.asarray(w_avg, jnp.float32), key, None)
        self.item = {"target": np.asarray(target, np.float32), "state": jax.tree_util.tree_map(np.asarray, state)}
        self.w_std = np.float32(w_std)
        self.steps_done = 0
        self.losses: list[np.ndarray] = []
        self.result: dict | None = None
        self.new_run()
        self.state = RUNNING if self.updates > 0 else DONE

    @property
    def pool_key(self):
        return ("invert", self.model, self.space, self.cfg)

    def shared(self, model):
        return (model.G, model.lpips, jnp.float32(self.w_std))

    def step_program(self):
        return step_fn(self.space, self.cfg)

    def on_end(self, model) -> None:
        """The latent, reconstruction and metrics, computed once the session is done."""
        if self.state == DONE and self.result is None:
            states = jax.tree_util.tree_map(lambda a: np.asarray(a)[None], self.item["state"])
            ws, images, dist, mse = invert.finish(model.G, model.lpips, self.item["target"][None], states)
            self.result = {"ws": ws[0], "image": images[0], "lpips": float(dist[0]), "mse": float(mse[0]),
                           "psnr": float(-10 * np.log10(max(float(mse[0]), 1e-12)))}

    def status_fields(self) -> dict:
        fields = {"space": self.space, "method": self.method, "seed": self.seed, "step": self.steps_done,
                  "max_steps": self.updates, "losses": self.named_losses()}
        if self.result is not None:
            fields["metrics"] = {k: round(self.result[k], 6) for k in ("lpips", "mse", "psnr")}
        return fields
