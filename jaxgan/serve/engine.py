"""The engine: one thread that runs every piece of JAX work of the server, in ticks.

Each loop of the thread (1) runs the commands the web side submitted (create, stop, resume, undo, delete, reads
that need an up-to-date state), each between two steps, so sessions join and leave at step boundaries; (2) runs
one tick: every running session advances one step, the sessions of each pool together (`pool.Pool`); (3) runs
the stateless batches that are due (`batcher.Batcher`); (4) expires idle sessions. With nothing to do it sleeps
on its command queue. The web side never touches JAX: it submits a function and awaits its future.
"""

import logging
import os
import queue
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable

import jax
import numpy as np

from jaxgan.hints import LPIPS_FILES_HINT
from jaxgan.serve import drag_sessions, editgan_sessions, invert_sessions, pti_sessions
from jaxgan.serve.batcher import Batcher
from jaxgan.serve.config import ServeConfig
from jaxgan.serve.models import ServedModel, generation_rows, generation_runner, lpips_runner
from jaxgan.serve.pool import Pool
from jaxgan.serve.sessions import FAILED, RUNNING, STOPPED, Session, SessionStateError

log = logging.getLogger("jaxgan.serve")
MAX_DEFAULT_SESSIONS = 1024


class UnknownModel(LookupError):
    """No served model has this name (HTTP 404)."""


class UnknownSession(LookupError):
    """No live session has this id (HTTP 404)."""


class AtCapacity(Exception):
    """Every session slot is taken (HTTP 429)."""


class NoLPIPS(ValueError):
    """The request needs the LPIPS network this server was started without (HTTP 400)."""


class NoSegmentation(ValueError):
    """The model is served without the segmentation branch EditGAN needs (HTTP 400)."""


class ShuttingDown(Exception):
    """The server is stopping and takes no new work (HTTP 503)."""


class Engine:
    def __init__(self, models: dict[str, ServedModel], cfg: ServeConfig, devices=None):
        self.models = models
        self.cfg = cfg
        self.devices = list(jax.local_devices() if devices is None else devices)
        self.sessions: dict[str, Session] = {}
        self.pools: dict[Any, Pool] = {}
        self.batcher = Batcher(cfg.max_batch, cfg.batch_wait_ms / 1000)
        self.capacity = cfg.max_sessions or 1
        self.memory_per_session: int | None = None
        self._commands: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="jaxgan-engine", daemon=True)
        self._stopping = threading.Event()
        self._accepting = True
        self._ending: Future = Future()
        self._ending.set_result(None)
        self.ticks = 0
        self.tick_seconds = 0.0
        self._w_stats: dict[tuple, tuple] = {}  # (model, samples) -> the projector's (w_avg, w_std)
        self._derived: dict[str, str] = {}  # derived model name -> id of the session that made it

    # -- start and stop -------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Size the capacity (unless given), compile with --warmup, and start the thread."""
        if self.cfg.max_sessions is None:
            self.capacity = self.default_capacity()
        if self.cfg.warmup:
            self.warmup()
        self._thread.start()

    def begin_shutdown(self) -> Future:
        """Take no new work, and end the running sessions at the next step boundary; returns at once, with the
        future of that step (done already when a shutdown had begun)."""
        if self._accepting:
            self._accepting = False
            self._ending = self.submit(self._shutdown, force=True)
        return self._ending

    def watchers(self) -> int:
        """Clients following a session's events now (read from another thread: 1 when the table changed under it,
        so a caller that waits for 0 asks again)."""
        try:
            return sum(session.watcher_count() for session in tuple(self.sessions.values()))
        except RuntimeError:
            return 1

    def stop(self, timeout: float = 30.0) -> None:
        """Stop accepting, end the running sessions at a step boundary (state `stopped`, their watchers get the
        end event), and join the thread."""
        self._accepting = False
        if self._thread.is_alive():
            done = self.submit(self._shutdown, force=True)  # a second time is harmless
            try:
                done.result(timeout)
            except Exception:  # noqa: BLE001 - stopping anyway
                log.exception("shutdown")
            self._stopping.set()
            self._commands.put(None)
            self._thread.join(timeout)

    def _shutdown(self) -> None:
        for session in self.sessions.values():
            if session.state == RUNNING:
                self._leave(session)
                session.finish(STOPPED, "server shutting down")
        self.batcher.cancel(ShuttingDown("the server is shutting down"))

    # -- capacity -------------------------------------------------------------------------------------------------

    def device_memory(self) -> int:
        """Bytes the sessions may use: the accelerators' memory limit, or the host's RAM on a CPU."""
        device = self.devices[0]
        stats = device.memory_stats() if hasattr(device, "memory_stats") else None
        if stats and stats.get("bytes_limit"):
            return int(stats["bytes_limit"]) * len(self.devices)
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")

    def default_capacity(self) -> int:
        """memory_fraction of the device memory over the largest per-session memory of the models' default drag
        step (XLA's `compiled.memory_analysis()` of the one-session program)."""
        per_session = 0
        for model in self.models.values():
            session = self._example_drag(model)
            pool = Pool(None, model.G, session.step_program(), 1, self.devices)
            per_session = max(per_session, pool.memory_per_session(session.item))
        self.memory_per_session = per_session
        budget = self.cfg.memory_fraction * self.device_memory()
        capacity = int(budget // max(per_session, 1))
        log.info("capacity: %d sessions (%.1f MB per session, %.1f GB for sessions)", capacity, per_session / 1e6,
                 budget / 1e9)
        return max(1, min(MAX_DEFAULT_SESSIONS, capacity))

    def _example_drag(self, model: ServedModel) -> drag_sessions.DragSession:
        h = model.G.config.img_resolution
        from jaxgan.edit.drag import DragJob
        return self._new_drag(model, {"seed": 0, "points": [[h // 2, h // 2]], "targets": [[h // 2, h // 2 + 1]],
                                      "max_steps": min(DragJob.steps, self.cfg.max_steps)}, mask=None)

    def warmup(self) -> None:
        """Compile and measure every bucket of each model's default drag program, and the generation program."""
        for model in self.models.values():
            start = time.perf_counter()
            session = self._example_drag(model)
            self._pool_of(session).warm(session.item)
            runner = generation_runner(model.G, self.devices)
            for bucket in self._pool_of(session).policy.buckets:
                rows = generation_rows(model.G, seeds=list(range(bucket)), trunc=0.7)
                jax.block_until_ready(runner(rows))
            log.info("warmed up %s in %.1f s: %s", model.name, time.perf_counter() - start,
                     self._pool_of(session).policy.report())

    # -- commands -------------------------------------------------------------------------------------------------

    def submit(self, fn: Callable, *args, force: bool = False) -> Future:
        """Run fn(*args) on the engine thread between two steps; returns its future."""
        future: Future = Future()
        if not self._accepting and not force:
            future.set_exception(ShuttingDown("the server is shutting down"))
            return future
        self._commands.put((future, fn, args))
        return future

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self._serve_forever()
            except Exception:  # noqa: BLE001 - a bug must not silently kill the engine: log, fail, go on
                log.exception("engine error")
                for session in self.sessions.values():
                    if session.state == RUNNING:
                        session.finish(FAILED, "failed", "internal engine error (see the server log)")
                self.pools = {}

    def _serve_forever(self) -> None:
        last_sweep = time.monotonic()
        while not self._stopping.is_set():
            running = [s for s in self.sessions.values() if s.state == RUNNING]
            due = self.batcher.next_due()
            timeout = 0.0 if running else min(1.0, due if due is not None else 1.0)
            self._run_commands(timeout)
            if self._stopping.is_set():
                break
            self._tick()
            self.batcher.flush()
            now = time.monotonic()
            if now - last_sweep >= 0.5:
                self._expire(now)
                last_sweep = now

    def _run_commands(self, timeout: float) -> None:
        try:
            command = self._commands.get(timeout=timeout) if timeout > 0 else self._commands.get_nowait()
        except queue.Empty:
            return
        while command is not None:
            future, fn, args = command
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as error:  # noqa: BLE001 - the caller gets it
                    future.set_exception(error)
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return

    def _tick(self) -> None:
        groups: dict[Any, list] = {}
        for session in self.sessions.values():
            if session.state == RUNNING:
                groups.setdefault(session.pool_key, []).append(session)
        for key, pool in self.pools.items():
            if key not in groups:
                pool.tick([])  # idle pool: its members' items are written back
        if not groups:
            return
        start = time.perf_counter()
        for key, members in groups.items():
            pool = self._pool_of(members[0])
            for session, out, error in pool.tick(members):
                if error is not None:
                    log.warning("session %s: step failed: %s", session.id, error)
                    pool.release(session)
                    session.finish(FAILED, "failed", f"the step failed: {str(error).splitlines()[0][:300]}")
                    continue
                event = session.after_step(out)
                if session.phase_change():
                    pool.release(session)
                    session.begin_next_phase(self.models[session.model])
                if session.state != RUNNING:
                    pool.release(session)
                    self._ended(session)
                if event is not None:
                    event["last"] = session.state != RUNNING
                    session.publish(event)
                    if session.state != RUNNING:
                        session.publish({"type": "end", **session.status()})
        self.ticks += 1
        self.tick_seconds += time.perf_counter() - start

    def _pool_of(self, session: Session) -> Pool:
        key = session.pool_key
        if key not in self.pools:
            model = self.models[session.model]
            self.pools[key] = Pool(key, session.shared(model), session.step_program(), self.cfg.max_batch,
                                   self.devices)
        return self.pools[key]

    def _ended(self, session: Session) -> None:
        """A session stopped running: its result, and the model it made (served from now on)."""
        model = self.models[session.model]
        session.on_end(model)
        derived = session.derived_model(model)
        if derived is not None and derived.name not in self.models:
            self.models[derived.name] = derived
            self._derived[derived.name] = session.id
            log.info("session %s: serving its tuned generator as %s", session.id, derived.name)

    def _drop_unused_models(self) -> None:
        """Forget derived models whose session is gone and that no live session uses (with their pools)."""
        for name, owner in list(self._derived.items()):
            if owner in self.sessions or any(s.model == name for s in self.sessions.values()):
                continue
            self._derived.pop(name)
            self.models.pop(name, None)
            self.pools = {key: pool for key, pool in self.pools.items() if key[1] != name}
            self._w_stats = {key: v for key, v in self._w_stats.items() if key[0] != name}
            log.info("model %s: no longer served (its session and every session using it are gone)", name)

    def _leave(self, session: Session) -> None:
        """Bring a session's item up to date before it stops or is read (it may sit in a stacked batch)."""
        pool = self.pools.get(session.pool_key)
        if pool is not None:
            pool.release(session)

    def _expire(self, now: float) -> None:
        for sid, session in list(self.sessions.items()):
            if session.idle_for(now) > self.cfg.session_ttl:
                log.info("session %s expired", sid)
                self._remove(session, "expired")
        self._drop_unused_models()

    def _remove(self, session: Session, reason: str) -> None:
        self._leave(session)
        self.sessions.pop(session.id, None)
        if session.state == RUNNING:
            session.state = STOPPED
        session.publish({"type": "end", **session.status(), "stop_reason": reason, "deleted": True})
        self._drop_unused_models()

    # -- session operations (each runs on the engine thread through `call`) ---------------------------------------

    def model(self, name: str) -> ServedModel:
        model = self.models.get(name)  # one read: the web side may call this while a PTI session changes the table
        if model is None:
            raise UnknownModel(f"unknown model {name!r}; this server has "
                               f"{sorted(m.name for m in self.listed_models())}")
        return model

    def session(self, sid: str, kind: str | None = None) -> Session:
        session = self.sessions.get(sid)
        if session is None or (kind is not None and session.kind != kind):
            raise UnknownSession(f"no {kind or ''} session {sid!r} (deleted, expired, or never created)".replace(
                "no  ", "no "))
        session.touch()
        return session

    def _admit(self) -> None:
        if len(self.sessions) >= self.capacity:
            raise AtCapacity(f"all {self.capacity} session slots are taken; delete a session or retry later")

    def _new_drag(self, model: ServedModel, request: dict, mask) -> drag_sessions.DragSession:
        from jaxgan.edit import drag
        cfg, settings = drag_sessions.drag_settings(model, request)
        if settings["steps"] > self.cfg.max_steps:
            raise ValueError(f"max_steps {settings['steps']} is over this server's cap of {self.cfg.max_steps}")
        w0 = None if request.get("ws") is None else request["ws"]
        job = drag.DragJob(points=tuple(map(tuple, request["points"])), targets=tuple(map(tuple, request["targets"])),
                           seed=request.get("seed"), trunc=request.get("trunc") if request.get("trunc") is not None
                           else drag.DragJob.trunc, w0=w0, mask=mask, space=settings["space"],
                           steps=settings["steps"], lr=settings["lr"], lambda_mask=settings["lambda_mask"])
        state = drag.session_of(model.G, cfg, job)
        return drag_sessions.DragSession(model, cfg, job, state)

    def create_drag(self, model_name: str, request: dict, mask) -> dict:
        model = self.model(model_name)
        self._admit()
        session = self._new_drag(model, request, mask)
        self.sessions[session.id] = session
        return session.status()

    def w_statistics(self, model: ServedModel, samples: int | None = None) -> tuple:
        """The projector's (w_avg, w_std) of a model, computed once per sample count."""
        from jaxgan.edit.invert import w_statistics
        key = (model.name, samples)
        if key not in self._w_stats:
            self._w_stats[key] = w_statistics(model.G) if samples is None else w_statistics(model.G, samples=samples)
        return self._w_stats[key]

    def create_invert(self, model_name: str, target: np.ndarray, space: str, steps: int | None, seed: int) -> dict:
        model = self.model(model_name)
        if model.lpips is None:
            raise NoLPIPS(model.hints()["invert"])
        self._admit()
        session = invert_sessions.InvertSession(model, target, space, steps, seed, self.w_statistics(model))
        if session.updates > self.cfg.max_steps:
            raise ValueError(f"{session.updates} steps are over this server's cap of {self.cfg.max_steps}")
        if session.state != RUNNING:
            session.on_end(model)
        self.sessions[session.id] = session
        return session.status()

    def create_pti(self, model_name: str, target: np.ndarray, cfg, seed: int) -> dict:
        """A PTI session (`pti_sessions`): cfg is the `PTIConfig` (pivot space and steps, tuning steps)."""
        model = self.model(model_name)
        if model.lpips is None or model.lpips_alex is None:
            raise NoLPIPS(model.hints()["pti"])
        for name, steps in (("pivot_steps", cfg.pivot_steps), ("tune_steps", cfg.tune_steps)):
            if steps > self.cfg.max_steps:
                raise ValueError(f"{name} {steps} is over this server's cap of {self.cfg.max_steps}")
        self._admit()
        # PTI's projector draws its own 600-sample statistics; its W+ pivot is the embedding's (10,000 samples)
        w_stats = self.w_statistics(model, cfg.pivot_w_avg_samples if cfg.pivot_space == "w" else None)
        session = pti_sessions.PTISession(model, target, cfg, seed, w_stats)
        if session.phase_change():  # no pivot steps: tuning starts from the initial latent
            session.begin_next_phase(model)
        if session.state != RUNNING:
            self._ended(session)
        self.sessions[session.id] = session
        return session.status()

    def _editgan_model(self, model_name: str, needs_lpips: bool) -> ServedModel:
        model = self.model(model_name)
        if model.seg is None:
            raise NoSegmentation(f"model {model_name!r}: {model.hints()['editgan']}")
        if needs_lpips and model.lpips is None:
            raise NoLPIPS(model.hints()["editgan"])
        return model

    def start_latent(self, model: ServedModel, start: dict) -> np.ndarray:
        """A request's start: {"seed", "trunc"} (mapped as the DragGAN renderer) or {"ws": [num_ws, w_dim]}."""
        if start.get("ws") is not None:
            return np.asarray(start["ws"], np.float32)
        from jaxgan.edit.drag import start_latent
        return start_latent(model.G, start["seed"], start["trunc"])

    def create_editgan(self, model_name: str, mode: str, start: dict, fields: dict) -> dict:
        """An EditGAN session: mode "edit" (fields: target, region, steps) or "apply" (fields: vector, class_ids,
        scale, steps)."""
        from jaxgan.edit.editgan import EditConfig
        model = self._editgan_model(model_name, needs_lpips=mode == "edit" or fields["steps"] > 1)
        self._admit()
        steps = fields["steps"]
        if steps > self.cfg.max_steps:
            raise ValueError(f"{steps} steps are over this server's cap of {self.cfg.max_steps}")
        cfg = EditConfig(steps=steps)
        ws = self.start_latent(model, start)
        shown = {k: v for k, v in start.items() if k != "ws"} or {"ws": "given"}
        if mode == "edit":
            session = editgan_sessions.EditGANSession.edit(model, ws, fields["target"], fields["region"], cfg, shown)
        else:
            session = editgan_sessions.EditGANSession.apply(model, ws, fields["vector"], fields["class_ids"],
                                                            fields["scale"], cfg, shown)
        if session.state != RUNNING:
            session.on_end(model)
        self.sessions[session.id] = session
        return session.status()

    def vector_of(self, sid: str) -> tuple:
        """(vector, class_ids) of a finished edit session of this server."""
        session = self.session(sid, "editgan")
        if session.result is None or session.mode != "edit":
            raise SessionStateError(f"session {sid!r} is not a finished edit")
        return session.result["vector"], session.class_ids

    def editgan_result(self, sid: str) -> tuple:
        session = self.session(sid, "editgan")
        if session.result is None:
            raise SessionStateError(f"the EditGAN session is {session.state}; its result exists once it is done")
        return session, session.result

    def segment(self, model_name: str, rows: dict, future: Future) -> None:
        model = self._editgan_model(model_name, needs_lpips=False)
        kind = "ws" if "ws" in rows else "seeds"
        generate = generation_runner(model.G, self.devices)

        def run(problems):
            from jaxgan.edit.editgan import render_with_uncertainty
            ws = problems["ws"] if kind == "ws" else np.asarray(generate(problems)["ws"])
            images, labels, uncertainty = render_with_uncertainty(model.G, model.seg, ws)
            return {"ws": ws, "images": images, "labels": labels, "uncertainty": uncertainty}
        self.batcher.add(("segment", model_name, kind), run, rows, future)

    def invert_result(self, sid: str) -> dict:
        session = self.session(sid, "invert")
        if session.result is None:
            raise SessionStateError(f"the inversion is {session.state}; its result exists once it is done")
        return session.result

    def status_of(self, sid: str, kind: str | None = None) -> dict:
        """A session's status, read on the engine thread (between steps, so it is consistent)."""
        return self.session(sid, kind).status()

    def stop_session(self, sid: str, kind: str | None = None) -> dict:
        session = self.session(sid, kind)
        if session.state == RUNNING:
            self._leave(session)
            session.finish(STOPPED, "stopped by client")
        return session.status()

    def resume_drag(self, sid: str, changes: dict) -> dict:
        session = self.session(sid, "drag")
        self._settle(session)
        session.resume(**changes)
        return session.status()

    def _settle(self, session: Session) -> None:
        """A session about to change: not running, its item up to date."""
        if session.state == RUNNING:
            raise SessionStateError("the session is running; stop it first")
        self._leave(session)

    def undo_drag(self, sid: str) -> dict:
        session = self.session(sid, "drag")
        self._settle(session)
        session.undo()
        return session.status()

    def delete_session(self, sid: str, kind: str | None = None) -> dict:
        session = self.session(sid, kind)
        self._remove(session, "deleted")
        return {"id": sid, "deleted": True}

    def drag_latent(self, sid: str) -> np.ndarray:
        session = self.session(sid, "drag")
        self._leave(session)
        return session.latent()

    def drag_mask(self, sid: str) -> np.ndarray:
        """The mask of the session's current run as its PNG's pixels (`drag_outputs.mask_pixels`); all 0 when the
        session has no mask (everything fixed is the official GUI's default, and ignored)."""
        from jaxgan.edit.drag_outputs import mask_pixels
        return mask_pixels(self.session(sid, "drag").item.mask)

    def drag_image(self, sid: str) -> np.ndarray:
        """The image of the session's current latent: its closing frame when it has one, else rendered now."""
        session = self.session(sid, "drag")
        frame = session.finished_frame()
        if frame is not None:
            return frame
        self._leave(session)
        model = self.models[session.model]
        rows = generation_rows(model.G, ws=session.latent()[None])
        return np.asarray(generation_runner(model.G, self.devices)(rows)["pixels"])[0]

    # -- stateless ------------------------------------------------------------------------------------------------

    def generate(self, model_name: str, rows: dict, future: Future) -> None:
        model = self.model(model_name)
        kind = "ws" if "ws" in rows else "seeds"
        self.batcher.add(("generate", model_name, kind), generation_runner(model.G, self.devices), rows, future)

    def lpips(self, model_name: str, pairs: dict, future: Future) -> None:
        """Queue same-size image pairs {"a", "b"} [N, H, W, 3] in [-1, 1] for the LPIPS batcher."""
        lpips = self.model(model_name).lpips
        if lpips is None:
            raise NoLPIPS(f"this server has no LPIPS network: restart it with --lpips. {LPIPS_FILES_HINT}")
        self.batcher.add(("lpips", pairs["a"].shape[1:]), lpips_runner(lpips), pairs, future)

    def resume_stepped(self, sid: str, kind: str) -> dict:
        """Resume a stopped inversion or EditGAN session where it stopped."""
        session = self.session(sid, kind)
        self._settle(session)
        if session.state != STOPPED:
            raise SessionStateError(f"the session is {session.state}; only a stopped one resumes")
        session.state, session.stop_reason = RUNNING, None
        return session.status()

    # -- reports --------------------------------------------------------------------------------------------------

    def listed_models(self) -> list[ServedModel]:
        """The models anyone may see: those the server was started with. A PTI session's tuned generator is served
        but not listed (its name reaches only the client that made it, through the session's status). Read from the
        web side while PTI sessions may change the table on the engine thread: a copy, retried if it changed."""
        while True:
            try:
                return [m for m in list(self.models.values()) if m.derived_from is None]
            except RuntimeError:
                continue

    def health(self) -> dict:
        # Read from the web side without waiting for the engine (it may be compiling): a copy of the table, retried
        # if the engine changed it meanwhile.
        while True:
            try:
                sessions = tuple(self.sessions.values())
                break
            except RuntimeError:
                continue
        return {"status": "ok" if self._accepting else "stopping", "backend": jax.default_backend(),
                "devices": len(self.devices), "models": sorted(m.name for m in self.listed_models()),
                "sessions": {"live": len(sessions), "capacity": self.capacity,
                             "running": sum(s.state == RUNNING for s in sessions)},
                "limits": {"max_steps": self.cfg.max_steps, "max_points": self.cfg.max_points,
                           "max_seeds": self.cfg.max_seeds, "max_body_bytes": self.cfg.max_body_bytes}}

    def stats(self) -> dict:
        return {"ticks": self.ticks, "tick_seconds": round(self.tick_seconds, 6),
                "pools": {repr(key[:2]): pool.policy.report() for key, pool in self.pools.items()},
                "memory_per_session": self.memory_per_session}
