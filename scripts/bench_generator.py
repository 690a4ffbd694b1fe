"""Benchmark StyleGAN2 generation (mapping + synthesis, const noise): images/s and compile time per batch size.

Prints one JSON object. Weights are random (timing does not depend on them); the architecture is set by the flags
or read from a converted checkpoint. Absolute numbers mean something only on a GPU; on CPU they compare code paths.

    python scripts/bench_generator.py --resolution 256 --channel-base 16384 --batch-sizes 1,2,4,8,16,32,64
    python scripts/bench_generator.py --checkpoint ck --batch-sizes 1,8
"""

import argparse
import json
import platform
import statistics
import time

import jax

from jaxgan.checkpoint import load_checkpoint
from jaxgan.models import stylegan2


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help="a converted jaxgan checkpoint (overrides the architecture flags)")
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--channel-base", type=int, default=16384, help="16384: ADA 'auto' below 512 px; 32768: config-F")
    p.add_argument("--channel-max", type=int, default=512)
    p.add_argument("--z-dim", type=int, default=512)
    p.add_argument("--conv-clamp", type=float, default=256)
    p.add_argument("--batch-sizes", default="1,2,4,8,16,32,64")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per batch size (after one warm-up)")
    p.add_argument("--fused-modconv", action="store_true", help="per-sample grouped convolutions")
    p.add_argument("--min-seconds", type=float, default=0.0, help="keep repeating until this much time is spent")
    return p.parse_args()


def build_generator(args):
    if args.checkpoint:
        return load_checkpoint(args.checkpoint, names=("G",))[0]["G"]
    cfg = stylegan2.GeneratorConfig(
        z_dim=args.z_dim, c_dim=0, w_dim=args.z_dim, img_resolution=args.resolution, img_channels=3,
        channels=stylegan2.channels_by_resolution(args.resolution, args.channel_base, args.channel_max),
        conv_clamp=args.conv_clamp)
    return stylegan2.init_generator(cfg, jax.random.key(0))


def main():
    args = parse_args()
    G = build_generator(args)
    cfg = G.config
    fn = jax.jit(lambda G, z: stylegan2.generate(G, z, truncation_psi=0.7, fused_modconv=args.fused_modconv))
    results = []
    for batch in [int(b) for b in args.batch_sizes.split(",")]:
        z = jax.random.normal(jax.random.key(batch), (batch, cfg.z_dim))
        start = time.perf_counter()
        compiled = fn.lower(G, z).compile()
        compile_s = time.perf_counter() - start
        compiled(G, z).block_until_ready()  # warm-up
        times = []
        while len(times) < args.repeats or sum(times) < args.min_seconds:
            start = time.perf_counter()
            compiled(G, z).block_until_ready()
            times.append(time.perf_counter() - start)
        median = statistics.median(times)
        results.append({"batch": batch, "compile_s": round(compile_s, 3), "median_s": round(median, 5),
                        "images_per_s": round(batch / median, 3), "runs": len(times)})
    print(json.dumps({
        "benchmark": "stylegan2 generate (mapping + synthesis, psi 0.7, const noise, float32)",
        "config": {"resolution": cfg.img_resolution, "channels": list(cfg.channels), "z_dim": cfg.z_dim,
                   "conv_clamp": cfg.conv_clamp, "fused_modconv": args.fused_modconv},
        "device": str(jax.devices()[0].device_kind), "backend": jax.default_backend(),
        "device_count": jax.device_count(), "jax": jax.__version__, "host": platform.machine(),
        "results": results,
    }, indent=1))


if __name__ == "__main__":
    main()
