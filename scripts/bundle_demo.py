"""Install a trained network as jaxgan's bundled demo model (jaxgan/assets/demo/) and write its sample grid.

Takes a `network-KKKKKK/` checkpoint written by `jaxgan train`, keeps its generator only (the demo needs no D),
copies its training record and the run's log summary into jaxgan.json, adds the demo job's settings for this
resolution (`demo` entry, see jaxgan/demo.py), and writes a sample grid (seeds 0-31, psi 0.7, enlarged by a whole
factor) for the README. The old bundle is replaced only when the new one is complete; its encoder (model E, trained
for the old generator by scripts/bundle_encoder.py) is not carried over.

    python scripts/bundle_demo.py /work/runs/faces32/network-000200 --run /work/runs/faces32 \
        --machine "2-core x86-64 CPU" --grid scripts/results/demo_grid.png
"""

import argparse
import json
import shutil
from pathlib import Path

from PIL import Image

from jaxgan.checkpoint import load_checkpoint, save_checkpoint
from jaxgan.demo import BUNDLED_DIR
from jaxgan.train.run import sample_grid

# The demo job, by generator resolution. Drag radii are the DragGAN UI's pixels at 512 px (r1 16 / r2 48 are 1 / 3
# px at 32 px and 2 / 6 px at 64 px). At 32 px the handle sits on the left cheek of seed 0 and moves outwards (the
# face widens).
DEMO_BY_RESOLUTION = {
    32: {"drag": {"seed": 0, "trunc": 0.7, "points": "20,10", "targets": "20,6", "steps": 60, "lr": 0.01,
                  "r1": 16.0, "r2": 48.0, "feature_idx": 2}},
    64: {"drag": {"seed": 0, "trunc": 0.7, "points": "40,24", "targets": "44,18", "steps": 60, "lr": 0.01,
                  "r1": 16.0, "r2": 48.0, "feature_idx": 3}},
}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("network", type=Path)
    p.add_argument("--run", type=Path, help="the run directory (for the log summary)")
    p.add_argument("--machine", required=True, help="what it was trained on, for the record")
    p.add_argument("--grid", type=Path, help="also write a sample grid PNG here")
    p.add_argument("--drag", help="JSON object overriding the demo drag settings")
    args = p.parse_args()

    models, sidecar = load_checkpoint(args.network, ("G",))
    G = models["G"]
    training = dict(sidecar["training"], machine=args.machine)
    if args.run is not None:
        ticks = [json.loads(line) for line in (args.run / "log.jsonl").read_text().splitlines() if line.strip()]
        tick = next(t for t in reversed(ticks) if t["iteration"] <= training["iterations"])
        training["last_tick"] = tick
    res = G.config.img_resolution
    demo = json.loads(json.dumps(DEMO_BY_RESOLUTION[res]))
    if args.drag:
        demo["drag"].update(json.loads(args.drag))
    tmp = BUNDLED_DIR.parent / ".demo.new"
    shutil.rmtree(tmp, ignore_errors=True)
    save_checkpoint(tmp, {"G": G}, {"training": training, "demo": demo,
                                    "note": "jaxgan's bundled demo model: StyleGAN2 trained by jaxgan on toyfaces"})
    shutil.rmtree(BUNDLED_DIR, ignore_errors=True)
    tmp.replace(BUNDLED_DIR)
    size = sum(f.stat().st_size for f in BUNDLED_DIR.rglob("*") if f.is_file())
    print(f"bundled {args.network} -> {BUNDLED_DIR} ({size / 1e6:.2f} MB)")
    if args.grid is not None:
        grid = sample_grid(G, 32, truncation_psi=0.7)
        scale = max(1, 512 // grid.shape[1])
        Image.fromarray(grid).resize((grid.shape[1] * scale, grid.shape[0] * scale), Image.NEAREST).save(args.grid)
        print(f"grid -> {args.grid}")


if __name__ == "__main__":
    main()
