"""Benchmark `jaxgan serve`: N concurrent DragGAN clients against one server, next to the raw batched step.

For each config (`demo`: the bundled 32 px model; an integer R such as `256`: a random-weight StyleGAN2 of R px
with ADA-like widths, channel_base 16384 below 512 px (32768 from 512), channel_max 512, 8 mapping layers,
conv_clamp 256, as scripts/bench_generator.py builds it, saved with `jaxgan.checkpoint.save_checkpoint` into a
temporary directory), this script

1. starts `python -m jaxgan serve CKPT --warmup --max-batch B --max-sessions B` as a subprocess on loopback
   (B = the largest N rounded up to a power of two; --warmup compiles and times every bucket before the server
   answers, so no compile time falls inside the timed phases);
2. for each N (`--clients`, default 1,4,16 and also 64 when JAX's backend is a GPU) runs one phase: N asyncio
   clients each POST /api/drag (seed i, one handle point near one corner, its target near the opposite corner,
   `max_steps` S) and follow the session's WebSocket (`image_every=0`) to its end event, all at once. Measured:
   * session-steps/s = all step events of all sessions / wall time from the first POST to the last end event. A
     session with budget S makes S + 1 steps (S Adam updates and the closing observation, each a full
     `drag_step`, and each one step event), so a phase makes N (S + 1) session-steps; every session is checked to
     have made them all (no early stop: the targets are far out of reach in S steps);
   * the steady-state rate: step events arriving between the moment every client has seen a step and the first
     end event, over that window (all sessions running; session start-up and wind-down left out; null when the
     window holds fewer than 3 N events, i.e. fewer than about 3 ticks);
   * per-step latency seen by a client: the time between consecutive step events on its WebSocket; p50 / p95 over
     all gaps of all clients in the phase. Events the server replays (steps taken before the client subscribed,
     i.e. with an index below the `step` of the first status message) are left out of the gaps;
   * the engine's tick time in the phase (GET /api/stats before and after) and the CPU time other processes used
     meanwhile (/proc/stat minus this process and the server);
   the server's bucket timings (GET /api/stats) after warmup and at the end are reported;
3. stops the server and, in this process, times the raw batched step on the same N sessions (the same model
   loaded by `jaxgan.serve.models.load_models`, the same sessions as the server builds them, the same DragConfig):
   the compiled program of `jaxgan.serve.pool.Pool` for batch N (`--raw pool`, default: exactly what the engine
   calls) or `jaxgan.edit.drag.make_batched_step` (`--raw batched`), called S + 1 times after one compiling call,
   each call ended by `jax.block_until_ready` (as many sequences as server phases, the median total reported).
   Batch 1 is always timed too (session 0), for the sequential baseline.

Reported per (config, N):
* overhead_vs_raw_same_batch = server wall / raw time of the batch-N program - 1 (the raw step stays on the
  device and makes no host copies, events, HTTP or WebSocket traffic; on a CPU where batching does not pay the
  engine may run smaller buckets, so this can be negative);
* overhead_vs_raw_best = server wall / min(raw batch N, N x raw batch 1) - 1;
* ratio_vs_sequential: the same N sessions run one after another as the official GUI runs one session at a time,
  N x solo time / server wall: `server` with the solo time of the N=1 phase through this server, `inprocess` with
  the raw batch-1 time. Above 1 the server serves N clients faster than one-at-a-time.

Each phase records the 1-minute load average before and after and the share of the machine's CPU time that other
processes took meanwhile; the report records os.getloadavg() at the start and end and sets "contended" when the
1-minute load average was above 1 before anything ran. The server and this process run on the same machine, so on
a small CPU the clients' own work is part of what is measured. `bucket_policy_would_choose` is the bucket the
server's policy picks for N sessions from its bucket timings at the end (the server does not report its choices).

Step budgets: 30 for demo and 3 at 256 px, but 2 at 256 px with 16 clients (`--steps` overrides; 256 px runs
at about 1 session-step/s on a 2-core CPU, and on a CPU batching does not pay, so 16 clients take 16 times one).

    python scripts/bench_serve.py                                        # demo and 256 px, N = 1,4,16 (+64 on GPU)
    python scripts/bench_serve.py --configs demo --clients 1,4 --steps 10
    python scripts/bench_serve.py --steps demo=30,256=3,256@16=2 --out scripts/results/bench_serve_cpu.json
"""

import argparse
import asyncio
import json
import math
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The server shares the accelerator with this process: take device memory on demand, not 75% up front (the server
# itself keeps JAX's default). Set before JAX is imported.
_PREALLOCATE_WAS_SET = "XLA_PYTHON_CLIENT_PREALLOCATE" in os.environ
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import httpx  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402
import websockets  # noqa: E402

from bench_common import machine_info  # noqa: E402
from jaxgan.files import atomic_write, json_writer  # noqa: E402

DEFAULT_STEPS = {"demo": 30, "256": 3, "256@16": 2}  # 256 px, 16 clients: fewer steps (about 4 min less on 2 cores)
OTHER_STEPS = 3            # default S for a resolution not in DEFAULT_STEPS
DEFAULT_REPEATS = {"demo": 5}  # phases per (config, N), also raw sequences; the median is reported (others: 1)
READY_TIMEOUT_S = 3600     # --warmup of a large config on a small CPU takes minutes
CLIENT_TIMEOUT_S = 1800
MAX_POINTS = 8             # the server's default --max-points: the padded point count of the compiled step


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", default="demo,256",
                   help="comma-separated: demo (the bundled 32 px model) and/or resolutions R (random ADA-like "
                        "StyleGAN2 of R px); default demo,256")
    p.add_argument("--clients", default=None,
                   help="client counts N, comma-separated (default 1,4,16, and 64 when jax.default_backend() is "
                        "gpu)")
    p.add_argument("--steps", default=None,
                   help="drag budget S per session: one integer for all, or CONFIG=S entries, with CONFIG@N=S for "
                        "one client count (default demo=30,256=3,256@16=2; other resolutions 3)")
    p.add_argument("--repeats", default=None,
                   help="server phases per (config, N), the one of median wall time reported: an integer or "
                        "CONFIG=R entries (default demo=5, others 1); the raw step is timed as many times")
    p.add_argument("--raw", choices=("pool", "batched"), default="pool",
                   help="in-process baseline: the Pool's compiled program (default) or drag.make_batched_step")
    p.add_argument("--channel-base", type=int, default=None,
                   help="channel_base of the random generators (default 16384 below 512 px, else 32768)")
    p.add_argument("--channel-max", type=int, default=512)
    p.add_argument("--mapping-layers", type=int, default=8)
    p.add_argument("--skip-raw", action="store_true", help="time the server only")
    p.add_argument("--note", action="append", default=[], help="a remark for the report's notes (repeatable)")
    p.add_argument("--out", help="also write the JSON here (atomically: a temporary file, then a rename)")
    args = p.parse_args(argv)
    args.configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    for c in args.configs:
        if c != "demo" and not (c.isdigit() and int(c) >= 8 and int(c) & (int(c) - 1) == 0):
            p.error(f"--configs: {c!r} is neither demo nor a power-of-two resolution")
    if args.clients is None:
        args.clients = [1, 4, 16] + ([64] if jax.default_backend() == "gpu" else [])
    else:
        args.clients = sorted({int(n) for n in args.clients.split(",")})
    if not args.clients or min(args.clients) < 1:
        p.error("--clients must be positive integers")
    args.steps_of = keyed_values(p, "--steps", args.steps, DEFAULT_STEPS, OTHER_STEPS)
    args.repeats_of = keyed_values(p, "--repeats", args.repeats, DEFAULT_REPEATS, 1)
    return args


def keyed_values(p, flag: str, text: str | None, defaults: dict, other: int):
    """`f(config, n)` for a flag given as one integer or CONFIG=V / CONFIG@N=V entries."""
    table = dict(defaults)
    if text is not None:
        if text.strip().isdigit():
            table = {"*": int(text)}
        else:
            for entry in text.split(","):
                key, sep, value = entry.partition("=")
                if not sep or not value.strip().isdigit():
                    p.error(f"{flag}: {entry!r} is not CONFIG=INT or CONFIG@N=INT")
                table[key.strip()] = int(value)

    def value_of(config: str, n: int) -> int:
        for key in (f"{config}@{n}", config, "*"):
            if key in table:
                return table[key]
        return other
    return value_of


# ----------------------------------------------------------------------------------------------------------------
# CPU and load accounting


def load_avg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def busy_cpu_seconds() -> float:
    """CPU time the whole machine spent busy since boot (/proc/stat: all but idle and iowait)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal (guest is inside user)
    return (total - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int | None = None) -> float:
    if pid is None:
        t = os.times()
        return t.user + t.system
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


class CpuMeter:
    """CPU seconds used by other processes (neither this one nor the server) between start() and stop()."""

    def __init__(self, server_pid: int | None):
        self.pid = server_pid

    def snapshot(self):
        server = 0.0 if self.pid is None else process_cpu_seconds(self.pid)
        return time.perf_counter(), busy_cpu_seconds(), process_cpu_seconds(), server

    def start(self):
        self._start = self.snapshot()
        return self

    def stop(self) -> dict:
        end = self.snapshot()
        wall, busy, ours, server = (b - a for a, b in zip(self._start, end))
        foreign = max(0.0, busy - ours - server)
        cpus = os.cpu_count() or 1
        return {"server_cpu_s": round(server, 2), "client_cpu_s": round(ours, 2),
                "other_processes_cpu_s": round(foreign, 2),
                "other_processes_share_of_machine": round(foreign / max(wall * cpus, 1e-9), 3)}


# ----------------------------------------------------------------------------------------------------------------
# Models


def channel_base_for(resolution: int, args) -> int:
    if args.channel_base is not None:
        return args.channel_base
    return 16384 if resolution < 512 else 32768  # stylegan2-ada-pytorch cfg 'auto': fmaps 0.5 below 512 px


def random_checkpoint(resolution: int, folder: Path, args) -> tuple[Path, dict]:
    """A random-weight StyleGAN2 generator of `resolution` px saved as a jaxgan checkpoint; (path, description)."""
    from jaxgan.checkpoint import save_checkpoint
    from jaxgan.models import stylegan2
    base = channel_base_for(resolution, args)
    cfg = stylegan2.GeneratorConfig(
        z_dim=512, c_dim=0, w_dim=512, img_resolution=resolution, img_channels=3,
        channels=stylegan2.channels_by_resolution(resolution, base, args.channel_max),
        mapping_layers=args.mapping_layers, conv_clamp=256)
    G = stylegan2.init_generator(cfg, jax.random.key(resolution))
    path = folder / f"random-sg2-{resolution}"
    save_checkpoint(path, {"G": G}, meta={"note": f"random weights for scripts/bench_serve.py ({resolution} px)"})
    del G
    return path, {"weights": "random (jax.random.key(resolution))", "channel_base": base,
                  "channel_max": args.channel_max, "mapping_layers": args.mapping_layers, "conv_clamp": 256,
                  "z_dim": 512, "w_dim": 512, "channels": list(cfg.channels)}


def drag_request(model: str, resolution: int, index: int, steps: int) -> dict:
    """Client `index`'s drag: seed `index`, one handle near the top-left corner, its target near the bottom-right
    one (about 0.75 h away: DragGAN's tracking moves a handle at most its search radius, 6 px at 256 px and 3 px at
    the bundled model's settings, per step, and far less in practice)."""
    h = resolution
    a, b = index % 4, (index // 4) % 4
    lo, hi = round(0.12 * h), round(0.88 * h)
    step = max(1, h // 32)
    return {"model": model, "seed": index, "points": [[lo + a * step, lo + b * step]],
            "targets": [[hi - b * step, hi - a * step]], "max_steps": steps}


# ----------------------------------------------------------------------------------------------------------------
# The server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python -m jaxgan serve CKPT --warmup ...` on loopback, its log in a temporary file."""

    def __init__(self, ckpt: str, *, max_batch: int, max_sessions: int):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile(mode="w+")
        env = dict(os.environ)
        if not _PREALLOCATE_WAS_SET:
            env.pop("XLA_PYTHON_CLIENT_PREALLOCATE", None)  # the server allocates as JAX does by default
        self.command = [sys.executable, "-m", "jaxgan", "serve", ckpt, "--port", str(self.port), "--warmup",
                        "--max-batch", str(max_batch), "--max-sessions", str(max_sessions)]
        # (no --max-steps: the default cap, 2000, is far above any budget here; a cap below the warm-up drag's
        # default budget of 200 steps makes the server refuse to start)
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(self.command, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.ready_s = self._wait_ready()

    def _wait_ready(self) -> float:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jaxgan serve exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(self.url + "/api/health", timeout=5).status_code == 200:
                    return time.perf_counter() - self.started
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.proc.kill()
        raise RuntimeError(f"jaxgan serve did not answer within {READY_TIMEOUT_S} s:\n{self.output()}")

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def get(self, path: str) -> dict:
        response = httpx.get(self.url + path, timeout=300)
        response.raise_for_status()
        return response.json()

    def peak_rss_bytes(self) -> int | None:
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return None

    def stop(self, timeout: float = 120.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


async def one_client(url: str, http: httpx.AsyncClient, request: dict) -> dict:
    """POST the drag, follow its WebSocket to the end event; times are time.perf_counter() in this process."""
    posted = time.perf_counter()
    created = await http.post("/api/drag", json=request)
    if created.status_code != 201:
        raise RuntimeError(f"POST /api/drag: {created.status_code} {created.text}")
    sid = created.json()["id"]
    created_at = time.perf_counter()
    ws_url = url.replace("http://", "ws://") + f"/api/drag/{sid}/events?image_every=0"
    status_step, steps, end = None, [], None
    async with websockets.connect(ws_url, open_timeout=CLIENT_TIMEOUT_S, ping_interval=None,
                                  max_size=None) as ws:
        async for message in ws:
            arrived = time.perf_counter()
            event = json.loads(message)
            if event["type"] == "status":
                status_step = event["step"]
            elif event["type"] == "step":
                steps.append((arrived, event["index"]))
            elif event["type"] == "end":
                end = (arrived, event)
                break
            else:
                raise RuntimeError(f"session {sid}: {event}")
    if end is None:
        raise RuntimeError(f"session {sid}: the WebSocket closed before the end event")
    return {"id": sid, "posted": posted, "created": created_at, "status_step": status_step, "steps": steps,
            "end_time": end[0], "end": end[1]}


async def all_clients(url: str, requests: list[dict]) -> tuple[float, list[dict]]:
    # The HTTP clients are made before the clock starts: each costs about 20 ms of CPU (its SSL context), which
    # would otherwise be taken from the server's cores inside the timed window.
    clients = [httpx.AsyncClient(base_url=url, timeout=CLIENT_TIMEOUT_S) for _ in requests]
    try:
        start = time.perf_counter()
        results = await asyncio.gather(*(one_client(url, http, r) for http, r in zip(clients, requests)))
    finally:
        await asyncio.gather(*(http.aclose() for http in clients))
    return start, results


def percentile(values, q) -> float | None:
    return None if not values else float(np.percentile(np.asarray(values), q))


def ms(x):
    return None if x is None else round(1000 * x, 2)


def server_phase(server: Server, requests: list[dict], steps: int) -> dict:
    """One phase: every client at once; the measurements of the module docstring."""
    n = len(requests)
    before = server.get("/api/stats")
    load_before = load_avg()
    meter = CpuMeter(server.proc.pid).start()
    start, results = asyncio.run(all_clients(server.url, requests))
    finish = max(r["end_time"] for r in results)
    cpu = meter.stop()
    load_after = load_avg()
    after = server.get("/api/stats")
    for r in results:
        response = httpx.delete(f"{server.url}/api/drag/{r['id']}", timeout=300)
        response.raise_for_status()
    wall = finish - start
    gaps, first_step = [], []
    for r in results:
        live = [(t, i) for t, i in r["steps"] if i >= (r["status_step"] or 0)]
        gaps += [t1 - t0 for (t0, i0), (t1, i1) in zip(live, live[1:]) if i1 == i0 + 1]
        if r["steps"]:
            first_step.append(r["steps"][0][0] - r["posted"])
    step_events = sum(len(r["steps"]) for r in results)
    # Steady state: from the moment every client has seen a live step to the first end event, all sessions
    # running (replayed events arrive in a burst, so only live ones count).
    live = [[t for t, i in r["steps"] if i >= (r["status_step"] or 0)] for r in results]
    window = (max(ts[0] if ts else math.inf for ts in live), min(r["end_time"] for r in results))
    in_window = sum(window[0] < t <= window[1] for ts in live for t in ts)
    # Events arrive in one burst per tick, so the rate means something only over several ticks: at least 3 N events.
    steady = round(in_window / (window[1] - window[0]), 4) if window[1] > window[0] and in_window >= 3 * n else None
    updates = [int(r["end"]["step"]) for r in results]
    reasons = sorted({r["end"]["stop_reason"] for r in results})
    complete = all([i for _, i in r["steps"]] == list(range(steps + 1)) for r in results)
    ticks = after["ticks"] - before["ticks"]
    tick_s = after["tick_seconds"] - before["tick_seconds"]
    return {
        "clients": n, "steps_budget": steps, "session_steps": step_events, "expected_session_steps": n * (steps + 1),
        "updates_per_session": sorted(set(updates)), "stop_reasons": reasons,
        "all_sessions_full_budget": complete and all(u == steps for u in updates) and reasons == ["step limit"],
        "wall_s": round(wall, 4), "session_steps_per_s": round(step_events / wall, 4),
        "steady_state": {"session_steps_per_s": steady,
                         "window_s": round(window[1] - window[0], 4) if steady is not None else None,
                         "session_steps": in_window},
        "step_latency_ms": {"p50": ms(percentile(gaps, 50)), "p95": ms(percentile(gaps, 95)),
                            "mean": ms(statistics.fmean(gaps) if gaps else None),
                            "max": ms(max(gaps) if gaps else None), "gaps": len(gaps)},
        "post_to_first_step_ms": {"p50": ms(percentile(first_step, 50)), "max": ms(max(first_step, default=None))},
        "engine": {"ticks": ticks, "tick_seconds": round(tick_s, 4),
                   "tick_share_of_wall": round(tick_s / wall, 4) if wall > 0 else None},
        "final_points": [r["end"]["points"] for r in results],
        "load_avg_1m": [load_before[0], load_after[0]], **cpu,
    }


def best_of(phases: list[dict]) -> dict:
    """The phase of median wall time (all walls listed beside it)."""
    ordered = sorted(phases, key=lambda ph: ph["wall_s"])
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    if len(phases) > 1:
        chosen["repeats"] = len(phases)
        chosen["wall_s_of_repeats"] = [ph["wall_s"] for ph in phases]
        chosen["session_steps_per_s_of_repeats"] = [ph["session_steps_per_s"] for ph in phases]
    return chosen


def run_server(ckpt: str, model_name: str, resolution: int, config: str, args) -> dict:
    max_n = max(args.clients)
    max_batch = 1 << (max_n - 1).bit_length()
    print(f"[{config}] starting jaxgan serve --warmup --max-batch {max_batch}", file=sys.stderr, flush=True)
    server = Server(ckpt, max_batch=max_batch, max_sessions=max_n)
    try:
        warmed = server.get("/api/stats")
        log = server.output()
        warm_lines = [line for line in log.splitlines() if "warmed up" in line]
        warm_s = [float(m.group(1)) for m in (re.search(r" in ([\d.]+) s", line) for line in warm_lines) if m]
        print(f"[{config}] ready in {server.ready_s:.1f} s; {warm_lines}", file=sys.stderr, flush=True)
        phases = {}
        for n in args.clients:
            steps = args.steps_of(config, n)
            requests = [drag_request(model_name, resolution, i, steps) for i in range(n)]
            runs = []
            for _ in range(args.repeats_of(config, n)):
                runs.append(server_phase(server, requests, steps))
                print(f"[{config}] N={n} S={steps}: {runs[-1]['session_steps_per_s']} session-steps/s, "
                      f"p50 {runs[-1]['step_latency_ms']['p50']} ms, wall {runs[-1]['wall_s']} s, "
                      f"load {runs[-1]['load_avg_1m']}", file=sys.stderr, flush=True)
            phases[n] = best_of(runs)
        final = server.get("/api/stats")
        health = server.get("/api/health")
        peak = server.peak_rss_bytes()
    finally:
        code = server.stop()
    return {"command": " ".join(["python"] + server.command[1:]), "ready_s": round(server.ready_s, 2),
            "warmup_s": warm_s, "max_batch": max_batch, "capacity": health["sessions"]["capacity"],
            "devices": health["devices"], "stats_after_warmup": warmed, "stats_at_end": final,
            "server_peak_rss_bytes": peak, "exit_code": code, "phases": phases}


# ----------------------------------------------------------------------------------------------------------------
# The raw batched step, in this process


def raw_timings(ckpt: str, model_name: str, resolution: int, config: str, counts: list[int], args) -> dict:
    """Time the compiled batched step on the sessions the server would build for these requests."""
    from jaxgan import parallel
    from jaxgan.edit import drag
    from jaxgan.serve import drag_sessions
    from jaxgan.serve.models import load_models
    from jaxgan.serve.pool import Pool
    from jaxgan.demo import resolve_checkpoint
    model = load_models({model_name: resolve_checkpoint(ckpt)}, max_points=MAX_POINTS)[model_name]
    devices = jax.local_devices()
    rows = {}
    for n in sorted(set(counts) | {1}):
        steps = args.steps_of(config, n) if n in counts else args.steps_of(config, 1)
        requests = [drag_request(model_name, resolution, i, steps) for i in range(n)]
        cfgs, states = set(), []
        for request in requests:  # as Engine._new_drag builds a session
            cfg, settings = drag_sessions.drag_settings(model, request)
            job = drag.DragJob(points=tuple(map(tuple, request["points"])),
                               targets=tuple(map(tuple, request["targets"])), seed=request["seed"],
                               space=settings["space"], steps=settings["steps"], lr=settings["lr"],
                               lambda_mask=settings["lambda_mask"])
            cfgs.add(cfg)
            states.append(drag.session_of(model.G, cfg, job))
        (cfg,) = cfgs
        stacked = drag.stack_states(states)
        if args.raw == "pool":
            run, shared = Pool(None, model.G, drag_sessions.step_fn(cfg), max(n, 1), devices).program(n)
            updated_of = lambda out: np.asarray(out["updated"])  # noqa: E731
            points_of = lambda out: np.asarray(out["points"])  # noqa: E731
        else:
            count = max(d for d in range(1, min(n, len(devices)) + 1) if n % d == 0)
            mesh = parallel.data_mesh(devices[:count])
            run, shared = drag.make_batched_step(cfg, mesh, 1), parallel.replicate(model.G, mesh)
            stacked, _ = drag.pad_sessions(stacked, mesh)
            updated_of = lambda out: np.asarray(out.updated)[:, 0]  # noqa: E731
            points_of = lambda out: np.asarray(out.points)[:, 0]  # noqa: E731
        load_before = load_avg()
        start = time.perf_counter()
        jax.block_until_ready(run(shared, stacked))  # compiles; its result is dropped
        first_call = time.perf_counter() - start
        meter = CpuMeter(None).start()
        sequences = []
        for _ in range(args.repeats_of(config, n)):  # each from the fresh sessions, as each server phase
            current, times, updated, out = stacked, [], [], None
            for _ in range(steps + 1):
                start = time.perf_counter()
                current, out = run(shared, current)
                jax.block_until_ready((current, out))
                times.append(time.perf_counter() - start)
                updated.append(updated_of(out)[:n])
            sequences.append((sum(times), times, updated, out))
        cpu = meter.stop()
        cpu.pop("server_cpu_s")
        ordered = sorted(sequences, key=lambda seq: seq[0])
        total, times, updated, out = ordered[(len(ordered) - 1) // 2]  # the median total, as best_of
        rows[n] = {"sessions": n, "steps_budget": steps, "calls": steps + 1, "first_call_s": round(first_call, 3),
                   "repeats": len(sequences), "total_s_of_repeats": [round(seq[0], 4) for seq in sequences],
                   "call_times_s": [round(t, 5) for t in times], "total_s": round(total, 4),
                   "median_call_s": round(statistics.median(times), 5),
                   "session_steps_per_s": round(n * (steps + 1) / total, 4),
                   "updates_per_session": sorted({int(u) for u in np.sum(updated[:-1], axis=0)}),
                   "closing_call_updated_none": not bool(np.any(updated[-1])),
                   "final_points": points_of(out)[:n, :1].tolist(),
                   "load_avg_1m": [load_before[0], load_avg()[0]], **cpu}
        print(f"[{config}] raw {args.raw} batch {n}: {rows[n]['session_steps_per_s']} session-steps/s "
              f"(first call {first_call:.1f} s)", file=sys.stderr, flush=True)
        del stacked, current, sequences, ordered, out, run, shared
    return {"driver": {"pool": "jaxgan.serve.pool.Pool(...).program(N): jit(shard_map(vmap(step_fn(cfg))))",
                       "batched": "jaxgan.edit.drag.make_batched_step(cfg, mesh, 1)"}[args.raw],
            "drag_config": {"max_points": cfg.max_points, "r1": cfg.r1, "r2": cfg.r2, "feature_idx": cfg.feature_idx,
                            "patch_radius": cfg.patch_radius, "search_radius": cfg.search_radius,
                            "feature_block": cfg.feature_resolution, "feature_channels": cfg.feature_channels},
            "rows": rows}


# ----------------------------------------------------------------------------------------------------------------


def policy_choice(stats: dict, n: int) -> int | None:
    """The bucket the server's policy picks for n sessions given its bucket timings at the end (inferred: the
    server does not report its choices)."""
    from jaxgan.serve.scheduler import BucketPolicy
    pools = list(stats.get("pools", {}).values())
    if not pools:
        return None
    report = pools[0]
    policy = BucketPolicy(max(int(b) for b in report))
    for b, entry in report.items():
        policy.samples[int(b)] = [entry["seconds_per_call"]] * 2
    return policy.choose(n)


def summarise(server: dict, raw: dict | None, counts: list[int]) -> list[dict]:
    table = []
    solo = server["phases"].get(1)
    raw_rows = raw["rows"] if raw else {}
    for n in counts:
        ph = server["phases"][n]
        row = {"clients": n, "steps_budget": ph["steps_budget"], "session_steps": ph["session_steps"],
               "all_sessions_full_budget": ph["all_sessions_full_budget"],
               "session_steps_per_s": ph["session_steps_per_s"],
               "steady_session_steps_per_s": ph["steady_state"]["session_steps_per_s"],
               "p50_step_ms": ph["step_latency_ms"]["p50"],
               "p95_step_ms": ph["step_latency_ms"]["p95"],
               "bucket_policy_would_choose": policy_choice(server["stats_at_end"], n)}
        if n in raw_rows:
            same = raw_rows[n]["total_s"]
            per_session_solo = raw_rows[1]["total_s"] / raw_rows[1]["calls"]
            sequential_raw = n * per_session_solo * (ph["steps_budget"] + 1)
            row["raw_session_steps_per_s"] = raw_rows[n]["session_steps_per_s"]
            row["overhead_vs_raw_same_batch"] = round(ph["wall_s"] / same - 1, 4)
            row["overhead_vs_raw_best"] = round(ph["wall_s"] / min(same, sequential_raw) - 1, 4)
            row["ratio_vs_sequential_inprocess"] = round(sequential_raw / ph["wall_s"], 4)
            row["final_points_match_raw"] = ph["final_points"] == raw_rows[n]["final_points"]
        if solo is not None:
            # the solo rate through this server (steps may differ between N when --steps says so)
            row["ratio_vs_sequential_server"] = round(ph["session_steps_per_s"] / solo["session_steps_per_s"], 4)
        table.append(row)
    return table


def run_config(config: str, folder: Path, args) -> dict:
    if config == "demo":
        from jaxgan.demo import bundled_checkpoint
        ckpt, model_name, resolution = "demo", "demo", 32
        from jaxgan.checkpoint import read_sidecar
        g = read_sidecar(bundled_checkpoint())["models"]["G"]["config"]
        description = {"weights": "the bundled demo model (trained on toyfaces)", "channels": g["channels"],
                       "mapping_layers": g["mapping_layers"], "z_dim": g["z_dim"], "w_dim": g["w_dim"]}
    else:
        resolution = int(config)
        path, description = random_checkpoint(resolution, folder, args)
        ckpt, model_name = str(path), path.name
    steps = {str(n): args.steps_of(config, n) for n in args.clients}
    server = run_server(ckpt, model_name, resolution, config, args)
    raw = None if args.skip_raw else raw_timings(ckpt, model_name, resolution, config, args.clients, args)
    return {"config": config, "model": model_name, "resolution": resolution, "generator": description,
            "steps_budget_by_clients": steps,
            "session0_request": drag_request(model_name, resolution, 0, steps[str(args.clients[0])]),
            "summary": summarise(server, raw, args.clients), "server": server, "raw": raw}


def main(argv=None):
    args = parse_args(argv)
    load_start = load_avg()
    started = time.time()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as folder:
        for config in args.configs:
            results.append(run_config(config, Path(folder), args))
    notes = list(args.note)
    for c in args.configs:
        budgets = {n: args.steps_of(c, n) for n in args.clients}
        if len(set(budgets.values())) > 1:
            notes.append(f"{c}: the step budget differs between client counts ({budgets}) to keep the run short; "
                         "compare rates (session-steps/s), not wall times, across N")
    others = [ph["other_processes_share_of_machine"] for r in results for ph in r["server"]["phases"].values()]
    report = {
        "benchmark": "jaxgan serve: N concurrent DragGAN clients (HTTP + WebSocket) against one server, next to "
                     "the raw batched step in-process and to N sessions one after another",
        "settings": {"clients": args.clients, "configs": args.configs,
                     "steps": {c: {str(n): args.steps_of(c, n) for n in args.clients} for c in args.configs},
                     "repeats": {c: {str(n): args.repeats_of(c, n) for n in args.clients} for c in args.configs},
                     "raw": args.raw, "image_every": 0, "points_per_session": 1, "max_points": MAX_POINTS,
                     "server_flags": "--warmup --max-batch B --max-sessions B (B = largest N as a power of two)",
                     "session_step": "one drag_step (S Adam updates + 1 closing observation = S + 1 per session)"},
        "machine": machine_info(),
        "load_avg_start": load_start, "load_avg_end": load_avg(),
        "contended": load_start[0] > 1,
        "contended_means": "the 1-minute load average was above 1 when the script started (before it ran anything)",
        "other_processes_share_of_machine_during_server_phases": {"min": min(others), "max": max(others)},
        "notes": notes,
        "total_s": round(time.time() - started, 1),
        "results": results,
    }
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        atomic_write(Path(args.out), json_writer(report))


if __name__ == "__main__":
    main()
