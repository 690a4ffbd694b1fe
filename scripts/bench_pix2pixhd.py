"""Benchmark pix2pixHD inference (jaxgan/models/pix2pixhd.py): images/s and compile time at the released sizes.

Two configurations with random weights (the speed does not depend on them), batch 1 unless --batch says otherwise:

* `512p`: the label2city_512p recipe, GlobalGenerator ngf 64, 4 downsamplings, 9 residual blocks, 512x1024 maps;
* `1024p`: the released label2city_1024p model, LocalEnhancer ngf 32 (global branch ngf 64), 1 local enhancer with
  3 residual blocks, 1024x2048 maps.

Both take 35 Cityscapes labels plus the instance-edge channel (36 inputs). The timed program is what `jaxgan
pix2pixhd` runs per batch: `encode_input` (one-hot, edges) + `generate`, from int32 label and instance ids (a random
map of rectangles), jitted on one device. `compile_s` is `jit(...).lower(...).compile()` alone; then `--warmup`
untimed calls and `--repeats` timed calls, each ended by `block_until_ready`; `median_s` is the median call and
`images_per_s` = batch / median_s. XLA's cost and memory analyses of the compiled program are recorded (`gflops`,
`xla_temp_bytes`), and the process peak (device bytes on GPU, host max RSS on CPU).

Guard for slow machines: after the first configuration has run, a later one is compiled but not run when its
estimated time (its XLA flop count at the measured seconds per flop of the previous one, times warm-up + repeats)
exceeds --max-config-seconds; it stays in the report with status `compiled_only` and the estimate. `--skip NAME`
leaves a configuration out entirely (status `skipped`, with `--skip-reason`).

    python scripts/bench_pix2pixhd.py --out r.json                          # GPU: both configurations
    python scripts/bench_pix2pixhd.py --configs 512p --repeats 1 --warmup 0 # a quick CPU run
"""

import argparse
import statistics
import sys
import time

import jax
import numpy as np

from bench_common import machine_info, peak_memory, write_report
from jaxgan.models import pix2pixhd

LABEL_NC = 35
CONFIGS = {
    "512p": (pix2pixhd.Pix2PixHDGeneratorConfig(input_nc=36, netG="global", ngf=64, n_downsample_global=4,
                                                n_blocks_global=9), (512, 1024)),
    "1024p": (pix2pixhd.Pix2PixHDGeneratorConfig(input_nc=36, netG="local", ngf=32, n_downsample_global=4,
                                                 n_blocks_global=9, n_local_enhancers=1, n_blocks_local=3),
              (1024, 2048)),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", default="512p,1024p", help="comma-separated, from: " + ", ".join(CONFIGS))
    p.add_argument("--batch", type=int, default=1, help="maps per call (default 1, as the official test.py)")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per configuration")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls after compiling")
    p.add_argument("--max-config-seconds", type=float, default=None,
                   help="compile only a configuration whose estimated run time exceeds this (default: no limit)")
    p.add_argument("--skip", default="", help="configurations to leave out, comma-separated")
    p.add_argument("--skip-reason", default="", help="why (recorded in the report)")
    p.add_argument("--out", help="also write the JSON report here")
    args = p.parse_args(argv)
    args.configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    args.skip = {c.strip() for c in args.skip.split(",") if c.strip()}
    unknown = [c for c in args.configs + sorted(args.skip) if c not in CONFIGS]
    if unknown:
        p.error(f"unknown configurations {unknown}; choose from {list(CONFIGS)}")
    return args


def random_maps(batch: int, size: tuple[int, int], seed: int = 0):
    """int32 label ids (35 classes) and instance ids: rectangles of random classes, one instance each."""
    rng = np.random.default_rng(seed)
    h, w = size
    labels = np.full((batch, h, w), 7, np.int32)  # road
    inst = np.full((batch, h, w), 7, np.int32)
    for b in range(batch):
        for k in range(40):
            y, x = rng.integers(0, h - 16), rng.integers(0, w - 16)
            dy, dx = rng.integers(8, h // 4), rng.integers(8, w // 4)
            label = int(rng.integers(0, LABEL_NC))
            labels[b, y:y + dy, x:x + dx] = label
            inst[b, y:y + dy, x:x + dx] = label * 1000 + k if label >= 24 else label
    return labels, inst


def _program(G, labels, inst):
    return pix2pixhd.generate(G, pix2pixhd.encode_input(labels, inst, LABEL_NC))


def _analyses(compiled) -> dict:
    out = {}
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    if cost and "flops" in cost:
        out["gflops"] = round(float(cost["flops"]) / 1e9, 2)
    memory = compiled.memory_analysis()
    if memory is not None:
        out["xla_temp_bytes"] = int(memory.temp_size_in_bytes)
        out["xla_argument_bytes"] = int(memory.argument_size_in_bytes)
        out["xla_output_bytes"] = int(memory.output_size_in_bytes)
    return out


def run_config(name: str, args, seconds_per_flop):
    cfg, size = CONFIGS[name]
    G = pix2pixhd.init_generator(cfg, jax.random.key(0))
    labels, inst = random_maps(args.batch, size)
    entry = {"config": name, "size": list(size), "batch": args.batch, "generator": {
        "netG": cfg.netG, "ngf": cfg.ngf, "n_downsample_global": cfg.n_downsample_global,
        "n_blocks_global": cfg.n_blocks_global, "n_local_enhancers": cfg.num_local_enhancers,
        "n_blocks_local": cfg.n_blocks_local if cfg.netG == "local" else None, "input_nc": cfg.input_nc,
        "parameters": int(sum(np.prod(x.shape) for x in jax.tree_util.tree_leaves(G.params)))}}
    start = time.perf_counter()
    compiled = jax.jit(_program).lower(G, labels, inst).compile()
    entry["compile_s"] = round(time.perf_counter() - start, 3)
    entry.update(_analyses(compiled))
    calls = args.warmup + args.repeats
    if seconds_per_flop is not None and "gflops" in entry:
        estimate = entry["gflops"] * 1e9 * seconds_per_flop * calls
        entry["estimated_run_s"] = round(estimate, 1)
        if args.max_config_seconds is not None and estimate > args.max_config_seconds:
            entry.update(status="compiled_only", reason=f"estimated {estimate:.0f} s for {calls} calls > "
                                                          f"--max-config-seconds {args.max_config_seconds:g}")
            return entry, None
    for _ in range(args.warmup):
        jax.block_until_ready(compiled(G, labels, inst))
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        out = jax.block_until_ready(compiled(G, labels, inst))
        times.append(time.perf_counter() - start)
    assert out.shape == (args.batch, *size, 3) and bool(np.isfinite(np.asarray(out)).all())
    median = statistics.median(times)
    entry.update(status="ok", median_s=round(median, 4), images_per_s=round(args.batch / median, 4),
                 times_s=[round(t, 4) for t in times], **peak_memory())
    return entry, (median / (entry["gflops"] * 1e9) if "gflops" in entry else None)


def main(argv=None):
    args = parse_args(argv)
    results, seconds_per_flop = [], None
    for name in args.configs:
        if name in args.skip:
            results.append({"config": name, "size": list(CONFIGS[name][1]), "status": "skipped",
                            "reason": args.skip_reason or "--skip"})
            continue
        entry, measured = run_config(name, args, seconds_per_flop)
        seconds_per_flop = measured or seconds_per_flop
        results.append(entry)
        print(f"{name}: {entry['status']}", file=sys.stderr)
    write_report({
        "benchmark": "pix2pixHD inference (encode_input + generate from label and instance ids), float32, random "
                     "weights, one device",
        "command": "python scripts/bench_pix2pixhd.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "settings": {"batch": args.batch, "repeats": args.repeats, "warmup": args.warmup, "label_nc": LABEL_NC,
                     "max_config_seconds": args.max_config_seconds},
        "machine": machine_info(), "results": results}, args.out)


if __name__ == "__main__":
    main()
