"""`jaxgan train-encoder`: train EditGAN's encoder for a generator, by `jaxgan.train.encoder_run.train_encoder`."""

from pathlib import Path

import click

from jaxgan.cli.common import CHECKPOINT, load_generator, load_images, load_lpips, lpips_option, progress, \
    reports_errors
from jaxgan.models.encoder import EncoderConfig
from jaxgan.train.encoder import EncoderTrainConfig

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
DEFAULTS = EncoderTrainConfig()


def _image_paths(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise click.ClickException(f"--images {folder} is not a folder of images")
    paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise click.ClickException(f"--images {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return paths


def _counts(text, example: str, option: str):
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not {len(example.split(','))} counts like {example}",
                                 param_hint=option) from None


@click.command("train-encoder")
@click.argument("ckpt", type=CHECKPOINT)
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Run directory: training.json, log.jsonl, state-*/ and, at the end, encoder/ (the jaxgan "
                   "checkpoint of the encoder, for --encoder OUT/encoder).")
@click.option("--images", "images_dir", type=click.Path(path_type=Path),
              help="A folder of real training images (stretched to the generator's resolution, as EditGAN's "
                   "resize). Without it, only the sampling steps run.")
@lpips_option(help_text="The jaxgan LPIPS checkpoint (vgg trunk) of the LPIPS loss terms; without it they are "
                        "dropped.")
@click.option("--iterations", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Train until this many iterations are done (in all, when resuming).")
@click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULTS.batch_size, show_default=True,
              help="Real images per real step.")
@click.option("--sample-batch-size", type=click.IntRange(min=1), default=DEFAULTS.sample_bs, show_default=True,
              help="Generated images per sampling step.")
@click.option("--lr", type=float, default=DEFAULTS.lr, show_default=True, help="Adam's learning rate.")
@click.option("--warmup-epochs", type=click.IntRange(min=0), default=DEFAULTS.train_real_start_epochs,
              show_default=True, help="Real steps start when the epoch (from 0) exceeds this.")
@click.option("--base-width", type=click.IntRange(min=1), default=EncoderConfig.base_width, show_default=True,
              help="The encoder's stem width (stages output 4, 8, 16, 32 x this).")
@click.option("--stage-blocks", default=",".join(map(str, EncoderConfig.stage_blocks)), show_default=True,
              help="Bottleneck blocks per ResNet stage.")
@click.option("--fpn-dim", type=click.IntRange(min=1), default=EncoderConfig.fpn_dim, show_default=True,
              help="The feature pyramid's width.")
@click.option("--head-dim", type=click.IntRange(min=1), default=EncoderConfig.head_dim, show_default=True,
              help="The style heads' conv width.")
@click.option("--head-convs", default=",".join(map(str, EncoderConfig.head_convs)), show_default=True,
              help="Stride-2 convs of the coarse, medium and fine style heads (official: 5,6,7, for images up to "
                   "512 px); fewer for small images, e.g. 1,2,3 at 32 px (the largest image is then "
                   "min(16*2^a, 8*2^b, 4*2^c) px).")
@click.option("--state-every", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Save the training state every this many iterations (and at the end).")
@click.option("--log-every", type=click.IntRange(min=1), default=100, show_default=True,
              help="Log the mean loss terms every this many iterations.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last saved state.")
@click.option("--seed", type=click.IntRange(0, 2 ** 32 - 1), default=DEFAULTS.seed, show_default=True,
              help="Encoder initialisation, sampled latents and the epochs' shuffles.")
@reports_errors
def train_encoder_command(ckpt, out, images_dir, lpips_ckpt, iterations, batch_size, sample_batch_size, lr,
                          warmup_epochs, base_width, stage_blocks, fpn_dim, head_dim, head_convs, state_every,
                          log_every, resume, seed):
    """Train EditGAN's encoder (FPNEncoder: images -> W+) for the generator of checkpoint CKPT.

    The official recipe (train_encoder.py): every iteration a real step on a batch of --images (once the epoch
    exceeds --warmup-epochs) with 10 LPIPS + 1 MSE between G(E(x)) and x, then a sampling step on generated
    images x_s = G(w_s), w_s truncated by psi 0.7, with 5 MSE(E(x_s), w_s) + 10 LPIPS + 1 MSE between G(E(x_s))
    and x_s; Adam 3e-5; the encoder in train mode (batch-statistics BatchNorm); G frozen. Data-parallel over
    the local devices (as many as divide both batch sizes), with BatchNorm statistics over the whole batch.

    \b
    Examples:
      jaxgan train-encoder car --images cars/ --lpips lpips-vgg --out runs/car-encoder --iterations 20000
      jaxgan train-encoder car --images cars/ --lpips lpips-vgg --out runs/car-encoder --iterations 40000 --resume
      jaxgan invert car photo.png --lpips lpips-vgg --space w+ --encoder runs/car-encoder/encoder --outdir out
    """
    import numpy as np

    from jaxgan.images import load_image
    from jaxgan.train.encoder_run import check_run_directory, encoder_config_for, settings, train_encoder
    G = load_generator(ckpt, "stylegan2-generator")
    gcfg = G.config
    if gcfg.img_channels != 3:
        raise click.ClickException(f"the encoder is trained on RGB generators; {ckpt} makes {gcfg.img_channels}-"
                                   "channel images")
    encoder_cfg = encoder_config_for(G, base_width=base_width,
                                     stage_blocks=_counts(stage_blocks, "3,4,6,3", "--stage-blocks"),
                                     fpn_dim=fpn_dim, head_dim=head_dim,
                                     head_convs=_counts(head_convs, "5,6,7", "--head-convs"))
    if gcfg.img_resolution > encoder_cfg.max_size:
        raise click.ClickException(f"--head-convs {head_convs} reduce images of at most {encoder_cfg.max_size} px to "
                                   f"1 x 1; the generator makes {gcfg.img_resolution} px images")
    cfg = EncoderTrainConfig(batch_size=batch_size, sample_bs=sample_batch_size, lr=lr,
                             train_real_start_epochs=warmup_epochs, seed=seed)
    paths = _image_paths(images_dir) if images_dir is not None else []
    # Settings are checked against OUT before the images are read or anything compiles.
    check_run_directory(out, settings(cfg, encoder_cfg, len(paths), str(Path(ckpt).resolve())), resume)
    if paths and len(paths) < batch_size:
        raise click.ClickException(f"--images holds {len(paths)} images, fewer than one batch (--batch-size "
                                   f"{batch_size})")
    lpips = None
    if lpips_ckpt is None:
        click.echo("note: no --lpips given: the LPIPS loss terms are dropped (MSE terms only)", err=True)
    else:
        lpips = load_lpips(lpips_ckpt)
    images = None
    if paths:
        images = np.stack(load_images(paths, lambda p: load_image(p, gcfg.img_resolution, 3, fit="stretch")))
    click.echo(f"training an encoder for {ckpt} ({gcfg.img_resolution} px, W+ {gcfg.num_ws} x {gcfg.w_dim}) on "
               f"{len(paths)} images to {iterations} iterations in {out}", err=True)
    with progress(iterations, "training", item_show_func=lambda text: text) as bar:
        shown = [0]

        def on_progress(report):
            t = report.terms
            text = " ".join(f"{k} {t[k]:.4f}" for k in ("real_loss", "sample_loss") if k in t)
            bar.update(max(report.iteration - shown[0], 0), f"it {report.iteration} {text}")
            shown[0] = report.iteration
        state = train_encoder(G, lpips, out, cfg, images=images, iterations=iterations, encoder_cfg=encoder_cfg,
                              resume=resume, generator=str(Path(ckpt).resolve()), state_every=state_every,
                              log_every=log_every, on_progress=on_progress)
    click.echo(f"done: {int(state.step)} iterations; encoder: {(Path(out) / 'encoder').resolve()}")
