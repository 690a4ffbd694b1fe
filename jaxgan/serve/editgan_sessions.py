"""EditGAN sessions: a segmentation-guided edit (or an edit vector's refinement) as `jaxgan.edit.editgan`'s pure
step, many sessions stepped together.

An edit session is one `jaxgan editgan edit` problem: the start latent, the wanted segmentation and the edited
region (dilated as the official loss does), prepared by `editgan.prepare_edits`; an apply session is one latent of
`jaxgan editgan apply`: the vector applied at a scale, then (with steps > 1) refined as the official post-process,
prepared by `editgan.prepare_refinements`. The compiled step is keyed by (model, EditConfig, region capacity): the
padded region-pixel list has power-of-two lengths, so a few shapes compile. When a session is done its result is
rendered: the edited latent, its image and segmentation, and for edits the edit vector with its classes.
"""

import functools
import io

import jax
import numpy as np

from jaxgan.edit import editgan, editgan_outputs
from jaxgan.serve.sessions import DONE, RUNNING, CountedSession


@functools.cache  # one function object per config: pools share its compilations (pool.sharded_step)
def step_fn(cfg: editgan.EditConfig):
    """One session's step for the pool: ((G, S, lpips), {problem, state}) -> (item, losses [4])."""
    def run(shared, item):
        G, S, lpips = shared
        state, losses = editgan.edit_step(G, S, lpips, item["problem"], item["state"], cfg)
        return {"problem": item["problem"], "state": state}, losses
    return run


def _row(tree, i: int = 0):
    return jax.tree_util.tree_map(lambda a: np.asarray(a)[i], tree)


class EditGANSession(CountedSession):
    kind = "editgan"
    loss_names = editgan.LOSS_NAMES

    def __init__(self, model, *, mode: str, w_start: np.ndarray, cfg: editgan.EditConfig, problem, class_ids,
                 images_before, labels_before, region_pixels: int, start: dict):
        super().__init__(model.name)
        self.mode, self.cfg, self.class_ids, self.start = mode, cfg, list(class_ids), start
        self.w_input = np.asarray(w_start, np.float32)  # the latent the user gave (for edit vectors)
        self.images_before, self.labels_before = images_before, labels_before
        self.region_pixels = int(region_pixels)
        self.updates = cfg.updates if problem is not None else 0
        self.capacity = 0 if problem is None else int(np.asarray(problem.roi_y).shape[0])
        self.steps_done = 0
        self.losses: list[np.ndarray] = []
        self.result: dict | None = None
        self.item = None if problem is None else {
            "problem": problem, "state": jax.tree_util.tree_map(np.asarray, editgan.init_state(problem.w_start))}
        self._moved = np.asarray(w_start if problem is None else problem.w_start, np.float32)
        self.new_run()
        self.state = RUNNING if self.updates > 0 else DONE

    @classmethod
    def edit(cls, model, ws, target, region, cfg, start):
        prepared = editgan.prepare_edits(model.G, model.seg, ws[None], target[None], region[None], cfg)
        return cls(model, mode="edit", w_start=ws, cfg=cfg, problem=_row(prepared["problems"]),
                   class_ids=prepared["class_ids"][0], images_before=prepared["images_before"][0],
                   labels_before=prepared["labels_before"][0], region_pixels=prepared["region_pixels"][0],
                   start=start)

    @classmethod
    def apply(cls, model, ws, vector, class_ids, scale, cfg, start):
        prepared = editgan.prepare_refinements(model.G, model.seg, ws[None], vector, class_ids, scale, cfg)
        problem = None if prepared["problems"] is None else _row(prepared["problems"])
        session = cls(model, mode="apply", w_start=ws, cfg=cfg, problem=problem, class_ids=class_ids,
                      images_before=prepared["images_before"][0], labels_before=prepared["labels_before"][0],
                      region_pixels=prepared["region_pixels"][0], start={**start, "scale": scale})
        session._moved = prepared["moved"][0]
        return session

    @property
    def pool_key(self):
        return ("editgan", self.model, self.cfg, self.capacity)

    def shared(self, model):
        return (model.G, model.seg, model.lpips)

    def step_program(self):
        return step_fn(self.cfg)

    def on_end(self, model) -> None:
        """Render the result once done: the final latent, its image and segmentation (display path)."""
        if self.state != DONE or self.result is not None:
            return
        w = self._moved if self.item is None else np.asarray(self.item["state"].w, np.float32)
        images, labels = editgan.render(model.G, model.seg, w[None], tile=self.cfg.tile)
        self.result = {"ws": w, "image": images[0], "labels": labels[0], "vector": w - self.w_input}

    def status_fields(self) -> dict:
        return {"mode": self.mode, "step": self.steps_done, "max_steps": self.updates, "class_ids": self.class_ids,
                "region_pixels": self.region_pixels, "start": self.start, "losses": self.named_losses()}

    def vector_file(self) -> bytes:
        """The edit vector .npz (`jaxgan editgan edit`'s format): result - input, with the touched classes."""
        buffer = io.BytesIO()
        editgan_outputs.save_edit_vector(buffer, self.result["vector"], self.class_ids,
                                         {"source": "jaxgan serve", "model": self.model, "steps": self.cfg.steps})
        return buffer.getvalue()
