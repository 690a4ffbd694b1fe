"""Benchmark jaxgan's StyleGAN3 against the official code side by side: the filtered leaky ReLU alone, and the
generator forward (mapping + synthesis) and forward + backward (gradient w.r.t. ws).

With `--official PATH` (a checkout of NVlabs/stylegan3, imported from PATH at run time; torch and scipy are not
jaxgan dependencies, so run from an environment that has them and jaxgan), the official
`training.networks_stylegan3.Generator` is built with `torch.manual_seed(--seed)` and the constructor arguments of
`--cfg` (train.py's stylegan3-t / stylegan3-r, `--cbase` / `--cmax`, num_fp16_res 0), its state dict converted by
`checkpoints_convert` into jaxgan's generator, so both run the same weights; on a CPU the official code runs its
reference ops (`_filtered_lrelu_ref`, `_upfirdn2d_ref`: the CUDA plugins need a GPU). The op rows time one
synthesis layer's filtered_lrelu (its own shape, filters, factors and padding, taken from the generator) on
random input: jaxgan's `jaxgan.ops.filtered_lrelu` against the official `filtered_lrelu(..., impl='ref')`.
Each row alternates the two (jaxgan call, official call, ...) after a warm-up of each, medians of --repeats,
and records the 1-minute load average before and after (rerun rows taken under load), the largest difference and
the machine. Without --official only jaxgan is timed. The official conv2d_gradfix imports `pkg_resources`, which
new setuptools no longer ship: a stand-in with `parse_version` (release numbers as a tuple) is installed for that
import only when missing.

    python scripts/bench_stylegan3.py --official ../stylegan3 --cfg stylegan3-t --resolution 256 --out r.json
"""

import argparse
import importlib.util
import os
import statistics
import sys
import time
import types

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import machine_info, peak_memory, write_report  # noqa: E402

TRUNCATION_PSI = 0.7


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--official", metavar="PATH", help="a NVlabs/stylegan3 checkout to time side by side")
    p.add_argument("--cfg", choices=("stylegan3-t", "stylegan3-r"), default="stylegan3-t")
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--cbase", type=int, default=32768, help="train.py --cbase (doubled for stylegan3-r)")
    p.add_argument("--cmax", type=int, default=512, help="train.py --cmax (doubled for stylegan3-r)")
    p.add_argument("--batch-sizes", default="1,4")
    p.add_argument("--modes", default="forward,backward", help="comma-separated: forward, backward")
    p.add_argument("--op-layers", default="L2,L8,L12", help="layers whose filtered_lrelu is timed alone ('' none)")
    p.add_argument("--layer-memory", action="store_true",
                   help="also each synthesis layer's XLA temporaries, forward and forward+backward, batch 1")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="also write the JSON report here")
    return p.parse_args(argv)


def init_kwargs(args) -> dict:
    """Generator(**kwargs) as train.py builds it for --cfg (mapping depth 2, num_fp16_res 0: float32 as jaxgan)."""
    radial = args.cfg == "stylegan3-r"
    kwargs = {"z_dim": 512, "c_dim": 0, "w_dim": 512, "img_resolution": args.resolution, "img_channels": 3,
              "mapping_kwargs": {"num_layers": 2}, "channel_base": args.cbase * (2 if radial else 1),
              "channel_max": args.cmax * (2 if radial else 1), "num_fp16_res": 0}
    if radial:
        kwargs.update(conv_kernel=1, use_radial_filters=True)
    return kwargs


def _release_tuple(version: str) -> tuple:
    """'2.13.0+cpu' -> (2, 13, 0); '1.11.0a' -> (1, 11, 0): what conv2d_gradfix's version test compares."""
    import re
    return tuple(int(p) for p in re.findall(r"\d+", version.split("+")[0])[:3])


class Official:
    """The official generator (torch imported here only) and its weights converted for jaxgan."""

    def __init__(self, args):
        sys.path.insert(0, os.path.abspath(args.official))
        if importlib.util.find_spec("pkg_resources") is None:  # only `parse_version(torch.__version__)` is used
            sys.modules["pkg_resources"] = types.SimpleNamespace(parse_version=_release_tuple)
        import torch
        from torch_utils.ops import filtered_lrelu
        from training.networks_stylegan3 import Generator

        from checkpoints_convert.stylegan2_pkl import convert_state_dict
        self.torch, self.filtered_lrelu = torch, filtered_lrelu
        torch.manual_seed(args.seed)
        self.net = Generator(**init_kwargs(args)).eval()
        tensors = {k: v.detach().numpy() for k, v in self.net.state_dict().items()}
        self.G = convert_state_dict("Generator", init_kwargs(args), tensors)

    def forward(self, z):
        with self.torch.no_grad():
            return self.net(self.torch.from_numpy(z), None, truncation_psi=TRUNCATION_PSI).numpy()

    def backward(self, ws, cot):
        ws = self.torch.from_numpy(ws).requires_grad_(True)
        (self.net.synthesis(ws) * self.torch.from_numpy(cot)).sum().backward()
        return ws.grad.numpy()

    def op(self, layer_name, x, bias):
        """The layer's filtered_lrelu on x (NCHW) with the given bias (the network's weights stay as they are)."""
        layer = getattr(self.net.synthesis, layer_name)
        with self.torch.no_grad():
            return self.filtered_lrelu.filtered_lrelu(
                self.torch.from_numpy(x), layer.up_filter, layer.down_filter, self.torch.from_numpy(bias),
                layer.up_factor,
                layer.down_factor, layer.padding, gain=1 if layer.is_torgb else np.sqrt(2),
                slope=1 if layer.is_torgb else 0.2, clamp=layer.conv_clamp, impl="ref").numpy()

    def info(self):
        return {"torch": self.torch.__version__, "torch_threads": self.torch.get_num_threads(),
                "what": "NVlabs/stylegan3 training.networks_stylegan3.Generator, eval(), num_fp16_res 0, the "
                        "reference ops (no CUDA plugin on a CPU)"}


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def alternate(args, run_jax, run_official) -> dict:
    """Warm both up, then alternate; medians and load."""
    load_before = os.getloadavg()[0]
    times, official_times = [], []
    for _ in range(args.repeats):
        times.append(timed(run_jax))
        if run_official is not None:
            official_times.append(timed(run_official))
    row = {"median_s": round(statistics.median(times), 5), "times_s": [round(t, 4) for t in times]}
    if official_times:
        o_median = statistics.median(official_times)
        row["official"] = {"median_s": round(o_median, 5), "times_s": [round(t, 4) for t in official_times]}
        row["speedup_vs_official"] = round(o_median / statistics.median(times), 3)
    row["load_avg_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    return row


def generator_row(args, G, official, batch: int, mode: str) -> dict:
    from jaxgan.models import stylegan3
    cfg = G.config
    rng = np.random.RandomState(args.seed + batch)
    z = rng.randn(batch, cfg.z_dim).astype(np.float32)
    if mode == "forward":
        fn, inputs = jax.jit(lambda G, z: stylegan3.generate(G, z, truncation_psi=TRUNCATION_PSI)), (G, z)
    else:
        ws = np.asarray(jax.jit(lambda G, z: stylegan3.mapping(G, z, truncation_psi=TRUNCATION_PSI))(G, z))
        cot = rng.randn(batch, cfg.img_resolution, cfg.img_resolution, cfg.img_channels).astype(np.float32)
        fn = jax.jit(lambda G, ws, cot: jax.grad(lambda w: jnp.vdot(stylegan3.synthesis(G, w), cot))(ws))
        inputs = (G, ws, cot)
    start = time.perf_counter()
    compiled = fn.lower(*inputs).compile()
    compile_s = time.perf_counter() - start
    row = {"what": "generator", "batch": batch, "mode": mode, "compile_s": round(compile_s, 2)}
    memory = compiled.memory_analysis()
    if memory is not None:
        row["xla_temp_bytes"] = int(memory.temp_size_in_bytes)
    run_jax = lambda: jax.block_until_ready(compiled(*inputs))  # noqa: E731
    try:
        ours = np.asarray(run_jax())
    except jax.errors.JaxRuntimeError as e:  # e.g. out of memory: recorded, and the other rows still run
        row["error"] = str(e).splitlines()[0][:200]
        return row
    run_official = None
    if official is not None:
        if mode == "forward":
            run_official = lambda: official.forward(z)  # noqa: E731
            theirs = np.transpose(run_official(), (0, 2, 3, 1))
        else:
            o_cot = np.ascontiguousarray(np.transpose(cot, (0, 3, 1, 2)))
            run_official = lambda: official.backward(ws, o_cot)  # noqa: E731
            theirs = run_official()
        row["max_abs_diff_vs_official"] = float(np.abs(ours - theirs).max())
        row["max_abs_official"] = float(np.abs(theirs).max())
    row.update(alternate(args, run_jax, run_official))
    row["images_per_s"] = round(batch / row["median_s"], 3)
    if "official" in row:
        row["official"]["images_per_s"] = round(batch / row["official"]["median_s"], 3)
    row.update(peak_memory())
    return row


def op_row(args, G, official, prefix: str) -> dict:
    from jaxgan.models import stylegan3
    from jaxgan.ops.filtered_lrelu import filtered_lrelu
    spec = next(s for s in stylegan3.layer_specs(G.config) if s.name.startswith(prefix + "_"))
    layer = G.buffers["synthesis"][spec.name]
    fu = layer["up_filter"][...] if "up_filter" in layer else None
    fd = layer["down_filter"][...] if "down_filter" in layer else None
    bias = np.random.RandomState(args.seed).randn(spec.out_channels).astype(np.float32)
    size = spec.in_size + spec.conv_kernel - 1  # the modulated conv's "full" output
    x = np.random.RandomState(args.seed + 1).randn(1, size, size, spec.out_channels).astype(np.float32)
    gain, slope = (1.0, 1.0) if spec.is_torgb else (float(np.sqrt(2)), 0.2)
    fn = jax.jit(lambda x, b: filtered_lrelu(x, fu, fd, b, spec.up_factor, spec.down_factor, spec.padding,
                                             gain=gain, slope=slope, clamp=G.config.conv_clamp))
    run_jax = lambda: jax.block_until_ready(fn(x, bias))  # noqa: E731
    ours = np.asarray(run_jax())
    row = {"what": "filtered_lrelu", "layer": spec.name, "input": list(x.shape), "up": spec.up_factor,
           "down": spec.down_factor, "up_taps": spec.up_taps, "down_taps": spec.down_taps,
           "radial": spec.down_radial}
    run_official = None
    if official is not None:
        x_nchw = np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2)))
        run_official = lambda: official.op(spec.name, x_nchw, bias)  # noqa: E731
        theirs = np.transpose(run_official(), (0, 2, 3, 1))
        row["max_abs_diff_vs_official"] = float(np.abs(ours - theirs).max())
    row.update(alternate(args, run_jax, run_official))
    return row


def layer_memory_rows(G) -> list[dict]:
    """Per synthesis layer, batch 1: XLA's temporaries (compiled.memory_analysis) of the layer's forward and of
    the gradient of <output, cotangent> w.r.t. its input and w (the cotangent an argument, so that nothing folds
    into constants), to see where forward+backward memory goes."""
    from jaxgan.models import stylegan3
    cfg, module = G.config, G.module()
    rows = []
    for spec in stylegan3.layer_specs(cfg):
        layer = getattr(module.synthesis, spec.name)

        def total(x, w, cot, layer=layer):
            return jnp.vdot(layer(x, w), cot)
        x = jax.ShapeDtypeStruct((1, spec.in_size, spec.in_size, spec.in_channels), jnp.float32)
        w = jax.ShapeDtypeStruct((1, cfg.w_dim), jnp.float32)
        cot = jax.ShapeDtypeStruct((1, spec.out_size, spec.out_size, spec.out_channels), jnp.float32)
        forward = jax.jit(lambda x, w, layer=layer: layer(x, w)).lower(x, w).compile().memory_analysis()
        backward = jax.jit(jax.grad(total, argnums=(0, 1))).lower(x, w, cot).compile().memory_analysis()
        rows.append({"what": "layer_memory", "layer": spec.name, "up": spec.up_factor, "down": spec.down_factor,
                     "up_taps": spec.up_taps, "down_taps": spec.down_taps,
                     "forward_temp_bytes": int(forward.temp_size_in_bytes),
                     "forward_backward_temp_bytes": int(backward.temp_size_in_bytes)})
        print(f"{spec.name}: forward {rows[-1]['forward_temp_bytes'] / 2**20:.0f} MiB, forward+backward "
              f"{rows[-1]['forward_backward_temp_bytes'] / 2**20:.0f} MiB", file=sys.stderr)
    return rows


def main(argv=None):
    args = parse_args(argv)
    official = Official(args) if args.official else None
    if official is not None:
        G = official.G
    else:
        from checkpoints_convert.stylegan3_pkl import generator_config
        from jaxgan.models import stylegan3
        G = stylegan3.init_generator(generator_config(init_kwargs(args)), jax.random.key(args.seed))
    rows = layer_memory_rows(G) if args.layer_memory else []
    for prefix in [p for p in args.op_layers.split(",") if p]:
        rows.append(op_row(args, G, official, prefix))
        print(f"filtered_lrelu {rows[-1]['layer']}: {rows[-1]['median_s']} s"
              + (f", official {rows[-1]['official']['median_s']} s" if "official" in rows[-1] else ""),
              file=sys.stderr)
    for batch in [int(b) for b in args.batch_sizes.split(",") if b]:
        for mode in [m for m in args.modes.split(",") if m]:
            rows.append(generator_row(args, G, official, batch, mode))
            print(f"batch {batch} {mode}: {rows[-1].get('images_per_s', rows[-1].get('error'))} images/s"
                  + (f", official {rows[-1]['official']['images_per_s']}" if "official" in rows[-1] else ""),
                  file=sys.stderr)
    report = {"benchmark": f"stylegan3 ({args.cfg}, {args.resolution} px): filtered_lrelu of single layers, "
                           "generator forward (psi 0.7) and forward+backward (gradient w.r.t. ws)",
              "init_kwargs": init_kwargs(args), "machine": machine_info(), "rows": rows,
              "official": official.info() if official is not None else None}
    write_report(report, args.out)


if __name__ == "__main__":
    main()
