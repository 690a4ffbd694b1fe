"""What every served session shares: its id and lifecycle, the events it sends to its watchers, its expiry.

A session is created by a request, holds one of the server's slots until it is deleted or expires (finished or
not, so its files stay downloadable), and moves between these states:

    running -> stopped (a client's stop) | done (finished) | failed (its step failed; the others go on)
    stopped | done -> running (resume)

The engine thread owns every change; the web side reads `status()` and subscribes to events. Events go to
asyncio queues through their loop's `call_soon_threadsafe`, so the engine never blocks on a slow client, and a
client that disconnects only drops its queue: the session goes on.
"""

import secrets
import threading
import time
from typing import Any

import numpy as np

RUNNING, STOPPED, DONE, FAILED = "running", "stopped", "done", "failed"
STATES = (RUNNING, STOPPED, DONE, FAILED)


class SessionStateError(Exception):
    """The request does not fit the session's state (HTTP 409)."""


def new_id() -> str:
    return secrets.token_urlsafe(12)


class Session:
    """Base of the session kinds. Subclasses set `kind` and implement `pool_key`, `status_fields`, and the
    kind's step bookkeeping (`after_step`)."""

    kind = "session"

    def __init__(self, model: str, owner: str | None = None):
        self.id = new_id()
        self.model = model
        self.owner = owner
        self.state = STOPPED
        self.error: str | None = None
        self.stop_reason: str | None = None
        self.item: Any = None  # the pytree the pool steps
        self.created = self.touched = time.monotonic()
        self.events: list[dict] = []  # the step events of the current run, replayed to watchers who join late
        self.run_number = 0
        self._watchers: list = []  # (loop, queue)
        self._lock = threading.Lock()

    # -- lifecycle ------------------------------------------------------------------------------------------------

    def touch(self) -> None:
        self.touched = time.monotonic()

    def idle_for(self, now: float) -> float:
        """Seconds since a client last touched it or it stopped running; a running session is never idle."""
        return 0.0 if self.state == RUNNING else now - self.touched

    def end(self, state: str, reason: str | None = None, error: str | None = None) -> None:
        """Leave the running state; the caller publishes the end event (after the last step's event). The idle
        clock restarts, so a client has the whole TTL to fetch what a long run made."""
        self.state, self.stop_reason, self.error = state, reason, error
        self.touch()

    def finish(self, state: str, reason: str | None = None, error: str | None = None) -> None:
        self.end(state, reason, error)
        self.publish({"type": "end", **self.status()})

    def on_end(self, model) -> None:
        """Called on the engine thread when the session stops running (e.g. to compute its result)."""

    def phase_change(self) -> bool:
        """True after a step that ended one phase of a session with several (PTI: pivot, then tuning); the engine
        then takes it out of its pool and calls `begin_next_phase`."""
        return False

    def begin_next_phase(self, model) -> None:
        """Turn the (host-side, up-to-date) item into the next phase's; `pool_key` then names the next pool."""

    def derived_model(self, model):
        """A model this finished session made (PTI: the tuned generator) for the engine to serve, or None."""
        return None

    # -- events ---------------------------------------------------------------------------------------------------

    def new_run(self) -> None:
        self.run_number += 1
        self.events = []

    def record(self, event: dict) -> dict:
        """Number a step event (`run`, `index` in the run) and keep it for late watchers."""
        event.update(run=self.run_number, index=len(self.events))
        self.events.append(event)
        return event

    def subscribe(self, loop, queue) -> list[dict]:
        """Watch from now on; returns the current run's step events so far (the watcher skips them in its queue
        by (run, index))."""
        with self._lock:
            self._watchers.append((loop, queue))
            return list(self.events)

    def unsubscribe(self, queue) -> None:
        with self._lock:
            self._watchers = [(lp, q) for lp, q in self._watchers if q is not queue]

    def watcher_count(self) -> int:
        with self._lock:
            return len(self._watchers)

    def publish(self, event: dict) -> None:
        with self._lock:
            watchers = list(self._watchers)
        for loop, queue in watchers:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, event)
            except RuntimeError:  # that client's loop has closed
                self.unsubscribe(queue)

    # -- what clients see -----------------------------------------------------------------------------------------

    def status(self) -> dict:
        return {"id": self.id, "kind": self.kind, "model": self.model, "state": self.state,
                "stop_reason": self.stop_reason, "error": self.error, **self.status_fields()}

    def status_fields(self) -> dict:
        return {}


class CountedSession(Session):
    """A session of a fixed number of optimisation steps, each returning its losses in `loss_names` order
    (inversion, EditGAN). Subclasses set `loss_names` and `updates` and start `steps_done` at 0."""

    loss_names: tuple = ()
    updates: int = 0

    loss_label: str = "loss"  # how the failure message names the loss

    def after_step(self, losses) -> dict:
        """Book one step's losses; the session ends done when `finished` says so (after `updates` steps), failed
        on a non-finite loss."""
        losses = np.asarray(losses)
        self.steps_done += 1
        self.losses.append(losses)
        event = self.record({"type": "step", "step": self.steps_done, "max_steps": self.updates,
                             "losses": self.named_losses(losses), **self.step_fields()})
        if not np.all(np.isfinite(losses)):
            self.end(FAILED, "failed", f"the {self.loss_label} is not finite at step {self.steps_done}")
        elif self.finished(losses):
            self.end(DONE, "finished")
        return event

    def step_fields(self) -> dict:
        """Fields of this kind's step events beyond the step, its losses and the step count."""
        return {}

    def finished(self, losses) -> bool:
        """Whether the step just booked (its `losses`) ends the session."""
        return self.steps_done >= self.updates

    def named_losses(self, losses=None) -> dict | None:
        """{name: value} of `losses` (default: the last step's), None before the first step."""
        if losses is None:
            if not self.losses:
                return None
            losses = self.losses[-1]
        return {name: float(v) for name, v in zip(self.loss_names, losses)}
