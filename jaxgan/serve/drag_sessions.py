"""DragGAN sessions: `jaxgan.edit.drag`'s pure step, one session per client drag, many advanced together.

A session starts from a seed (mapped and truncated as the DragGAN renderer does, `drag.start_latent`) or a latent,
with the CLI's names and defaults (`drag.DragJob`; r1 / r2 / feature_idx / lr recommended by the checkpoint, as
`jaxgan drag`). Its compiled step is keyed by the static `drag.DragConfig` (the generator's shapes, the radii, the
feature block, the padded point count), so sessions with different points, targets, masks, learning rates, spaces
and step budgets share one program. Each run (the start, then every resume) keeps its own trace, so `undo` goes
back to the latent before the last run and its files are those of the run before.
"""

import dataclasses
import functools
import io

import numpy as np

from jaxgan.edit import drag, drag_outputs
from jaxgan.serve.sessions import DONE, FAILED, RUNNING, STOPPED, Session, SessionStateError

TRACE_FIELDS = ("points", "losses", "ws", "stop", "updated", "images")


def drag_settings(model, request: dict) -> tuple[drag.DragConfig, dict]:
    """The static config and the per-session settings of a drag request, with `jaxgan drag`'s defaults: the
    checkpoint's recommended r1 / r2 / feature_idx / lr, else the official values (`drag.default_tracking`)."""
    recommended = drag.recommended_settings(model.sidecar)
    tracking = {key: request.get(key) if request.get(key) is not None else recommended.get(key)
                for key in ("r1", "r2", "feature_idx")}
    cfg = drag.DragConfig.for_generator(model.G.config, max_points=model.max_points, **tracking)
    lr = request.get("lr")
    session = {"space": request.get("space") or drag.DragJob.space,
               "lr": lr if lr is not None else recommended.get("lr", drag.DragJob.lr),
               "lambda_mask": (request["lambda_mask"] if request.get("lambda_mask") is not None
                               else drag.DragJob.lambda_mask),
               "steps": request["max_steps"] if request.get("max_steps") is not None else drag.DragJob.steps}
    return cfg, session


@functools.cache  # one function object per config: pools share its compilations (pool.sharded_step)
def step_fn(cfg: drag.DragConfig):
    """One session's step for the pool: (G, DragState) -> (DragState, what the host keeps of the step)."""
    def step(G, state):
        state, out = drag.drag_step(G, state, cfg)
        return state, {"image": out.image, "points": out.points, "losses": out.losses, "loss": out.loss,
                       "ws": out.ws, "stop": out.stop, "updated": out.updated, "active": out.active}
    return step


@dataclasses.dataclass
class Run:
    """One start or resume: the state before it (for undo) and its trace."""

    before: drag.DragState
    targets: np.ndarray  # [n, 2]
    count: int           # real points
    trace: dict = dataclasses.field(default_factory=lambda: {k: [] for k in TRACE_FIELDS})
    reached: bool = False


class DragSession(Session):
    kind = "drag"

    def __init__(self, model, cfg: drag.DragConfig, job: drag.DragJob, state: drag.DragState, owner=None):
        super().__init__(model.name, owner)
        self.cfg = cfg
        self.job = job
        self.item = state
        self.runs: list[Run] = []
        self.start_run(job.points, job.targets, before=state)

    @property
    def pool_key(self):
        return ("drag", self.model, self.cfg)

    def shared(self, model):
        return model.G

    def step_program(self):
        return step_fn(self.cfg)

    # -- runs -----------------------------------------------------------------------------------------------------

    def start_run(self, points, targets, before) -> None:
        self.runs.append(Run(before=before, targets=np.asarray(targets, np.int32), count=len(points)))
        self.new_run()
        self.state, self.stop_reason, self.error = RUNNING, None, None

    def resume(self, *, points=None, targets=None, mask=None, lr=None, max_steps=None) -> None:
        """Continue from the current latent with new (or the current) handles, targets, mask, lr, step budget;
        the handles' reference features are retaken, as the GUI after a reset of points."""
        if self.state == RUNNING:
            raise SessionStateError("the session is running; stop it first")
        if self.state == FAILED:
            raise SessionStateError("the session failed; undo to the latent before its last run, or delete it")
        if points is not None and targets is None:
            raise ValueError("new points need their targets")
        state = self.item
        run = self.runs[-1] if self.runs else None
        if points is None:
            current = np.asarray(state.points)[:int(np.asarray(state.valid).sum())]
            points = [tuple(map(int, p)) for p in current]
            if targets is None:
                targets = [tuple(map(int, t)) for t in (run.targets if run else np.asarray(state.targets)[:len(points)])]
        new = drag.reset_points(self.cfg, state, points, targets, mask=mask,
                                max_steps=max_steps if max_steps is not None else int(np.asarray(state.max_steps)))
        if lr is not None:
            new = dataclasses.replace(new, lr=np.float32(lr))
        self.item = new
        self.start_run(points, targets, before=state)

    def undo(self) -> None:
        """Back to the latent (and Adam state, points, mask) before the last start or resume."""
        if self.state == RUNNING:
            raise SessionStateError("the session is running; stop it first")
        if not self.runs:
            raise SessionStateError("nothing to undo")
        self.item = self.runs.pop().before
        self.state, self.stop_reason, self.error = STOPPED, "undone", None

    # -- steps ----------------------------------------------------------------------------------------------------

    def after_step(self, out: dict) -> dict | None:
        """Book one step's output; returns the step event (None once finished and nothing was observed)."""
        run = self.runs[-1]
        for name in TRACE_FIELDS[:-1]:
            run.trace[name].append(out[name])
        run.trace["images"].append(out["image"])
        n = run.count
        points = np.asarray(out["points"])[:n]
        distances = np.sqrt(np.sum((run.targets - points).astype(np.float64) ** 2, axis=-1))
        losses = np.asarray(out["losses"])
        event = {"type": "step", "step": self.steps_done, "max_steps": self.max_steps,
                 "points": points.tolist(), "distances": [round(float(d), 4) for d in distances],
                 "losses": {"motion": [float(x) for x in losses[:n]], "mask": float(losses[-2]),
                            "total": float(out["loss"])},
                 "image": out["image"]}
        self.record(event)
        if not np.isfinite(out["loss"]):
            self.end(FAILED, "failed", f"the loss is not finite at step {self.steps_done} (try a smaller lr)")
        elif not out["updated"]:  # the closing observation: targets reached or budget spent
            run.reached = bool(out["stop"])
            self.end(DONE, "reached targets" if run.reached else "step limit")
        return event

    # -- what clients see -----------------------------------------------------------------------------------------

    @property
    def steps_done(self) -> int:
        run = self.runs[-1] if self.runs else None
        return int(np.sum(run.trace["updated"])) if run else 0

    @property
    def max_steps(self) -> int:
        return int(np.asarray(self.item.max_steps))

    def current_points(self) -> np.ndarray:
        run = self.runs[-1] if self.runs else None
        if run and run.trace["points"]:
            return np.asarray(run.trace["points"][-1])[:run.count]
        state = self.item
        return np.asarray(state.points)[:int(np.asarray(state.valid).sum())]

    def current_targets(self) -> np.ndarray:
        if self.runs:
            return self.runs[-1].targets
        return np.asarray(self.job.targets, np.int32)

    def status_fields(self) -> dict:
        points, targets = self.current_points(), self.current_targets()
        distances = np.sqrt(np.sum((targets - points).astype(np.float64) ** 2, axis=-1))
        return {"step": self.steps_done, "max_steps": self.max_steps, "points": points.tolist(),
                "targets": targets.tolist(), "distances": [round(float(d), 4) for d in distances],
                "runs": len(self.runs)}

    def latent(self) -> np.ndarray:
        """The current latent [num_ws, w_dim] float32 (the item must be up to date: `Pool.release`)."""
        s = self.item
        return np.asarray(drag.assemble_ws(self.cfg, np.asarray(s.w), np.asarray(s.w0), np.asarray(s.w_space)),
                          np.float32)

    def finished_frame(self) -> np.ndarray | None:
        """The last frame when it shows the current latent (the run ended on its closing observation)."""
        run = self.runs[-1] if self.runs else None
        if self.state == DONE and run and run.trace["images"]:
            return np.asarray(run.trace["images"][-1])
        return None

    def trace(self) -> dict | None:
        """The current run's trace, trimmed to its real points (as `jaxgan drag --trace`), or None before a step."""
        run = self.runs[-1] if self.runs else None
        if not run or not run.trace["points"]:
            return None
        # The web side may read while the engine appends the next step: take the rows every field has.
        count = min(len(run.trace[name]) for name in TRACE_FIELDS)
        stacked = {name: np.stack(run.trace[name][:count]) for name in TRACE_FIELDS}
        return drag.trim_trace(stacked, run.count, self.cfg.max_points)

    def trace_file(self) -> bytes:
        trace = self._trace_or_refuse()
        result = drag_outputs.DragResult(job=None, trace=trace, targets=self.current_targets(), final_ws=None,
                                         reached=self.runs[-1].reached, steps_done=self.steps_done, mask_used=False)
        buffer = io.BytesIO()
        np.savez(buffer, **drag_outputs.trace_arrays(result))
        return buffer.getvalue()

    def gif_file(self) -> bytes:
        trace = self._trace_or_refuse()
        buffer = io.BytesIO()
        drag_outputs.gif_writer(trace["images"], trace["points"], self.current_targets())(buffer)
        return buffer.getvalue()

    def _trace_or_refuse(self) -> dict:
        trace = self.trace()
        if trace is None:
            raise SessionStateError("the session has taken no step yet")
        return trace
