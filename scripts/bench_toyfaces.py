"""Benchmark the toy-face renderer (jaxgan.data.toyfaces): images/s per resolution for one batch size.

Prints one JSON object. Each timed call renders a new batch of seeds (sampling included), as training does. Pin it
to one core to measure what one data-loading process delivers:

    taskset -c 0 python scripts/bench_toyfaces.py --batch-size 64 --repeats 20
"""

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np

from jaxgan.data import toyfaces


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--resolutions", default="32,64,128")
    p.add_argument("--repeats", type=int, default=20, help="timed batches per resolution (after one warm-up)")
    args = p.parse_args()
    results = []
    for res in [int(r) for r in args.resolutions.split(",")]:
        toyfaces.render_batch(np.arange(args.batch_size), res)  # warm-up
        times = []
        for rep in range(args.repeats):
            seeds = toyfaces.batch_seeds(0, rep, args.batch_size)
            start = time.perf_counter()
            toyfaces.render_batch(seeds, res)
            times.append(time.perf_counter() - start)
        results.append({"resolution": res, "batch_size": args.batch_size,
                        "images_per_s_median": round(args.batch_size / statistics.median(times), 1),
                        "images_per_s_best": round(args.batch_size / min(times), 1)})
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(json.dumps({"machine": platform.machine(), "numpy": np.__version__, "cores_usable": cores,
                      "results": results}, indent=1))


if __name__ == "__main__":
    main()
