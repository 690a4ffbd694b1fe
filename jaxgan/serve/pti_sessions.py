"""PTI sessions: a photo in, a tuned generator out (`jaxgan.edit.pti`'s pure steps), many sessions stepped together.

A session is one image of `jaxgan invert CKPT photo --method pti`: the photo is loaded as the command loads it,
the random numbers are the command's for its first image (`invert.image_keys(seed, [0])`, folded with 0 for the
pivot and 1 for the tuning, as `pti.pti_images`), so a session's pivot and tuned generator are the command's. It
runs in two phases, each a pool of its own (sessions in the same phase and settings are stepped in one compiled
program):

1. pivot: PTI's W projector (or the W+ embedding, `space` 'w+'), `PTIConfig.pivot_config()`'s steps;
2. tuning: one forward (and Adam step unless it reached the LPIPS threshold) of the generator's synthesis
   parameters per step, up to `tune_steps` forwards; the session is done at the first forward at or below the
   threshold, as PTI's loop breaks there.

When it is done, the engine registers the tuned generator as a served model of its own (`tuned_model` in the
status), which drag, generate and inversion requests name like any other, until the session is deleted or expires
and no session uses it any more. It is not listed in /api/models: its name is a random token that only the
session's status gives, so other users of the server neither see nor reach the photo's generator. A tuned
generator is a full copy of the synthesis parameters: drags on different tuned generators cannot share one batch
(each is its own pool).
"""

import dataclasses
import functools
import secrets

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.edit import invert, pti
from jaxgan.serve.invert_sessions import step_fn as pivot_step_fn
from jaxgan.serve.sessions import DONE, RUNNING, CountedSession

PIVOT, TUNING = "pivot", "tuning"


@functools.cache
def _pivot_init(space: str):
    return jax.jit(invert.METHODS[space][1])


@functools.cache
def _tune_init():
    return jax.jit(pti.tune_init)


@functools.cache  # one function object per config: pools share its compilations (pool.sharded_step)
def tune_step_fn(cfg: pti.PTIConfig):
    """One session's tuning step for the pool: ((G, lpips_alex), {target, pivot, state}) -> (item, losses)."""
    def run(shared, item):
        G, lpips_alex = shared
        state, row = pti.tune_step(G, lpips_alex, item["target"], item["pivot"], item["state"], cfg)
        return {"target": item["target"], "pivot": item["pivot"], "state": state}, row
    return run


class PTISession(CountedSession):
    """Listed with the inversions (kind 'invert', method 'pti'): the same status, events, stop / resume, latent and
    reconstruction routes."""

    kind = "invert"
    method = "pti"

    def __init__(self, model, target: np.ndarray, cfg: pti.PTIConfig, seed: int, w_stats):
        super().__init__(model.name)
        self.cfg, self.seed, self.space = cfg, seed, cfg.pivot_space
        self.pivot_cfg = cfg.pivot_config()
        self.tune_cfg = cfg.tuning_only()
        self.pivot_updates = invert.updates_for(self.space, self.pivot_cfg.steps)
        self.updates = self.pivot_updates + cfg.tune_steps
        key = invert.image_keys(seed, [0])[0]
        self._tune_key = jax.random.fold_in(key, 1)
        w_avg, w_std = w_stats
        state = _pivot_init(self.space)(model.G, jnp.asarray(w_avg, jnp.float32), jax.random.fold_in(key, 0), None)
        self.item = {"target": np.asarray(target, np.float32), "state": jax.tree_util.tree_map(np.asarray, state)}
        self.w_std = np.float32(w_std)
        self.phase = PIVOT
        self._phase_over = False
        self.steps_done = 0
        self.losses: list[np.ndarray] = []
        self.pivot: np.ndarray | None = None
        self.result: dict | None = None
        self.tuned_model: str | None = None
        self.new_run()
        self.state = RUNNING
        if self.pivot_updates == 0:
            self._phase_over = True

    @property
    def loss_names(self):
        return invert.METHODS[self.space][4] if self.phase == PIVOT else pti.loss_names(self.cfg.locality)

    @property
    def pool_key(self):
        if self.phase == PIVOT:
            return ("pti-pivot", self.model, self.space, self.pivot_cfg)
        return ("pti-tuning", self.model, self.tune_cfg)

    def shared(self, model):
        if self.phase == PIVOT:
            return (model.G, model.lpips, jnp.float32(self.w_std))
        return (model.G, model.lpips_alex)

    def step_program(self):
        return pivot_step_fn(self.space, self.pivot_cfg) if self.phase == PIVOT else tune_step_fn(self.tune_cfg)

    # -- steps and phases -----------------------------------------------------------------------------------------

    @property
    def loss_label(self) -> str:
        return f"{self.phase} loss"

    def step_fields(self) -> dict:
        return {"phase": self.phase}

    def finished(self, losses) -> bool:
        """Pivot steps never end the session (the last one ends the phase); a tuning step ends it by the tuning
        step's own rule (pti.tune_step, in float32: a forward at or below the threshold stops) or at `updates`
        (pivot + tuning steps)."""
        if self.phase == PIVOT:
            self._phase_over = self.steps_done >= self.pivot_updates
            return False
        return bool(losses[1] <= np.float32(self.cfg.lpips_threshold)) or super().finished(losses)

    def phase_change(self) -> bool:
        return self.state == RUNNING and self._phase_over

    def begin_next_phase(self, model) -> None:
        """The pivot is found (the item is up to date on the host): keep it, start the tuning state."""
        states = jax.tree_util.tree_map(lambda a: np.asarray(a)[None], self.item["state"])
        ws = invert.finish(model.G, model.lpips, self.item["target"][None], states)[0]
        self.pivot = ws[0]
        self.losses = []  # the tuning's columns from now on
        state = _tune_init()(model.G, self._tune_key)
        self.item = {"target": self.item["target"], "pivot": self.pivot,
                     "state": jax.tree_util.tree_map(np.asarray, state)}
        self.phase, self._phase_over = TUNING, False
        if self.cfg.tune_steps == 0:
            self.end(DONE, "finished")

    def on_end(self, model) -> None:
        """Once done: the tuned generator's parameters, its reconstruction and the metrics before / after."""
        if self.state == DONE and self.result is None:
            params = [np.asarray(p)[None] for p in self.item["state"].params]
            targets, pivots = self.item["target"][None], self.pivot[None]
            before = pti.reconstruction_metrics(model.G, model.lpips, model.lpips_alex, None, pivots, targets)
            after = pti.reconstruction_metrics(model.G, model.lpips, model.lpips_alex, params, pivots, targets)
            self.result = {"ws": self.pivot, "image": after["images"][0], "params": [p[0] for p in params],
                           "updates": int(self.item["state"].updates),
                           **{k: float(after[k][0]) for k in pti.METRICS},
                           "before": {k: float(before[k][0]) for k in pti.METRICS}}

    def derived_model(self, model):
        """The tuned generator as a served model `MODEL~pti-TOKEN` (a random token): the drag settings and LPIPS
        networks of the model it was tuned from, no segmentation branch (its features changed)."""
        if self.result is None or self.tuned_model is not None:
            return None
        # a name of its own, not the session's id: it is not listed, but whoever learns it may use the generator
        self.tuned_model = f"{model.name}~pti-{secrets.token_urlsafe(9)}"
        return dataclasses.replace(model, name=self.tuned_model, seg=None, derived_from=model.name,
                                   G=pti.with_synthesis_params(model.G, self.result["params"]),
                                   checkpoint=f"{model.checkpoint}, tuned by PTI session {self.id}")

    def status_fields(self) -> dict:
        fields = {"space": self.space, "method": self.method, "phase": self.phase, "seed": self.seed,
                  "step": self.steps_done, "max_steps": self.updates, "pivot_steps": self.pivot_updates,
                  "tune_steps": self.cfg.tune_steps, "losses": self.named_losses()}
        if self.result is not None:
            fields["metrics"] = {k: round(self.result[k], 6) for k in pti.METRICS}
            fields["metrics_before"] = {k: round(v, 6) for k, v in self.result["before"].items()}
            fields["tuning_updates"] = self.result["updates"]
        if self.tuned_model is not None:
            fields["tuned_model"] = self.tuned_model
        return fields
