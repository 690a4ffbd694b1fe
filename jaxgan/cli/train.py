"""`jaxgan train`: train a StyleGAN2 on the procedural toyfaces, by `jaxgan.train.run.run_training`."""

from pathlib import Path

import click

from jaxgan.cli.common import distributed_options, progress, reports_errors


@click.command("train")
@click.argument("config")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Run directory: training.json, log.jsonl, samples-KKKKKK.png, network-KKKKKK/, state-*/.")
@click.option("--kimg", type=float, default=200, show_default=True,
              help="Train until this many thousand real images have been shown (in all, when resuming).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last saved state.")
@click.option("--snapshot-kimg", type=float, default=10, show_default=True,
              help="Write samples, a network checkpoint and the training state every this many kimg.")
@click.option("--tick-kimg", type=float, default=1, show_default=True, help="Log losses every this many kimg.")
@click.option("--batch-size", type=int, help="Override the config's batch size (total over all devices).")
@click.option("--seed", type=int, help="Override the config's seed (initialisation and every random draw).")
@distributed_options
@reports_errors
def train_command(config, out, kimg, resume, snapshot_kimg, tick_kimg, batch_size, seed):
    """Train a StyleGAN2 generator and discriminator on toyfaces, as stylegan2-ada-pytorch trains them.

    CONFIG is a preset (toyfaces64: the bundled demo model; toyfaces32; tiny: seconds per step, for trying it
    out) or a JSON file of training settings, optionally starting from a preset: {"preset": "toyfaces64",
    "batch_size": 64, "r1_gamma": 0.05}. Settings and defaults: jaxgan.train.stylegan2.TrainConfig.

    Non-saturating logistic loss, lazy R1 (every 16 iterations) and path-length regularisation (every 4), style
    mixing, Adam betas (0, 0.99), G EMA, data-parallel over all devices. Faces come from an endless,
    seeded stream, so runs are reproducible and --resume continues bit for bit. With --coordinator /
    --num-processes / --process-id (or under srun) the run spans several processes, gradients averaged over all
    their devices; process 0 alone reads and writes OUT.

    \b
    Examples:
      jaxgan train toyfaces64 --out runs/faces --kimg 300
      jaxgan train toyfaces64 --out runs/faces --kimg 600 --resume
      jaxgan generate runs/faces/network-000300 --seeds 0-15 --outdir samples --grid
    """
    from jaxgan import distributed
    from jaxgan.parallel import data_mesh
    from jaxgan.train.run import RunError, check_run_directory, get_trainer, load_config, run_training
    if kimg <= 0 or snapshot_kimg <= 0 or tick_kimg <= 0:
        raise click.UsageError("--kimg, --snapshot-kimg and --tick-kimg must be positive")
    try:
        cfg = load_config(config, {"batch_size": batch_size, "seed": seed})
        distributed.primary_result(lambda: check_run_directory(out, cfg, resume) and None)  # OUT is process 0's
        get_trainer(cfg, data_mesh())  # refuses a batch the devices cannot split, before OUT is written
    except (RunError, ValueError, TypeError) as e:
        raise click.ClickException(str(e)) from None
    total = int(round(kimg * 1000))
    click.echo(f"training {config} at {cfg.resolution} px, batch {cfg.batch_size}, to {kimg:g} kimg in {out}",
               err=True)
    with progress(total, "training", item_show_func=lambda text: text) as bar:
        shown = [0]

        def on_tick(tick):
            m = tick.metrics
            nimg = int(round(tick.kimg * 1000))
            bar.update(max(nimg - shown[0], 0), f"kimg {tick.kimg:.1f} G {m.get('G_loss', 0):.3f} "
                                                f"D {m.get('D_loss', 0):.3f} {tick.images_per_s:.1f} img/s")
            shown[0] = nimg
        try:
            run_training(cfg, out, kimg=kimg, resume=resume, snapshot_kimg=snapshot_kimg, tick_kimg=tick_kimg,
                         on_tick=on_tick)
        except RunError as e:
            raise click.ClickException(str(e)) from None
    click.echo(f"done: {out.resolve()} (latest network: the highest network-KKKKKK/; log: log.jsonl)")
