"""Add a trained EditGAN encoder to jaxgan's bundled demo checkpoint (jaxgan/assets/demo/, model E), measured first.

Takes the run directory of `jaxgan train-encoder demo --out RUN ...` (its `encoder/` checkpoint, `training.json`
and `log.jsonl`), measures the encoder on held-out toyfaces (stream `--heldout-stream`, never used for training:
`toyfaces.batch_seeds(stream, 0, N)`), each image alone with the running BatchNorm statistics (a single 32 px image
has one value per channel in its last map, so batch statistics are undefined), and writes the numbers to `--report`:
PSNR (on [0, 1] images, the reconstruction clipped to [-1, 1] as its PNG) and, with `--lpips`, LPIPS (vgg), for the
encoder's W+, for the mean face (the generator's w_avg on every layer) as the baseline an encoder must beat, and
for the W+ embedding started from the encoder (`--embed-steps`, as `jaxgan invert demo face.png --space w+
--encoder demo`). It then rewrites the bundle as G and E, with the encoder's record (`encoder`: its BatchNorm mode,
training settings, the held-out numbers) in jaxgan.json; the old bundle is replaced only when the new one is
complete.

    python scripts/bundle_encoder.py RUN --lpips LPIPS_DIR --machine "2-core x86-64 CPU" \
        --report scripts/results/demo_encoder.json --dry        # measure
    python scripts/bundle_encoder.py RUN --machine - --report scripts/results/demo_encoder.json --measured  # install
"""

import argparse
import json
import shutil
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from jaxgan.checkpoint import load_checkpoint, load_model, read_sidecar, save_checkpoint
from jaxgan.data import toyfaces
from jaxgan.demo import BUNDLED_DIR
from jaxgan.edit import invert
from jaxgan.models import encoder as encoder_model
from jaxgan.models import lpips as lpips_model
from jaxgan.models import stylegan2

BATCH_NORM = "running"


def reconstruction(G, ws, targets, lpips) -> dict:
    images = jnp.clip(stylegan2.synthesis(G, jnp.asarray(ws), noise_mode="const"), -1, 1)
    mse = np.asarray(jnp.mean(jnp.square((images - targets) / 2), axis=(1, 2, 3)))
    out = {"psnr": float(np.mean(-10 * np.log10(np.maximum(mse, 1e-12)))), "mse": float(np.mean(mse))}
    if lpips is not None:
        out["lpips"] = float(np.mean(np.asarray(lpips_model.lpips_distance(lpips, images, targets))))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="the train-encoder run directory")
    p.add_argument("--machine", required=True, help="what it was trained on, for the record")
    p.add_argument("--lpips", type=Path, help="a jaxgan LPIPS (vgg) checkpoint for the LPIPS numbers")
    p.add_argument("--heldout", type=int, default=64, help="held-out faces")
    p.add_argument("--heldout-stream", type=int, default=2, help="the toyfaces stream they come from")
    p.add_argument("--embed-steps", type=int, default=100, help="W+ embedding steps from the encoder (0: skip)")
    p.add_argument("--report", type=Path, required=True, help="the JSON of the held-out numbers")
    p.add_argument("--dry", action="store_true", help="measure and report only; leave the bundle as it is")
    p.add_argument("--measured", action="store_true",
                   help="install without measuring again: --report is an earlier --dry run's report of this run")
    args = p.parse_args()
    if args.measured:
        record = json.loads(args.report.read_text())
        if record["settings"] != json.loads((args.run / "training.json").read_text()):
            raise SystemExit(f"{args.report} was measured on another run than {args.run}")
        install(load_model(args.run / "encoder", "editgan-encoder"), record)
        return

    models, sidecar = load_checkpoint(BUNDLED_DIR, ("G",))
    G = models["G"]
    E = load_model(args.run / "encoder", "editgan-encoder")
    invert.check_encoder(G, E)
    lpips = None if args.lpips is None else load_model(args.lpips, "lpips")
    res = G.config.img_resolution
    faces = toyfaces.render_batch(toyfaces.batch_seeds(args.heldout_stream, 0, args.heldout), res)
    targets = jnp.asarray(faces.images, jnp.float32) / 127.5 - 1
    ws = encoder_model.encode_each(E, targets, batch_norm=BATCH_NORM)
    w_avg = stylegan2.mapping(G, jnp.zeros((len(ws), G.config.z_dim)), truncation_psi=0.0)  # w_avg on every layer
    spread = float(jnp.mean(jnp.square(ws - jnp.mean(ws, axis=0))))
    heldout = {"faces": args.heldout, "stream": args.heldout_stream, "resolution": res,
               "encoder": reconstruction(G, ws, targets, lpips), "mean_face": reconstruction(G, w_avg, targets, lpips),
               "encoder_w_spread": spread}
    if args.embed_steps > 0 and lpips is not None:
        cfg = invert.EmbedConfig(steps=args.embed_steps, encoder_batch_norm=BATCH_NORM)
        embedded = invert.invert_images(G, lpips, list(np.asarray(targets)), space="w+", cfg=cfg, encoder=E)
        heldout[f"embedding_{args.embed_steps}_steps"] = reconstruction(G, embedded["ws"], targets, lpips)
    training = json.loads((args.run / "training.json").read_text())
    log = [json.loads(line) for line in (args.run / "log.jsonl").read_text().splitlines() if line.strip()]
    record = {"batch_norm": BATCH_NORM, "machine": args.machine, "settings": training,
              "trained": read_sidecar(args.run / "encoder").get("training", {}), "last_log": log[-1] if log else None,
              "heldout": heldout}
    args.report.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(heldout, indent=1))
    if not args.dry:
        install(E, record)


def install(E, record: dict) -> None:
    """Rewrite the bundle as its G and E, with the encoder's record in jaxgan.json (replaced once complete)."""
    models, sidecar = load_checkpoint(BUNDLED_DIR, ("G",))
    invert.check_encoder(models["G"], E)
    meta = {k: v for k, v in sidecar.items() if k not in ("format", "format_version", "models")}
    meta["encoder"] = record
    tmp = BUNDLED_DIR.parent / ".demo.new"
    shutil.rmtree(tmp, ignore_errors=True)
    save_checkpoint(tmp, {"G": models["G"], "E": E}, meta)
    shutil.rmtree(BUNDLED_DIR, ignore_errors=True)
    tmp.replace(BUNDLED_DIR)
    size = sum(f.stat().st_size for f in BUNDLED_DIR.rglob("*") if f.is_file())
    print(f"bundled G and E -> {BUNDLED_DIR} ({size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
