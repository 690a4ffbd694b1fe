"""Benchmark StyleGAN2 training (jaxgan.train.stylegan2): seconds per iteration by phase set and images/s.

An iteration shows `batch_size` real images and runs the phases due (Gmain + Dmain every time, Greg every 4th,
Dreg every 16th), so throughput is reported for the plain iterations, the regularised ones, and their official
mix (16 iterations: 12 plain, 3 with Greg, 1 with both). Compilation (the first iteration) is timed apart.
Faces are rendered up front, so the renderer's time is not included. Writes one JSON object (stdout, `--out`).

    python scripts/bench_train.py --presets toyfaces32,toyfaces64 --iterations 34 --out r.json
"""

import argparse
import dataclasses
import os
import statistics
import time

import jax
import numpy as np

from bench_common import machine_info, write_report
from jaxgan.data import toyfaces
from jaxgan.train.run import PRESETS
from jaxgan.train.stylegan2 import Trainer, init_state


def bench(name: str, iterations: int, batch_size: int | None) -> dict:
    cfg = PRESETS[name] if batch_size is None else dataclasses.replace(PRESETS[name], batch_size=batch_size)
    trainer = Trainer(cfg)
    state = trainer.place(init_state(cfg))
    batches = [toyfaces.render_batch(toyfaces.batch_seeds(0, i, cfg.batch_size), cfg.resolution).images
               for i in range(iterations)]
    times: dict[tuple, list] = {}
    load_before = os.getloadavg()[0]
    for i, batch in enumerate(batches):
        start = time.perf_counter()
        state, _ = trainer.train_step(state, batch)
        jax.block_until_ready(state.G.params)
        times.setdefault(trainer.due(i), []).append(time.perf_counter() - start)
    first = times[trainer.due(0)].pop(0)  # compiles every phase
    medians = {"+".join(k): statistics.median(v) for k, v in times.items() if v}
    plain, greg, full = (medians.get(k) for k in ("Gmain+Dmain", "Gmain+Greg+Dmain", "Gmain+Greg+Dmain+Dreg"))
    mix = None if None in (plain, greg, full) else (12 * plain + 3 * greg + full) / 16
    g_params = sum(x.size for x in jax.tree_util.tree_leaves(state.G.params))
    d_params = sum(x.size for x in jax.tree_util.tree_leaves(state.D.params))
    return {"preset": name, "resolution": cfg.resolution, "batch_size": cfg.batch_size,
            "g_params": int(g_params), "d_params": int(d_params), "first_iteration_s": round(first, 2),
            "median_s_by_phases": {k: round(v, 4) for k, v in medians.items()},
            "images_per_s_plain": round(cfg.batch_size / plain, 2),
            "images_per_s_official_mix": None if mix is None else round(cfg.batch_size / mix, 2),
            "kimg_per_hour_official_mix": None if mix is None else round(3.6 * cfg.batch_size / mix, 1),
            "runs": {"+".join(k): len(v) for k, v in times.items()},
            "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)]}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", default="toyfaces32,toyfaces64")
    p.add_argument("--iterations", type=int, default=34, help="at least 33 to see every phase set twice")
    p.add_argument("--batch-size", type=int, help="override the presets' batch size")
    p.add_argument("--out", help="also write the JSON report here")
    args = p.parse_args()
    rows = [bench(name.strip(), args.iterations, args.batch_size) for name in args.presets.split(",")]
    write_report({"benchmark": "stylegan2 training iterations on toyfaces (float32, all local devices)",
                  "machine": machine_info(), "devices": [str(d) for d in jax.local_devices()],
                  "results": rows}, args.out)


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
