"""Benchmark StyleGAN2 generation: images/s for forward and forward+backward, per batch size, optionally side by
side with the official PyTorch code on the same weights.

Writes one JSON object (stdout, and `--out`). Weights are random (timing does not depend on them); the architecture
is set by the flags or read from a converted checkpoint. Absolute numbers mean something only on the machine they
were taken on; on a shared CPU repeat them and compare medians.

Modes (`--modes`):

* forward: `generate` (mapping + synthesis, truncation 0.7, const noise), as `generate.py` does;
* backward: synthesis forward + backward, the gradient of <images, g> with respect to ws for a fixed random g
  (what inversion and DragGAN differentiate; no parameter gradients).

`--implementation xla|pallas` traces everything under `jaxgan.ops.implementation.use_implementation` (Pallas on
CPU means interpret mode: correct but meaningless for speed). `--fused-modconv` uses per-sample grouped
convolutions instead of the shared-weight form.

With `--official PATH` (a checkout of NVlabs/stylegan2-ada-pytorch, imported from PATH at run time; torch is not
a jaxgan dependency, so run from an environment that has both), the official `training.networks.Generator` is
built with the same constructor arguments (num_fp16_res 0: float32 like jaxgan) and `torch.manual_seed(--seed)`,
its state dict is exported and converted with `checkpoints_convert.stylegan2_pkl.convert_state_dict` (so both run
the same weights), and for every batch size and mode the two are timed alternately in this one process, each
after its own warm-up: jaxgan call, official call, jaxgan call, ... . The official forward runs under
`torch.no_grad()` in eval mode (so its blocks take the fused grouped-conv path, as `generate.py`); its backward
differentiates only ws, like jaxgan's. The first batch's images (and gradients) of both are compared as a check.

    python scripts/bench_generator.py --resolution 256 --channel-base 16384 --batch-sizes 1,8,32
    python scripts/bench_generator.py --resolution 1024 --batch-sizes 1 --modes forward,backward --out r.json
    python scripts/bench_generator.py --official ../stylegan2-ada-pytorch --batch-sizes 1,8 --repeats 5
    python scripts/bench_generator.py --checkpoint ck --batch-sizes 1,8 --implementation pallas   # on a GPU
"""

import argparse
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from bench_common import machine_info, peak_memory, write_report
from jaxgan.checkpoint import load_checkpoint
from jaxgan.models import stylegan2
from jaxgan.ops.implementation import use_implementation

TRUNCATION_PSI = 0.7


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help="a converted jaxgan checkpoint (overrides the architecture flags)")
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--channel-base", type=int, default=16384, help="16384: ADA 'auto' below 512 px; 32768: config-F")
    p.add_argument("--channel-max", type=int, default=512)
    p.add_argument("--z-dim", type=int, default=512)
    p.add_argument("--mapping-layers", type=int, default=8)
    p.add_argument("--conv-clamp", type=float, default=256)
    p.add_argument("--batch-sizes", default="1,8,32")
    p.add_argument("--modes", default="forward", help="comma-separated: forward, backward (default forward)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per batch size and mode (after one warm-up)")
    p.add_argument("--min-seconds", type=float, default=0.0, help="keep repeating until this much time is spent")
    p.add_argument("--fused-modconv", action="store_true", help="per-sample grouped convolutions")
    p.add_argument("--implementation", choices=("xla", "pallas"), default="xla",
                   help="hot-op implementation (jaxgan/ops/implementation.py); pallas on CPU = interpret mode")
    p.add_argument("--official", metavar="PATH", help="a stylegan2-ada-pytorch checkout to time side by side")
    p.add_argument("--seed", type=int, default=0, help="weights (torch.manual_seed / jax key) and inputs")
    p.add_argument("--out", help="also write the JSON report here")
    args = p.parse_args(argv)
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not args.modes or set(args.modes) - {"forward", "backward"}:
        p.error(f"--modes takes forward and/or backward, got {args.modes}")
    if args.official and args.checkpoint:
        p.error("--official builds its own weights; it cannot be combined with --checkpoint")
    return args


def init_kwargs(args) -> dict:
    """The official Generator's constructor arguments (also what a network pickle stores as init_kwargs)."""
    return dict(z_dim=args.z_dim, c_dim=0, w_dim=args.z_dim, img_resolution=args.resolution, img_channels=3,
                mapping_kwargs=dict(num_layers=args.mapping_layers),
                synthesis_kwargs=dict(channel_base=args.channel_base, channel_max=args.channel_max, num_fp16_res=0,
                                      conv_clamp=args.conv_clamp))


def build_generator(args):
    if args.checkpoint:
        return load_checkpoint(args.checkpoint, names=("G",))[0]["G"]
    cfg = stylegan2.GeneratorConfig(
        z_dim=args.z_dim, c_dim=0, w_dim=args.z_dim, img_resolution=args.resolution, img_channels=3,
        channels=stylegan2.channels_by_resolution(args.resolution, args.channel_base, args.channel_max),
        mapping_layers=args.mapping_layers, conv_clamp=args.conv_clamp)
    return stylegan2.init_generator(cfg, jax.random.key(args.seed))


def analytic_flops(cfg) -> dict:
    """FLOPs (2 x multiply-adds) per image of the forward pass, per op class (counted from the layer shapes of
    stylegan2-ada-pytorch `training/networks.py`):

    per synthesis block at resolution R with C_in -> C channels: the up-layer's transposed 3x3 conv
    (R/2)^2 * C_in * C * 9 MACs (each input pixel meets 9 taps), its 4x4 FIR on the dense output R^2 * C * 16,
    the 3x3 conv R^2 * C^2 * 9 (the 4x4 block has only this one), ToRGB R^2 * C * 3, the image upsampling
    R^2 * 3 * 4 (polyphase); plus affines, weight modulation / demodulation (O * I * 9 per layer and sample) and
    the mapping MLP. Elementwise passes (bias, activation, noise) are not counted. The forward+backward of this
    benchmark (gradient w.r.t. ws only, no weight gradients) costs about twice the forward.
    """
    res = cfg.block_resolutions
    chans = dict(zip(res, cfg.channels))
    w_dim, rgb = cfg.w_dim, cfg.img_channels
    macs = dict(mapping=cfg.mapping_layers * w_dim * w_dim, conv3x3=0, conv_transpose=0, fir=0, torgb=0,
                affine=0, modulation=0)
    for r in res:
        c = chans[r]
        if r > res[0]:
            c_in = chans[r // 2]
            macs["conv_transpose"] += (r // 2) ** 2 * c_in * c * 9
            macs["fir"] += r * r * c * 16 + r * r * rgb * 4
            macs["affine"] += w_dim * c_in
            macs["modulation"] += 2 * c * c_in * 9
        macs["conv3x3"] += r * r * c * c * 9
        macs["affine"] += w_dim * (c + c)  # conv1's and torgb's affines
        macs["modulation"] += 2 * c * c * 9
        macs["torgb"] += r * r * c * rgb
    flops = {k: 2 * v for k, v in macs.items()}
    return {"total_gflop": round(sum(flops.values()) / 1e9, 3),
            "by_op_gflop": {k: round(v / 1e9, 4) for k, v in flops.items()}}


# ----------------------------------------------------------------------------------------------------------------
# The official generator (torch imported only under --official)


class Official:
    """The official Generator with random weights, and jaxgan's conversion of the same weights."""

    def __init__(self, args):
        sys.path.insert(0, os.path.abspath(args.official))
        try:
            import torch
            from training import networks
        except ImportError as e:
            raise SystemExit(f"--official needs torch and a stylegan2-ada-pytorch checkout at {args.official} "
                             f"(run from an environment with torch and jaxgan): {e}") from None
        from checkpoints_convert.stylegan2_pkl import convert_state_dict
        self.torch = torch
        torch.manual_seed(args.seed)
        self.net = networks.Generator(**init_kwargs(args)).eval().requires_grad_(False)
        tensors = {k: v.detach().numpy() for k, v in self.net.state_dict().items()}
        self.G = convert_state_dict("Generator", init_kwargs(args), tensors)

    def forward(self, z):
        with self.torch.no_grad():
            return self.net(self.torch.from_numpy(z), None, truncation_psi=TRUNCATION_PSI, noise_mode="const")

    def backward(self, ws, cot):
        ws = self.torch.from_numpy(ws).requires_grad_(True)
        img = self.net.synthesis(ws, noise_mode="const")
        img.backward(self.torch.from_numpy(cot))
        return ws.grad

    def info(self) -> dict:
        return {"torch": self.torch.__version__, "torch_threads": self.torch.get_num_threads(),
                "what": "stylegan2-ada-pytorch training.networks.Generator, eval(), num_fp16_res 0, CPU reference "
                        "ops (its CUDA plugins do not run on CPU)"}


# ----------------------------------------------------------------------------------------------------------------


def jaxgan_fns(args, G, batch: int, mode: str):
    """(compiled function, its inputs as a tuple, a numpy view of what it returns) for one batch size and mode."""
    cfg = G.config
    rng = np.random.RandomState(args.seed + batch)
    z = rng.randn(batch, cfg.z_dim).astype(np.float32)
    if mode == "forward":
        fn = jax.jit(lambda G, z: stylegan2.generate(G, z, truncation_psi=TRUNCATION_PSI,
                                                     fused_modconv=args.fused_modconv))
        inputs = (G, jnp.asarray(z))
    else:
        ws = np.asarray(stylegan2.mapping(G, z, truncation_psi=TRUNCATION_PSI))
        cot = rng.randn(batch, cfg.img_resolution, cfg.img_resolution, cfg.img_channels).astype(np.float32)

        def grad_ws(G, ws, cot):
            return jax.grad(lambda w: jnp.vdot(stylegan2.synthesis(G, w, fused_modconv=args.fused_modconv), cot))(ws)
        fn = jax.jit(grad_ws)
        inputs = (G, jnp.asarray(ws), jnp.asarray(cot))
    with use_implementation(args.implementation):
        start = time.perf_counter()
        compiled = fn.lower(*inputs).compile()
        compile_s = time.perf_counter() - start
    return compiled, inputs, compile_s


def official_inputs(inputs, mode):
    """The same inputs as numpy, in the official layout (NCHW images / cotangents)."""
    if mode == "forward":
        return (np.array(inputs[1]),)
    return np.array(inputs[1]), np.ascontiguousarray(np.transpose(np.asarray(inputs[2]), (0, 3, 1, 2)))


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_row(args, G, official, batch: int, mode: str, gflop_per_image: float) -> dict:
    load_before = os.getloadavg()[0]
    compiled, inputs, compile_s = jaxgan_fns(args, G, batch, mode)
    run_jax = lambda: jax.block_until_ready(compiled(*inputs))  # noqa: E731
    first = np.asarray(run_jax())  # warm-up
    row = {"batch": batch, "mode": mode, "compile_s": round(compile_s, 3)}
    run_official = None
    if official is not None:
        o_inputs = official_inputs(inputs, mode)
        run_official = (lambda: official.forward(*o_inputs)) if mode == "forward" else (
            lambda: official.backward(*o_inputs))
        theirs = run_official().numpy()  # warm-up, and the check
        if mode == "forward":
            theirs = np.transpose(theirs, (0, 2, 3, 1))
        row["max_abs_diff_vs_official"] = float(np.abs(first - theirs).max())
        row["max_abs_official"] = float(np.abs(theirs).max())
    times, official_times = [], []
    while len(times) < args.repeats or sum(times) < args.min_seconds:
        times.append(timed(run_jax))
        if run_official is not None:
            official_times.append(timed(run_official))
    median = statistics.median(times)
    work = gflop_per_image * batch * (1 if mode == "forward" else 2)
    row.update({"median_s": round(median, 5), "images_per_s": round(batch / median, 3), "runs": len(times),
                "times_s": [round(t, 4) for t in times], "analytic_gflop_per_s": round(work / median, 2)})
    if official_times:
        o_median = statistics.median(official_times)
        row["official"] = {"median_s": round(o_median, 5), "images_per_s": round(batch / o_median, 3),
                           "times_s": [round(t, 4) for t in official_times]}
        row["speedup_vs_official"] = round(o_median / median, 3)
    row["load_avg_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    row.update(peak_memory())
    return row


def main(argv=None):
    args = parse_args(argv)
    official = Official(args) if args.official else None
    G = official.G if official is not None else build_generator(args)
    cfg = G.config
    if args.implementation == "pallas" and jax.default_backend() != "gpu":
        print("note: --implementation pallas on CPU runs the kernels in interpret mode (meaningless for speed)",
              file=sys.stderr)
    flops = analytic_flops(cfg)
    rows = []
    for batch in [int(b) for b in args.batch_sizes.split(",")]:
        for mode in args.modes:
            row = bench_row(args, G, official, batch, mode, flops["total_gflop"])
            rows.append(row)
            print(f"batch {batch} {mode}: {row['images_per_s']} images/s"
                  + (f", official {row['official']['images_per_s']}" if "official" in row else ""), file=sys.stderr)
    report = {
        "benchmark": "stylegan2 generator: forward (mapping + synthesis, psi 0.7, const noise) and forward+backward "
                     "(synthesis, gradient w.r.t. ws), float32",
        "config": {"resolution": cfg.img_resolution, "channels": list(cfg.channels), "z_dim": cfg.z_dim,
                   "mapping_layers": cfg.mapping_layers, "conv_clamp": cfg.conv_clamp,
                   "fused_modconv": args.fused_modconv, "implementation": args.implementation,
                   "xla_flags": os.environ.get("XLA_FLAGS", "")},
        "analytic_flops_per_image_forward": flops,
        "machine": machine_info(),
        "official": official.info() if official is not None else None,
        "results": rows,
    }
    write_report(report, args.out)


if __name__ == "__main__":
    main()
