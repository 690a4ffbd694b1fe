"""Benchmark GAN inversion (jaxgan/edit/invert.py): images*steps/s for N images inverted at once.

For each resolution, space and image count N, builds a full-width StyleGAN2 (config F: channel_base 32768,
channel_max 512, 8 mapping layers, conv_clamp 256) and an LPIPS VGG16 with random weights (the speed does not
depend on the values), makes N targets with the generator, and runs `invert.invert` (vmapped over images,
sharded over all local devices, `--steps-per-call` steps per compiled call) for 1 + `--repeats` calls, timing
each call through the `on_progress` callback (every call ends with the losses copied to the host, so calls are
synchronous):

* the first call includes compiling the step (and the per-image init); `compile_s` = first call - median call;
* images*steps/s = N * steps_per_call / median call; steps/s = steps_per_call / median call.

Peak memory: `device.memory_stats()['peak_bytes_in_use']` where the backend has it (GPU), else the process's peak
resident set size; both are process-wide peaks so far, so rows go from small N up.

    python scripts/bench_invert.py                                       # GPU: N = 1..64, 256 and 512 px, w and w+
    python scripts/bench_invert.py --resolutions 64 --images 1,2 --repeats 2 --out r.json   # a quick CPU look
"""

import argparse
import json
import statistics
import time

import jax
import numpy as np

from bench_common import machine_info, peak_memory, write_report
from jaxgan.edit import invert
from jaxgan.models import lpips as lpips_model
from jaxgan.models import stylegan2


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--resolutions", default="256,512", help="generator resolutions, comma-separated")
    p.add_argument("--images", default="1,4,16,64", help="image counts N, comma-separated, small to large")
    p.add_argument("--spaces", default="w,w+", help="w (projector) and/or w+ (EditGAN embedding)")
    p.add_argument("--steps-per-call", type=int, default=10, help="optimisation steps per compiled call")
    p.add_argument("--repeats", type=int, default=3, help="timed calls after the first (compiling) one")
    p.add_argument("--channel-base", type=int, default=32768)
    p.add_argument("--channel-max", type=int, default=512)
    p.add_argument("--out", help="also write the JSON here")
    return p.parse_args(argv)


def random_lpips(key) -> stylegan2.SplitModel:
    """LPIPS-shaped random weights (He-scaled so activations stay finite); the metric's values do not matter here."""
    abstract = lpips_model.abstract_model(lpips_model.LPIPSConfig())
    leaves, treedef = jax.tree_util.tree_flatten(abstract)
    filled = []
    for i, leaf in enumerate(leaves):
        fan_in = int(np.prod(leaf.shape[1:])) if len(leaf.shape) > 1 else 1
        filled.append(jax.random.normal(jax.random.fold_in(key, i), leaf.shape, leaf.dtype) / np.sqrt(fan_in))
    return jax.tree_util.tree_unflatten(treedef, filled)


def bench_row(G, lpips, w_stats, space: str, count: int, args) -> dict:
    cfg_cls = invert.ProjectorConfig if space == "w" else invert.EmbedConfig
    steps = args.steps_per_call * (1 + args.repeats) + (0 if space == "w" else 1)  # w+ makes steps - 1 updates
    z = np.random.RandomState(count).randn(count, G.config.z_dim).astype(np.float32)
    targets = np.asarray(stylegan2.synthesis(G, stylegan2.mapping(G, z, truncation_psi=0.7)))
    marks = []
    start = time.perf_counter()
    invert.invert(G, lpips, targets, space=space, cfg=cfg_cls(steps=steps), key=jax.random.key(0), w_stats=w_stats,
                  steps_per_call=args.steps_per_call, on_progress=lambda k: marks.append(time.perf_counter()))
    calls = np.diff([start] + marks)
    median = statistics.median(calls[1:])
    return {"space": space, "images": count, "steps_per_call": args.steps_per_call,
            "first_call_s": float(calls[0]), "compile_s": float(calls[0] - median), "median_call_s": float(median),
            "steps_per_s": args.steps_per_call / median, "image_steps_per_s": count * args.steps_per_call / median,
            **peak_memory()}


def main(argv=None):
    args = parse_args(argv)
    rows = []
    lpips = random_lpips(jax.random.key(1))
    for resolution in map(int, args.resolutions.split(",")):
        gcfg = stylegan2.GeneratorConfig(
            z_dim=512, c_dim=0, w_dim=512, img_resolution=resolution, img_channels=3, mapping_layers=8,
            channels=stylegan2.channels_by_resolution(resolution, args.channel_base, args.channel_max),
            conv_clamp=256)
        G = stylegan2.init_generator(gcfg, jax.random.key(0))
        w_stats = invert.w_statistics(G, samples=1000)
        for space in args.spaces.split(","):
            for count in map(int, args.images.split(",")):
                row = {"resolution": resolution, **bench_row(G, lpips, w_stats, space, count, args)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    result = {"benchmark": "invert", "machine": machine_info(), "settings": vars(args), "rows": rows}
    write_report(result, args.out)


if __name__ == "__main__":
    main()
