"""`jaxgan demo`: jaxgan at work on its bundled model, offline (`jaxgan.demo`): a grid of faces and one drag."""

from pathlib import Path

import click

from jaxgan.cli.drag import drag_command
from jaxgan.cli.generate import generate_command


@click.command("demo")
@click.option("--outdir", default="jaxgan-demo", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the outputs (created if missing).")
@click.pass_context
def demo_command(ctx, outdir):
    """Show jaxgan at work on its bundled model, offline: sample a grid of faces, then drag a point of one.

    The bundled model is a small StyleGAN2 trained by jaxgan on its procedural cartoon faces (jaxgan.data.toyfaces);
    every command that takes a checkpoint accepts `demo` for it (e.g. `jaxgan generate demo --seeds 0-7 ...`).
    Writes OUTDIR/samples/ (seedNNNN.png and grid.png) and OUTDIR/drag/ (drag.png, the animated drag.gif, the
    latent drag_ws.npy and drag.json), exactly as `jaxgan generate` and `jaxgan drag` write them.
    """
    from jaxgan.checkpoint import read_sidecar
    from jaxgan.demo import BundledModelMissing, bundled_checkpoint, demo_settings
    try:
        ckpt = bundled_checkpoint()
    except BundledModelMissing as e:
        raise click.ClickException(str(e)) from None
    settings = demo_settings(read_sidecar(ckpt))
    samples, dragged = outdir / "samples", outdir / "drag"
    ctx.invoke(generate_command, ckpt=ckpt, seeds=settings["samples"]["seeds"],
               truncation_psi=settings["samples"]["trunc"], outdir=samples, grid=True)
    job = settings["drag"]
    ctx.invoke(drag_command, ckpt=ckpt, seed=job["seed"], trunc=job["trunc"], points=job["points"],
               targets=job["targets"], steps=job["steps"], lr=job["lr"], r1=job["r1"], r2=job["r2"],
               feature_idx=job["feature_idx"], outdir=dragged)
    click.echo(f"demo done: samples in {samples / 'grid.png'}, the drag in {dragged / 'drag.gif'} "
               f"(handle {job['points']} -> target {job['targets']} on seed {job['seed']})")
