"""Benchmark DragGAN drag steps (jaxgan/edit/drag.py): steps/s and session-steps/s for N sessions at once.

For each resolution and each session count N, builds a full-width StyleGAN2 (config F: channel_base 32768,
channel_max 512, 8 mapping layers, conv_clamp 256) with random weights, starts N drag sessions (w0 = mapping of
`np.random.RandomState(seed).randn(1, 512)` at truncation 0.7, two handle points per session with targets
`--drag-distance` px away, a mask with a flexible box around them so the mask term runs, lambda 20, lr 2e-3,
an unlimited step budget) and times `make_batched_step(cfg, mesh, K)`, which advances every session K steps
per call (a lax.scan over `drag_step`, vmapped over sessions, sharded over devices):

* first call: compile + one call (reported, with `compile_s` = first call - median call, apart from the steady state);
* `--repeats` timed calls after it, each ended by `jax.block_until_ready`; steps/s = K / median call time and
  session-steps/s = N * K / median call time;
* every timed step is checked to have updated every session (no session stopped or ran out of budget).

`--driver vmap` times `jit(vmap(drag_step))` called K times per timed call instead, on one device: the same step
without the lax.scan and the sharding, a diagnostic that tells their overhead apart. Each row records the 1-minute
load average before and after it, so runs on a shared machine can be judged.

Peak memory: `device.memory_stats()['peak_bytes_in_use']` where the backend has it (GPU), else the process's
peak resident set size (`resource.getrusage`); both are process-wide peaks so far, so runs go from small N up.

With `--official PATH` (a checkout of XingangPan/DragGAN), also times the official drag step on the same weights
in the same run: the official `training.networks_stylegan2.Generator` is built with the same constructor
arguments, jaxgan's parameters and buffers are loaded into it with `load_state_dict` (the names and layouts are
PyTorch's), and a real `viz.renderer.Renderer` is initialised with its own `init_network` (given the jaxgan w0 as
`w_load`) and stepped by calls of `_render_drag_impl` on session 0. The official code runs one session at a time,
so its session-steps/s is 1 / step time; the ratio jaxgan / official is reported for every N. As a sanity check
the first images (uint8) and the latents after the first K updates of both are compared. torch is imported only
under `--official`; the official code is imported from PATH at run time.

    python scripts/bench_drag.py                                         # GPU: N = 1,4,16,64 at 256 and 512 px
    python scripts/bench_drag.py --sessions 1,4,16 --sessions-at 512=1,4 --repeats 3 --out r.json
    python scripts/bench_drag.py --official ../DragGAN --sessions 1 --resolutions 256
    python scripts/bench_drag.py --memory-only --sessions 1,4                # XLA's temporaries per session
    python scripts/bench_drag.py --sessions 1,16,64 --implementation pallas  # on a GPU: the Pallas kernels

`--implementation xla|pallas` sets the process default (`jaxgan.ops.set_default_implementation`) before anything is
traced: point tracking and every other op that has a kernel (the generator's epilogues and FIRs) use it. Without
it the decision table in jaxgan/ops/implementation.py chooses. Pallas on CPU means interpret mode (meaningless for
speed).

Every row also has XLA's memory analysis of the compiled step (`step_memory`: temporaries per session), the
figure that decides how many sessions fit on a device.
"""

import argparse
import functools
import os
import resource
import statistics
import sys
import time
import warnings

if any(arg.startswith("--official") for arg in sys.argv):
    # torch shares the accelerator with JAX here: let JAX allocate on demand instead of taking 75% up front.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax  # noqa: E402 (after the allocator setting)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from bench_common import machine_info, peak_memory, write_report  # noqa: E402
from jaxgan import parallel  # noqa: E402
from jaxgan.edit import drag  # noqa: E402
from jaxgan.models import stylegan2  # noqa: E402
from jaxgan.ops import set_default_implementation  # noqa: E402

Z_DIM = 512          # the official renderer hard-codes randn(1, 512)
LAMBDA_MASK = 20.0   # what both official UIs pass
TRUNCATION_PSI = 0.7
MAX_STEPS = 10 ** 6  # sessions must never stop for lack of budget while timed


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--resolutions", default="256,512", help="image resolutions (default 256,512)")
    p.add_argument("--sessions", default="1,4,16,64", help="session counts N (default 1,4,16,64)")
    p.add_argument("--sessions-at", action="append", default=[], metavar="RES=N,N",
                   help="session counts for one resolution, overriding --sessions there (repeatable)")
    p.add_argument("--driver", choices=("batched", "vmap"), default="batched",
                   help="batched: make_batched_step (default); vmap: jit(vmap(drag_step)) K times, a diagnostic")
    p.add_argument("--steps-per-call", type=int, default=1, help="K: drag steps per compiled call (lax.scan length)")
    p.add_argument("--repeats", type=int, default=10, help="timed calls per configuration (after the first call)")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--points", type=int, default=2, help="handle points per session")
    p.add_argument("--drag-distance", type=float, default=30.0, help="handle-to-target distance in pixels")
    p.add_argument("--channel-base", type=int, default=32768)
    p.add_argument("--channel-max", type=int, default=512)
    p.add_argument("--mapping-layers", type=int, default=8)
    p.add_argument("--conv-clamp", type=float, default=256)
    p.add_argument("--memory-only", action="store_true",
                   help="only XLA's memory analysis of the compiled steps (no timing, no official run)")
    p.add_argument("--official", metavar="PATH", help="a checkout of XingangPan/DragGAN to time side by side")
    p.add_argument("--official-num-fp16-res", type=int, default=0,
                   help="num_fp16_res of the official generator (default 0: float32 like jaxgan; official "
                        "NVIDIA pickles use 4, which matters on GPU only)")
    p.add_argument("--implementation", choices=("xla", "pallas"), default=None,
                   help="hot-op implementation, point tracking included (set_default_implementation; default: "
                        "the table in jaxgan/ops/implementation.py); pallas on CPU = interpret mode")
    p.add_argument("--out", help="also write the JSON here")
    args = p.parse_args(argv)
    args.resolutions = [int(r) for r in args.resolutions.split(",")]
    default_sessions = [int(n) for n in args.sessions.split(",")]
    args.sessions_by_res = {res: default_sessions for res in args.resolutions}
    for item in args.sessions_at:
        res, _, counts = item.partition("=")
        if int(res) not in args.sessions_by_res:
            p.error(f"--sessions-at {item}: {res} is not one of --resolutions")
        args.sessions_by_res[int(res)] = [int(n) for n in counts.split(",")]
    if args.steps_per_call < 1 or args.repeats < 1:
        p.error("--steps-per-call and --repeats must be >= 1")
    return args


# ----------------------------------------------------------------------------------------------------------------
# Machine description and memory


# ----------------------------------------------------------------------------------------------------------------
# Generator and sessions


def build_generator(resolution: int, args) -> stylegan2.SplitModel:
    cfg = stylegan2.GeneratorConfig(
        z_dim=Z_DIM, c_dim=0, w_dim=Z_DIM, img_resolution=resolution, img_channels=3,
        channels=stylegan2.channels_by_resolution(resolution, args.channel_base, args.channel_max),
        mapping_layers=args.mapping_layers, conv_clamp=args.conv_clamp)
    return stylegan2.init_generator(cfg, jax.random.key(resolution))


def session_inputs(index: int, resolution: int, args) -> dict:
    """Seeded w0 seed, handle points, targets `drag_distance` px away and a mask (1 = fixed, 0 = a flexible box
    around the points and targets), all in image pixels as (row, col)."""
    rng = np.random.RandomState(1000 + index)
    h = resolution
    points = rng.randint(h // 4, 3 * h // 4, size=(args.points, 2))
    angles = rng.uniform(0, 2 * np.pi, size=args.points)
    offsets = args.drag_distance * np.stack([np.sin(angles), np.cos(angles)], axis=1)
    targets = np.clip(np.round(points + offsets), 0, h - 1).astype(int)
    both = np.concatenate([points, targets])
    margin = max(h // 16, 4)
    top, left = np.maximum(both.min(0) - margin, 0)
    bottom, right = np.minimum(both.max(0) + margin + 1, h)
    mask = np.ones((h, h), np.float32)
    mask[top:bottom, left:right] = 0
    return {"seed": index, "points": points.tolist(), "targets": targets.tolist(), "mask": mask}


def initial_latent(G, seed: int) -> np.ndarray:
    z = np.random.RandomState(seed).randn(1, Z_DIM)
    return np.asarray(stylegan2.mapping(G, z, truncation_psi=TRUNCATION_PSI))[0]


def new_sessions(G, dcfg: drag.DragConfig, inputs: list[dict], args) -> list[drag.DragState]:
    return [drag.new_session(dcfg, initial_latent(G, s["seed"]), s["points"], s["targets"], mask=s["mask"],
                             lr=args.lr, lambda_mask=LAMBDA_MASK, max_steps=MAX_STEPS) for s in inputs]


# ----------------------------------------------------------------------------------------------------------------
# jaxgan


def drag_runner(G, dcfg: drag.DragConfig, sessions: list[drag.DragState], args):
    """(run, G, states, count): `run(G, states) -> (states, outputs [N, K, ...])` advances every session K steps.

    driver 'batched' is the library's `make_batched_step` (lax.scan over K steps, vmap, shard_map over devices);
    'vmap' is `jit(vmap(drag_step))` called K times from Python on one device, the same step without the scan
    and the sharding, to tell their costs apart.
    """
    k = args.steps_per_call
    if args.driver == "batched":
        mesh = parallel.data_mesh()
        states, count = drag.pad_sessions(drag.stack_states(sessions), mesh)
        return drag.make_batched_step(dcfg, mesh, k), parallel.replicate(G, mesh), states, count
    step = jax.jit(jax.vmap(functools.partial(drag.drag_step, cfg=dcfg), in_axes=(None, 0)))

    def run(G, states):
        outputs = []
        for _ in range(k):
            states, out = step(G, states)
            outputs.append(out)
        return states, jax.tree_util.tree_map(lambda *steps: jnp.stack(steps, axis=1), *outputs)
    return run, G, drag.stack_states(sessions), len(sessions)


def step_memory(G, dcfg: drag.DragConfig, sessions: list[drag.DragState]) -> dict:
    """XLA's memory analysis of one step of these sessions, compiled for this backend: `jit(drag_step)` for one
    session, `jit(vmap(drag_step))` for several (no sharding, so the figure is per program, not per device);
    temporaries per session = temp / N. The generator is an argument, so its weights are not counted."""
    if len(sessions) == 1:
        step = jax.jit(functools.partial(drag.drag_step, cfg=dcfg))
        states = sessions[0]
    else:
        step = jax.jit(jax.vmap(functools.partial(drag.drag_step, cfg=dcfg), in_axes=(None, 0)))
        states = drag.stack_states(sessions)
    analysis = step.lower(G, states).compile().memory_analysis()
    if analysis is None:
        return {}
    temp = int(analysis.temp_size_in_bytes)
    return {"xla_temp_bytes": temp, "xla_temp_bytes_per_session": temp // len(sessions),
            "xla_argument_bytes": int(analysis.argument_size_in_bytes),
            "xla_output_bytes": int(analysis.output_size_in_bytes)}


def time_jaxgan(G, dcfg: drag.DragConfig, sessions: list[drag.DragState], args) -> tuple[dict, dict]:
    """Time K-step calls on these sessions; returns (result row, session 0 after the first call)."""
    run, G, states, count = drag_runner(G, dcfg, sessions, args)
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    states, out = jax.block_until_ready(run(G, states))
    first_call = time.perf_counter() - start
    first = {"image": np.asarray(out.image[0, 0]), "w": np.asarray(states.w[0])}
    del out

    times, updated = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        states, out = jax.block_until_ready(run(G, states))
        times.append(time.perf_counter() - start)
        updated.append(out.updated)  # [N_padded, K] bool, kept on device; the rest of `out` is dropped
        del out
    all_updated = bool(all(np.asarray(u)[:count].all() for u in updated))
    median = statistics.median(times)
    k = args.steps_per_call
    row = {"driver": args.driver, "sessions": count, "steps_per_call": k, "first_call_s": round(first_call, 4),
           "compile_s": round(first_call - median, 4), "median_call_s": round(median, 5),
           "call_times_s": [round(t, 5) for t in times], "steps_per_s": round(k / median, 4),
           "session_steps_per_s": round(count * k / median, 4), "all_sessions_updated": all_updated,
           "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)], **peak_memory()}
    if not all_updated:
        warnings.warn(f"N={count}: a session stopped during the timed steps; raise --drag-distance")
    return row, first


# ----------------------------------------------------------------------------------------------------------------
# The official code, side by side (torch imported only here)


def import_official(path: str):
    """(torch, networks_stylegan2 module, Renderer class, EasyDict) from a DragGAN checkout at PATH."""
    try:
        import torch
    except ImportError:
        raise SystemExit("--official needs torch (not a jaxgan dependency): run this script from an environment "
                         "that has torch and jaxgan") from None
    path = os.path.abspath(path)
    if not os.path.isfile(os.path.join(path, "viz", "renderer.py")):
        raise SystemExit(f"--official {path}: no viz/renderer.py there; expected a XingangPan/DragGAN checkout")
    sys.path.insert(0, path)
    import dnnlib
    from training import networks_stylegan2
    from viz.renderer import Renderer
    return torch, networks_stylegan2, Renderer, dnnlib.EasyDict


def official_init_kwargs(cfg: stylegan2.GeneratorConfig, args) -> dict:
    return dict(z_dim=cfg.z_dim, c_dim=cfg.c_dim, w_dim=cfg.w_dim, img_resolution=cfg.img_resolution,
                img_channels=cfg.img_channels,
                mapping_kwargs=dict(num_layers=cfg.mapping_layers, lr_multiplier=cfg.mapping_lr_multiplier),
                synthesis_kwargs=dict(channel_base=args.channel_base, channel_max=args.channel_max,
                                      conv_clamp=cfg.conv_clamp, num_fp16_res=args.official_num_fp16_res))


def jaxgan_state_dict(G: stylegan2.SplitModel) -> dict[str, np.ndarray]:
    """{PyTorch state-dict name: array}: jaxgan's params and buffers keep the official names and layouts."""
    from flax import nnx
    return {".".join(str(p) for p in path): np.asarray(variable[...])
            for part in (G.params, G.buffers) for path, variable in nnx.to_flat_state(part)}


def official_generator(torch, networks_stylegan2, G: stylegan2.SplitModel, args, device):
    """The official Generator with jaxgan's weights; only the constant FIR `resample_filter` buffers are left
    at the values the constructor gives them (checked against the official setup_filter)."""
    net = networks_stylegan2.Generator(**official_init_kwargs(G.config, args))
    tensors = {name: torch.from_numpy(np.array(a, np.float32)) for name, a in jaxgan_state_dict(G).items()}
    missing, unexpected = net.load_state_dict(tensors, strict=False)
    not_filter = [name for name in missing if not name.endswith("resample_filter")]
    if not_filter or unexpected:
        raise SystemExit(f"weights do not map onto the official generator: missing {not_filter}, "
                         f"unexpected {list(unexpected)}")
    return net.to(device)


def time_official(G, inputs: dict, first: dict, sessions_rows: list[dict], args) -> dict:
    """Time calls of the official `Renderer._render_drag_impl` on session 0 with the same weights and inputs."""
    torch, networks_stylegan2, Renderer, EasyDict = import_official(args.official)
    warnings.filterwarnings("ignore", message=".*torch.meshgrid.*")
    renderer = Renderer(disable_timing=True)  # timing=True needs CUDA events
    device = renderer._device
    net = official_generator(torch, networks_stylegan2, G, args, device)
    # Register the network as if loaded from a pickle, then run the real init_network with our w0 as `w_load`.
    pkl = f"jaxgan-random-stylegan2-{G.config.img_resolution}"
    renderer._pkl_data[pkl] = {"G_ema": net}
    renderer._networks[(net, device, ())] = net
    w0 = torch.from_numpy(np.array(initial_latent(G, inputs["seed"])))[None]
    renderer.init_network(EasyDict(), pkl=pkl, w_load=w0, w_plus=True, noise_mode="const",
                          trunc_psi=TRUNCATION_PSI, lr=args.lr)
    points = [list(map(int, p)) for p in inputs["points"]]  # the renderer tracks them in place
    targets = [list(map(int, t)) for t in inputs["targets"]]
    mask = torch.from_numpy(inputs["mask"])
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def step():
        res = EasyDict()
        sync()
        start = time.perf_counter()
        renderer._render_drag_impl(res, points=points, targets=targets, mask=mask, lambda_mask=LAMBDA_MASK,
                                   reg=0, feature_idx=5, r1=3, r2=12, noise_mode="const",
                                   trunc_psi=TRUNCATION_PSI, is_drag=True)
        sync()
        return time.perf_counter() - start, res

    load_before = os.getloadavg()[0]
    first_call, res = step()
    image_diff = np.abs(res.image.cpu().numpy().astype(int) - first["image"].astype(int))
    for _ in range(args.steps_per_call - 1):  # the same number of updates as jaxgan's first call
        step()
    w_diff = float(np.abs(renderer.w.detach().cpu().numpy()[0] - first["w"]).max())
    times, stopped = [], False
    for _ in range(args.repeats):
        elapsed, res = step()
        times.append(elapsed)
        stopped |= bool(res.stop)
    median = statistics.median(times)
    memory = ({"device_peak_bytes": int(torch.cuda.max_memory_allocated())} if device.type == "cuda"
              else {"host_max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024})
    return {
        "what": "official viz/renderer.Renderer._render_drag_impl, one session, one step per call",
        "torch": torch.__version__, "torch_device": str(device), "torch_threads": torch.get_num_threads(),
        "num_fp16_res": args.official_num_fp16_res, "first_call_s": round(first_call, 4),
        "median_step_s": round(median, 5), "step_times_s": [round(t, 5) for t in times],
        "steps_per_s": round(1 / median, 4), "session_steps_per_s": round(1 / median, 4),
        "all_steps_updated": not stopped, "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        **memory,
        "check_vs_jaxgan": {"first_image_max_abs_diff_uint8": int(image_diff.max()),
                            "first_image_pixels_differing": int((image_diff > 0).sum()),
                            "w_max_abs_diff_after_first_call": w_diff,
                            "updates_compared": args.steps_per_call},
        "ratio_jaxgan_over_official_session_steps_per_s": {
            str(row["sessions"]): round(row["session_steps_per_s"] * median, 3) for row in sessions_rows},
    }


# ----------------------------------------------------------------------------------------------------------------


def bench_resolution(resolution: int, args) -> dict:
    G = build_generator(resolution, args)
    dcfg = drag.DragConfig.for_generator(G.config)
    counts = sorted(args.sessions_by_res[resolution])
    inputs = [session_inputs(i, resolution, args) for i in range(max(counts))]
    sessions = new_sessions(G, dcfg, inputs, args)
    rows, first = [], None
    for n in counts:
        memory = step_memory(G, dcfg, sessions[:n])
        per_session = f"{memory['xla_temp_bytes_per_session'] / 1e6:.0f} MB" if memory else "n/a"
        if args.memory_only:
            rows.append({"sessions": n, **memory})
            print(f"{resolution} px, N={n}: XLA temporaries {per_session} per session", file=sys.stderr, flush=True)
            continue
        row, first_n = time_jaxgan(G, dcfg, sessions[:n], args)
        row.update(memory)
        first = first if first is not None else first_n
        rows.append(row)
        print(f"{resolution} px, N={n}: {row['session_steps_per_s']} session-steps/s "
              f"(first call {row['first_call_s']} s; XLA temporaries {per_session} per session)",
              file=sys.stderr, flush=True)
    result = {"resolution": resolution, "channels": list(G.config.channels), "num_ws": G.config.num_ws,
              "feature": {"block": dcfg.feature_resolution, "channels": dcfg.feature_channels},
              "patch_radius": dcfg.patch_radius, "search_radius": dcfg.search_radius,
              "session0": {k: inputs[0][k] for k in ("points", "targets")}, "jaxgan": rows}
    if args.official and not args.memory_only:
        result["official"] = time_official(G, inputs[0], first, rows, args)
        print(f"{resolution} px, official: {result['official']['session_steps_per_s']} session-steps/s",
              file=sys.stderr, flush=True)
    return result


def main(argv=None):
    args = parse_args(argv)
    if args.implementation is not None:
        set_default_implementation(args.implementation)
    results = [bench_resolution(res, args) for res in args.resolutions]
    report = {
        "benchmark": "DragGAN drag step (jaxgan.edit.drag.make_batched_step), float32, random config-F weights",
        "settings": {"driver": args.driver, "steps_per_call": args.steps_per_call, "repeats": args.repeats,
                     "lr": args.lr, "lambda_mask": LAMBDA_MASK, "points_per_session": args.points,
                     "drag_distance_px": args.drag_distance, "truncation_psi": TRUNCATION_PSI,
                     "channel_base": args.channel_base, "channel_max": args.channel_max,
                     "mapping_layers": args.mapping_layers, "conv_clamp": args.conv_clamp,
                     "max_steps": MAX_STEPS, "official": args.official is not None,
                     "memory_only": args.memory_only, "implementation": args.implementation or "default table"},
        "machine": machine_info(),
        "results": results,
    }
    write_report(report, args.out)


if __name__ == "__main__":
    main()
