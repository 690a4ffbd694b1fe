"""Benchmark EditGAN edit steps (jaxgan/edit/editgan.py): seconds per step and peak memory for B edits at once.

For each resolution and batch B, builds a full-width StyleGAN2 (config F: channel_base 32768, channel_max 512,
8 mapping layers, conv_clamp 256), a 32-class segmentation branch (10 models, hidden widths 256/128, the EditGAN
car setting; feature_dim from `FeatureLayout.of_generator`) and an LPIPS VGG16, all with random weights (the speed
does not depend on the values). Each of the B edits starts from the mapping of a seeded z (truncation 0.7), its
reference image is G(w) in [0, 1], its region a centred square of about `--region-fraction` of the image and its
target segmentation two classes inside that square (background elsewhere). `editgan.make_problems` builds the
problems (dilation, padded region-pixel lists: the capacity is the next power of two of the dilated region, so at
512 px the segmentation loss runs in two tiles of `segbranch.DEFAULT_TILE` pixels).

The program timed is the library's batched step, `editgan._batched_steps(cfg, mesh, K)` on a one-device mesh
(`parallel.data_mesh(jax.local_devices()[:1])`): K edit steps (`edit_step`: loss, gradient, Adam update) vmapped
over the B edits. It is compiled ahead of time, `jax.jit(program).lower(...).compile()` (the outer jit only inlines
the library's jit(shard_map)), so:

* `compile_s` is lowering + compiling, measured on its own;
* `--warmup` untimed calls follow, then `--steps` timed calls, each ended by `jax.block_until_ready`, the state fed
  from one call to the next as `optimize` does; `s_per_step` = median call / K, `s_per_image_step` = that / B;
* every timed call must advance every edit's step counter and give finite losses.

Memory. `xla_*` come from the compiled program's `memory_analysis()`: temp (scratch XLA allocates for the step),
arguments, outputs, and `xla_total_bytes` = temp + arguments + outputs - aliased; they exist on every backend.
`peak_bytes_in_use` is the device allocator's process-wide peak so far (GPU only: it cannot be reset, so configs
run from small to large, ordered by resolution^2 * batch); on CPU `host_max_rss_bytes` (the process's peak resident
set size, likewise process-wide) is recorded instead. `official_feature_stack_bytes` is, for reference, the size of
the concatenated feature tensor the official code builds per image (feature_dim x res x res float32; 5.9 GiB at
512 px), which the gather-based segmentation loss never materialises.

`--breakdown` also times, at batch 1, the gradient (no Adam) of three partial losses through the same generator
pass: G only (sum of the image and of every feature map, so the whole synthesis backward runs), G + RGB losses
(LPIPS + MSE) and G + segmentation CE, to tell where the step's time goes.

Guards, for slow machines. A configuration is compiled (so XLA's memory estimate is recorded) but not run when
that estimate exceeds `--max-memory-fraction` of the host's available memory (CPU), or when its warm-up and timed
calls, estimated at the per-pixel-image speed of the largest configuration run so far, would take longer than
`--max-config-seconds`; it is not even compiled when `--skip RESxB` names it or its estimated compile time exceeds
`--max-config-seconds`. Either way it stays in the report with status `compiled_only` or `skipped` and the reason.

    python scripts/bench_editgan.py                                      # GPU: 256 and 512 px, B = 1, 8
    python scripts/bench_editgan.py --quick                              # smoke test: 64 and 128 px, B = 1, 2
    python scripts/bench_editgan.py --steps 2 --warmup 1 --max-config-seconds 600 --out r.json   # CPU
"""

import argparse
import functools
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from bench_common import machine_info, peak_memory, write_report
from bench_invert import random_lpips
from jaxgan import parallel
from jaxgan.edit import editgan
from jaxgan.edit.invert import as_rgb
from jaxgan.models import lpips as lpips_model
from jaxgan.models import segbranch, stylegan2

Z_DIM = 512
TRUNCATION_PSI = 0.7
NUM_CLASSES = 32  # EditGAN car: hidden widths (256, 128)
NUM_MODELS = 10


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--resolutions", default="256,512", help="generator resolutions, comma-separated")
    p.add_argument("--batches", default="1,8", help="edits per batch B, comma-separated")
    p.add_argument("--quick", action="store_true", help="smoke test: 64 and 128 px, B = 1, 2, 2 steps")
    p.add_argument("--steps", type=int, help="timed calls per configuration (default 10 on GPU/TPU, 3 on CPU)")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls after compiling (default 1)")
    p.add_argument("--steps-per-call", type=int, default=1, help="K: edit steps per compiled call")
    p.add_argument("--region-fraction", type=float, default=0.1, help="edit region area / image area")
    p.add_argument("--breakdown", default="", metavar="RES,RES",
                   help="at these resolutions also time gradients of partial losses (G only, G+RGB, G+CE), batch 1")
    p.add_argument("--max-config-seconds", type=float,
                   help="skip a configuration whose estimated compile + warm-up + timed calls exceeds this; "
                        "if only the calls would, it is still compiled (XLA's memory estimate is recorded)")
    p.add_argument("--max-memory-fraction", type=float, default=0.8,
                   help="CPU: do not run a compiled program whose XLA total exceeds this fraction of MemAvailable")
    p.add_argument("--skip", default="", help="configurations to skip, e.g. 512x8,256x8")
    p.add_argument("--channel-base", type=int, default=32768)
    p.add_argument("--channel-max", type=int, default=512)
    p.add_argument("--out", help="also write the JSON here")
    args = p.parse_args(argv)
    if args.quick:
        args.resolutions, args.batches = "64,128", "1,2"
        args.steps = 2 if args.steps is None else args.steps
    if args.steps is None:
        args.steps = 3 if jax.default_backend() == "cpu" else 10
    args.resolutions = [int(r) for r in args.resolutions.split(",")]
    args.batches = [int(b) for b in args.batches.split(",")]
    args.breakdown = {int(r) for r in args.breakdown.split(",") if r.strip()}
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if args.steps < 1 or args.warmup < 0 or args.steps_per_call < 1:
        p.error("--steps and --steps-per-call must be >= 1, --warmup >= 0")
    return args


# ----------------------------------------------------------------------------------------------------------------
# Models and problems


@functools.cache
def models(resolution: int, channel_base: int, channel_max: int):
    """(G, S, lpips) with random weights for one resolution."""
    gcfg = stylegan2.GeneratorConfig(
        z_dim=Z_DIM, c_dim=0, w_dim=Z_DIM, img_resolution=resolution, img_channels=3, mapping_layers=8,
        channels=stylegan2.channels_by_resolution(resolution, channel_base, channel_max), conv_clamp=256)
    G = stylegan2.init_generator(gcfg, jax.random.key(resolution))
    layout = segbranch.FeatureLayout.of_generator(gcfg)
    S = segbranch.init_segbranch(segbranch.SegBranchConfig(layout.feature_dim, NUM_CLASSES, NUM_MODELS),
                                 jax.random.key(resolution + 1))
    return G, S, random_lpips(jax.random.key(1))


def edit_inputs(G, batch: int, fraction: float):
    """(ws [B, num_ws, w_dim], references [B, H, W, 3] in [0, 1], regions [B, H, W] bool, targets [B, H, W])."""
    res = G.config.img_resolution
    z = np.random.RandomState(batch).randn(batch, Z_DIM).astype(np.float32)
    ws = np.asarray(stylegan2.mapping(G, z, truncation_psi=TRUNCATION_PSI))
    references = (np.asarray(stylegan2.synthesis(G, ws)) + 1) / 2
    side = max(int(round(np.sqrt(fraction) * res)), 2)
    top = (res - side) // 2
    regions = np.zeros((batch, res, res), bool)
    regions[:, top:top + side, top:top + side] = True
    targets = np.zeros((batch, res, res), np.int32)
    for i in range(batch):  # two classes in the square: its upper half one, its lower half another
        targets[i, top:top + side // 2, top:top + side] = 1 + i % (NUM_CLASSES - 1)
        targets[i, top + side // 2:top + side, top:top + side] = 1 + (i + 7) % (NUM_CLASSES - 1)
    return ws, references, regions, targets


# ----------------------------------------------------------------------------------------------------------------
# Memory


def xla_memory(compiled) -> dict:
    stats = compiled.memory_analysis()
    if stats is None:
        return {}
    temp, arg = int(stats.temp_size_in_bytes), int(stats.argument_size_in_bytes)
    out, alias = int(stats.output_size_in_bytes), int(stats.alias_size_in_bytes)
    return {"xla_temp_bytes": temp, "xla_argument_bytes": arg, "xla_output_bytes": out, "xla_alias_bytes": alias,
            "xla_total_bytes": temp + arg + out - alias}


def measured_peak() -> dict:
    """GPU: {'peak_bytes_in_use'}; elsewhere the host's max RSS (bench_common.peak_memory)."""
    peak = peak_memory()
    if "device_peak_bytes" in peak:
        return {"peak_bytes_in_use": peak["device_peak_bytes"]}
    return peak


def gib(n) -> str:
    return f"{n / 2 ** 30:.2f} GiB" if n is not None else "-"


# ----------------------------------------------------------------------------------------------------------------
# The timed step


def host_available_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


DONE: list[dict] = []  # rows run so far, for the time estimates


def calls_estimate(resolution: int, batch: int, args) -> float | None:
    """Seconds for the warm-up and timed calls at the per-pixel-image speed of the largest configuration run so
    far; None before any has run."""
    ok = [r for r in DONE if r["status"] == "ok"]
    if not ok:
        return None
    largest = max(ok, key=lambda r: r["resolution"] ** 2 * r["batch"])
    per_pixel_image = largest["s_per_image_step"] / largest["resolution"] ** 2
    return per_pixel_image * resolution ** 2 * batch * (args.warmup + args.steps) * args.steps_per_call


def run_refusal(row: dict, args) -> str | None:
    """Why a compiled configuration should not be run here (memory, time), or None."""
    available = host_available_bytes() if jax.default_backend() == "cpu" else None
    total = row.get("xla_total_bytes")
    if available and total and total > args.max_memory_fraction * available:
        return (f"XLA's estimate {gib(total)} exceeds {args.max_memory_fraction:g} x the host's available memory "
                f"({gib(available)})")
    estimate = calls_estimate(row["resolution"], row["batch"], args)
    if args.max_config_seconds is not None and estimate is not None and estimate > args.max_config_seconds:
        row["estimated_calls_s"] = round(estimate, 1)
        return (f"estimated {estimate:.0f} s for {args.warmup + args.steps} calls > --max-config-seconds "
                f"{args.max_config_seconds:.0f} on this machine")
    return None


def time_calls(call, state, count: int):
    """Run `state = call(state)` `count` times, each ended by block_until_ready; returns (state, seconds)."""
    times = []
    for _ in range(count):
        start = time.perf_counter()
        state = jax.block_until_ready(call(state))
        times.append(time.perf_counter() - start)
    return state, times


def bench_config(resolution: int, batch: int, args) -> dict:
    G, S, lpips = models(resolution, args.channel_base, args.channel_max)
    cfg = editgan.EditConfig(steps=1 + args.steps_per_call * (args.warmup + args.steps))
    ws, references, regions, targets = edit_inputs(G, batch, args.region_fraction)
    problems, dilated = editgan.make_problems(ws, references, regions, targets, cfg)
    capacity = int(problems.roi_y.shape[1])

    mesh = parallel.data_mesh(jax.local_devices()[:1])
    program = editgan._batched_steps(cfg, mesh, args.steps_per_call)
    shared = parallel.replicate((G, S, lpips), mesh)
    states = jax.vmap(editgan.init_state)(jnp.asarray(problems.w_start))
    split = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(parallel.DATA_AXIS))
    batched = jax.device_put((problems, states), split)

    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    compiled = jax.jit(program).lower(shared, batched).compile()
    compile_s = time.perf_counter() - start
    memory = xla_memory(compiled)

    feature_dim = S.config.feature_dim
    row = {"resolution": resolution, "batch": batch, "status": "ok", "steps_per_call": args.steps_per_call,
           "compile_s": round(compile_s, 3), **memory,
           "official_feature_stack_bytes": feature_dim * resolution * resolution * 4, "feature_dim": feature_dim,
           "region_pixels": int(dilated[0].sum()), "region_capacity": capacity,
           "seg_tiles": -(-capacity // cfg.tile)}
    reason = run_refusal(row, args)
    if reason:
        print(f"{resolution}x{batch}: compiled, not run: {reason}", file=sys.stderr, flush=True)
        return {**row, "status": "compiled_only", "reason": reason, **measured_peak()}

    problems_d, state = batched
    losses_seen = []

    def call(state):
        new_state, losses = compiled(shared, (problems_d, state))
        losses_seen.append(losses)
        return new_state

    state, warm = time_calls(call, state, args.warmup)
    state, times = time_calls(call, state, args.steps)
    total_calls = args.warmup + args.steps
    steps_done = np.asarray(state.step)
    all_advanced = bool((steps_done == total_calls * args.steps_per_call).all())
    finite = bool(all(np.isfinite(np.asarray(x)).all() for x in losses_seen))
    last = np.asarray(losses_seen[-1])[:, -1]  # [B, 4] losses of the last step
    median = statistics.median(times)
    k = args.steps_per_call
    row.update({
        "steps_timed": args.steps * k, "warmup_calls": args.warmup,
        "warmup_call_s": [round(t, 4) for t in warm], "call_times_s": [round(t, 4) for t in times],
        "s_per_step": round(median / k, 5), "s_per_image_step": round(median / k / batch, 5),
        "image_steps_per_s": round(batch * k / median, 4), **measured_peak(),
        "all_edits_advanced": all_advanced, "losses_finite": finite,
        "last_losses_edit0": dict(zip(editgan.LOSS_NAMES, (round(float(v), 5) for v in last[0]))),
        "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    })
    if not (all_advanced and finite):
        print(f"WARNING {resolution}x{batch}: advanced={all_advanced} finite={finite}", file=sys.stderr)
    if resolution in args.breakdown and batch == 1:
        row["breakdown"] = breakdown(G, S, lpips, problems, cfg, args)
    return row


# ----------------------------------------------------------------------------------------------------------------
# Where the time goes (gradients of partial losses, batch 1)


def partial_loss(part: str, G, S, lpips, w, problem, cfg: editgan.EditConfig):
    """A piece of `editgan.edit_losses` through the same generator pass (`segbranch.layer_features`)."""
    image, feats = segbranch.layer_features(G, w[None])
    if part == "generator":
        return jnp.sum(image) + sum(jnp.sum(f) for f in feats)
    image01 = (image + 1) / 2
    if part == "rgb":
        outside = problem.outside[None, :, :, None]
        masked, reference = image01 * outside, problem.reference[None] * outside
        dist = lpips_model.lpips_distance(lpips, as_rgb(masked), as_rgb(reference), normalize=True)[0]
        return cfg.lpips_weight * dist + cfg.mse_weight * jnp.mean(jnp.square(masked - reference))
    logits = segbranch.pixel_logits(S, tuple(f[0] for f in feats), problem.roi_y, problem.roi_x, image.shape[1],
                                    cfg.feature_mode, tile=cfg.tile)
    log_p = jax.nn.log_softmax(segbranch.mean_logits(logits), axis=-1)
    nll = -jnp.take_along_axis(log_p, problem.roi_label[:, None], axis=-1)[:, 0]
    return jnp.sum(nll * problem.roi_weight) / jnp.maximum(jnp.sum(problem.roi_weight), 1)


def breakdown(G, S, lpips, problems, cfg, args) -> dict:
    out = {}
    one = jax.tree_util.tree_map(lambda a: jnp.asarray(a), problems)
    w = jnp.asarray(problems.w_start)
    for part in ("generator", "rgb", "ce"):
        def grad_fn(G, S, lpips, problems, w, part=part):
            return jax.vmap(jax.grad(lambda w_, p: partial_loss(part, G, S, lpips, w_, p, cfg)),
                            in_axes=(0, 0))(w, problems)
        start = time.perf_counter()
        compiled = jax.jit(grad_fn).lower(G, S, lpips, one, w).compile()
        compile_s = time.perf_counter() - start
        _, warm = time_calls(lambda _: compiled(G, S, lpips, one, w), None, args.warmup)
        _, times = time_calls(lambda _: compiled(G, S, lpips, one, w), None, args.steps)
        out[part] = {"compile_s": round(compile_s, 3), "call_times_s": [round(t, 4) for t in times],
                     "s_per_grad": round(statistics.median(times), 5),
                     "xla_temp_bytes": xla_memory(compiled).get("xla_temp_bytes")}
        print(f"  breakdown {G.config.img_resolution} px {part}: {out[part]['s_per_grad']} s/grad "
              f"(compile {compile_s:.1f} s)", file=sys.stderr, flush=True)
    return out


# ----------------------------------------------------------------------------------------------------------------


def compile_estimate(resolution: int) -> float | None:
    """Compile seconds as the same resolution's last compile, else the largest one's scaled by depth."""
    compiled = [r for r in DONE if "compile_s" in r]
    if not compiled:
        return None
    same_res = [r for r in compiled if r["resolution"] == resolution]
    if same_res:
        return same_res[-1]["compile_s"]
    largest = max(compiled, key=lambda r: r["resolution"] ** 2 * r["batch"])
    return largest["compile_s"] * np.log2(resolution) / np.log2(largest["resolution"])  # ~ layer count


def main(argv=None):
    args = parse_args(argv)
    # Small to large (resolution^2 * batch): the GPU allocator's peak is process-wide and cannot be reset.
    configs = sorted(((r, b) for r in args.resolutions for b in args.batches),
                     key=lambda rb: (rb[0] ** 2 * rb[1], rb[0]))
    rows = DONE
    for resolution, batch in configs:
        name = f"{resolution}x{batch}"
        feature_dim = segbranch.FeatureLayout.of_generator(
            models(resolution, args.channel_base, args.channel_max)[0].config).feature_dim
        skipped = {"resolution": resolution, "batch": batch, "status": "skipped",
                   "official_feature_stack_bytes": feature_dim * resolution * resolution * 4}
        estimate = compile_estimate(resolution)
        if name in args.skip:
            rows.append({**skipped, "reason": "--skip"})
        elif args.max_config_seconds is not None and estimate is not None and estimate > args.max_config_seconds:
            rows.append({**skipped, "estimated_compile_s": round(estimate, 1),
                         "reason": f"estimated compile {estimate:.0f} s > --max-config-seconds "
                                   f"{args.max_config_seconds:.0f}"})
        else:
            print(f"{name}: compiling ...", file=sys.stderr, flush=True)
            rows.append(bench_config(resolution, batch, args))
        row = rows[-1]
        if row["status"] == "ok":
            peak = row.get("peak_bytes_in_use", row.get("host_max_rss_bytes"))
            print(f"{name}: {row['s_per_step']} s/step, {row['s_per_image_step']} s/image-step, compile "
                  f"{row['compile_s']} s, XLA total {gib(row.get('xla_total_bytes'))} (temp "
                  f"{gib(row.get('xla_temp_bytes'))}), peak {gib(peak)}", file=sys.stderr, flush=True)
        elif row["status"] == "skipped":
            print(f"{name}: skipped ({row['reason']})", file=sys.stderr, flush=True)
    report = {
        "benchmark": "EditGAN edit step (jaxgan.edit.editgan._batched_steps on one device), float32, random "
                     "config-F generator, 32-class x 10-model segmentation branch, random LPIPS VGG16",
        "settings": {"steps_timed_calls": args.steps, "warmup_calls": args.warmup,
                     "steps_per_call": args.steps_per_call, "region_fraction": args.region_fraction,
                     "truncation_psi": TRUNCATION_PSI, "num_classes": NUM_CLASSES, "num_models": NUM_MODELS,
                     "channel_base": args.channel_base, "channel_max": args.channel_max,
                     "edit_config": {k: v for k, v in vars(editgan.EditConfig()).items() if k != "steps"},
                     "quick": args.quick, "max_config_seconds": args.max_config_seconds,
                     "max_memory_fraction": args.max_memory_fraction, "breakdown": sorted(args.breakdown),
                     "skip": sorted(args.skip)},
        "machine": machine_info(),
        "results": rows,
    }
    write_report(report, args.out)


if __name__ == "__main__":
    main()
