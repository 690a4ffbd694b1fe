"""Per-op timings of the hot ops, per implementation: XLA (the default), Pallas (pallas_kernels/) and, for the FIR
ops, the step-by-step reference (zero-stuff + depthwise convolution, the XLA formulation before the polyphase one).

Writes one JSON object (stdout, and `--out`); each row records the shapes of the op's array inputs (`shape`) and
outputs (`output_shape`), from which the FIR and epilogue rows' achieved bandwidth follows (scripts/results/README.md).
Shapes follow one synthesis layer at `--resolution` with `--channels` channels and batch `--batch` (the layer
shapes where the generator spends its time, by `bench_generator.py`'s analytic FLOP count):

* upfirdn2d_up2: `upsample2d` [1,3,3,1] of [N, R/2, R/2, C] (the skip architecture's image upsampling, and every
  1x1 up-conv);
* upfirdn2d_down2: `downsample2d` of [N, R, R, C] (the discriminator);
* epilogue_up: an up-layer's epilogue on the transposed conv's [N, R+1, R+1, C]: FIR (pad 1, gain 4), demodulation,
  const noise, bias, lrelu * sqrt(2), clamp 256;
* epilogue_plain: the same without the FIR (a 3x3 layer without upsampling; bias_act plus noise);
* modconv_unfused / modconv_fused: the 3x3 modulated convolution C -> C at R (XLA only: there is no conv kernel);
* conv3x3_nhwc / conv3x3_nchw: the plain 3x3 convolution in both layouts (XLA only), the layout question;
* tracking: DragGAN's nearest-neighbour search, `--sessions` x `--points` points, radius round(12 / 512 * R),
  on [R, R, --feature-channels] maps.

Each is timed forward and, where it is differentiable, forward+backward (value and gradient of <out, g> with
respect to the op's input, g passed as an argument): `--repeats` calls
after a warm-up, median reported, every call ended by `block_until_ready`. **On CPU, "pallas" is interpret mode:
correct, but its time is meaningless for speed** (the report says so); `--pallas-repeats` bounds it.

    python scripts/bench_ops.py --resolution 256 --channels 64 --batch 4 --out r.json
    python scripts/bench_ops.py --implementations xla,pallas --resolution 1024 --channels 32 --batch 8   # on a GPU
"""

import argparse
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from bench_common import machine_info, write_report
from jaxgan.ops.epilogue import fused_epilogue
from jaxgan.ops.modulated_conv2d import modulated_conv2d
from jaxgan.ops.point_tracking import nearest_in_window
from jaxgan.ops.upfirdn2d import downsample2d, setup_filter, upfirdn2d_reference, upsample2d

FIR = setup_filter([1, 3, 3, 1])


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--implementations", default="xla,pallas,reference",
                   help="comma-separated: xla, pallas, reference (the depthwise-conv upfirdn2d; FIR ops only)")
    p.add_argument("--ops", default="all", help="comma-separated op names (default all)")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--pallas-repeats", type=int, default=None,
                   help="repeats for pallas (default: --repeats on a GPU, 1 on CPU where it is interpret mode)")
    p.add_argument("--sessions", type=int, default=16)
    p.add_argument("--points", type=int, default=8)
    p.add_argument("--feature-channels", type=int, default=128)
    p.add_argument("--out", help="also write the JSON report here")
    return p.parse_args(argv)


def make_ops(args):
    """{name: (build(implementation) -> (fn, inputs) or None, differentiable)}."""
    n, r, c = args.batch, args.resolution, args.channels
    k = jax.random.split(jax.random.key(0), 8)
    half = jax.random.normal(k[0], (n, r // 2, r // 2, c))
    full = jax.random.normal(k[1], (n, r, r, c))
    convout = 10 * jax.random.normal(k[2], (n, r + 1, r + 1, c))
    bias, dcoefs = jax.random.normal(k[3], (c,)), jax.random.uniform(k[4], (n, c))
    noise = jax.random.normal(k[5], (1, r, r, 1))
    weight, styles = jax.random.normal(k[6], (c, c, 3, 3)), jax.random.normal(k[7], (n, c)) + 1
    epi = dict(noise=noise, act="lrelu", clamp=256.0)

    def fir_op(fn_xla, fn_ref, x):
        def build(impl):
            if impl == "reference":
                return fn_ref, (x,)
            return (lambda x: fn_xla(x, impl)), (x,)
        return build

    def xla_only(fn, *inputs):
        return lambda impl: (fn, inputs) if impl == "xla" else None

    radius = round(12 / 512 * r)
    feat = jax.random.normal(k[0], (args.sessions, r, r, args.feature_channels))
    points = jax.random.randint(k[1], (args.sessions, args.points, 2), 0, r)
    refs = jax.random.normal(k[2], (args.sessions, args.points, args.feature_channels))

    def tracking(impl):
        if impl == "reference":
            return None
        fn = jax.vmap(lambda f, rf, p: nearest_in_window(f, rf, p, radius, implementation=impl))
        return fn, (feat, refs, points)

    def conv(layout):
        x = full if layout == "NHWC" else jnp.transpose(full, (0, 3, 1, 2))
        dims = (layout, "OIHW", layout)
        return lambda x, w: lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=dims), x

    nhwc, x_nhwc = conv("NHWC")
    nchw, x_nchw = conv("NCHW")
    return {
        "upfirdn2d_up2": (fir_op(lambda x, i: upsample2d(x, FIR, implementation=i),
                                 lambda x: upfirdn2d_reference(x, FIR, up=2, padding=(2, 1, 2, 1), gain=4), half), True),
        "upfirdn2d_down2": (fir_op(lambda x, i: downsample2d(x, FIR, implementation=i),
                                   lambda x: upfirdn2d_reference(x, FIR, down=2, padding=1), full), True),
        "epilogue_up": (lambda impl: None if impl == "reference" else (
            lambda x: fused_epilogue(x, bias, dcoefs=dcoefs, resample_filter=FIR, fir_padding=1, fir_gain=4,
                                     implementation=impl, **epi), (convout,)), True),
        "epilogue_plain": (lambda impl: None if impl == "reference" else (
            lambda x: fused_epilogue(x, bias, implementation=impl, **epi), (full,)), True),
        "modconv_unfused": (xla_only(lambda x: modulated_conv2d(x, weight, styles, padding=1), full), True),
        "modconv_fused": (xla_only(lambda x: modulated_conv2d(x, weight, styles, padding=1, fused=True), full), True),
        "conv3x3_nhwc": (xla_only(lambda x: nhwc(x, weight), x_nhwc), True),
        "conv3x3_nchw": (xla_only(lambda x: nchw(x, weight), x_nchw), True),
        "tracking": (tracking, False),
    }


def median_time(fn, inputs, repeats: int) -> tuple[float, float]:
    """(compile + first call seconds, median seconds of `repeats` further calls)."""
    start = time.perf_counter()
    jax.block_until_ready(fn(*inputs))
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*inputs))
        times.append(time.perf_counter() - start)
    return first, statistics.median(times)


def main(argv=None):
    args = parse_args(argv)
    on_gpu = jax.default_backend() == "gpu"
    impls = [i.strip() for i in args.implementations.split(",") if i.strip()]
    ops = make_ops(args)
    wanted = list(ops) if args.ops == "all" else [o.strip() for o in args.ops.split(",")]
    pallas_repeats = args.pallas_repeats if args.pallas_repeats is not None else (args.repeats if on_gpu else 1)
    rows = []
    for name in wanted:
        build, differentiable = ops[name]
        for impl in impls:
            built = build(impl)
            if built is None:
                continue
            fn, inputs = built
            repeats = pallas_repeats if impl == "pallas" else args.repeats
            row = {"op": name, "implementation": impl, "shape": [list(np.shape(x)) for x in inputs],
                   "output_shape": [list(o.shape) for o in jax.tree_util.tree_leaves(jax.eval_shape(fn, *inputs))]}
            if impl == "pallas" and not on_gpu:
                row["note"] = "interpret mode on CPU: correct, meaningless for speed"
            first, med = median_time(jax.jit(fn), inputs, repeats)
            row.update({"forward_first_call_s": round(first, 4), "forward_median_ms": round(1e3 * med, 3)})
            if differentiable:
                out = jax.eval_shape(fn, *inputs)
                cot = jax.random.normal(jax.random.key(1), out.shape, out.dtype)
                # value_and_grad with g as an argument: the forward is needed, and XLA cannot fold the backward
                # of a linear op into a constant.
                grad = jax.jit(lambda g, x, *rest: jax.value_and_grad(
                    lambda x: jnp.vdot(fn(x, *rest), g))(x))
                first, med = median_time(grad, (cot, *inputs), repeats)
                row.update({"backward_first_call_s": round(first, 4), "forward_backward_median_ms": round(1e3 * med, 3)})
            row["repeats"] = repeats
            row["load_avg_1m"] = round(os.getloadavg()[0], 2)
            rows.append(row)
            print(f"{name} {impl}: {row.get('forward_median_ms')} ms forward, "
                  f"{row.get('forward_backward_median_ms', '-')} ms forward+backward", file=sys.stderr)
    write_report({"benchmark": "per-op timings (median ms), xla vs pallas (vs the depthwise-conv FIR reference)",
                  "config": {"resolution": args.resolution, "channels": args.channels, "batch": args.batch,
                             "sessions": args.sessions, "points": args.points,
                             "feature_channels": args.feature_channels, "xla_flags": os.environ.get("XLA_FLAGS", "")},
                  "machine": machine_info(), "results": rows}, args.out)


if __name__ == "__main__":
    main()
