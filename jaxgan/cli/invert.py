"""`jaxgan invert`: photos into latents (stylegan2-ada-pytorch's projector, or EditGAN's W+ embedding, optionally
started from EditGAN's encoder), by `jaxgan.edit.invert.invert_images`; outputs by `jaxgan.edit.invert_outputs`."""

from pathlib import Path

import click

from jaxgan.cli.common import (CHECKPOINT, encoder_options, load_encoder, load_generator, load_images, load_lpips,
                               lpips_option, outdir_option, plural, progress, reports_errors, write_files)
from jaxgan.edit.invert import EmbedConfig, ProjectorConfig


@click.command("invert")
@click.argument("ckpt", type=CHECKPOINT)
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@lpips_option
@click.option("--space", type=click.Choice(["w", "w+"]), default="w", show_default=True,
              help="w: stylegan2-ada-pytorch's projector (projector.py): one w for every layer, plus the synthesis "
                   "noise maps, minimising LPIPS. w+: EditGAN's embedding: one w per layer, minimising "
                   "10 LPIPS + MSE, noise fixed.")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help=f"Optimisation steps: the projector makes STEPS updates, the W+ embedding STEPS - 1 (as EditGAN's "
                   f"loop; with --encoder, --steps 1 returns the encoder's W+ itself).  [default: "
                   f"{ProjectorConfig.steps} for w (projector.py), {EmbedConfig.steps} for w+ (EditGAN's command "
                   "line)]")
@encoder_options
@click.option("--seed", type=click.IntRange(0, 2 ** 32 - 1), default=0, show_default=True,
              help="Key of the projector's random numbers (initial noise maps, w jitter): image i (0-based, in "
                   "command-line order) uses fold_in(key(SEED), i), whatever the batches. The W+ embedding is "
                   "deterministic.")
@outdir_option()
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True,
              help="Images per device inverted together; more images run in batches one after another.")
@click.option("--steps-per-call", type=click.IntRange(min=1), default=1, show_default=True,
              help="Optimisation steps run inside one compiled call (fewer host round trips).")
@reports_errors
def invert_command(ckpt, images, lpips_ckpt, space, steps, encoder_ckpt, encoder_bn, seed, outdir, batch_size,
                   steps_per_call):
    """Invert photos IMAGES into latents of the generator of checkpoint CKPT (GAN inversion).

    Each method reads the photos as its official code does: for --space w each image is centre-cropped to a square
    and resized (Lanczos) to the generator's resolution, as projector.py does; for --space w+ the whole image is
    resized (bicubic, no crop: a non-square photo is stretched), as EditGAN's embedding does. Then all are
    optimised together, batched and spread over the local devices. With --encoder (--space w+ only) the
    embedding starts from EditGAN's encoder's W+ of each photo and adds the official encoder regulariser
    MSE(w, E(G(w))) (E sees the image in [0, 1], EditGAN's quirk). Per image
    NAME (the file's stem; -2, -3, ... added when stems repeat) OUTDIR gets NAME_ws.npy (the latent,
    (num_ws, w_dim) float32, which `jaxgan generate --ws` and `jaxgan drag --ws` take), NAME_recon.png (its image),
    NAME_target.png, NAME_compare.png (target | reconstruction), NAME_loss.png (loss curve) and, for --space w,
    NAME_noise.npz (the optimised noise maps the reconstruction uses); plus invert.json with each image's final
    LPIPS, MSE and PSNR, the settings and the file names.

    \b
    Examples:
      jaxgan invert ffhq face.png --lpips lpips-vgg --outdir inverted
      jaxgan invert ffhq a.png b.png --lpips lpips-vgg --space w+ --steps 200 --outdir embedded
      jaxgan invert car car.png --lpips lpips-vgg --space w+ --encoder car-encoder --steps 100 --outdir embedded
    """
    if encoder_ckpt is not None and space != "w+":
        raise click.UsageError("--encoder goes with --space w+ (EditGAN's embedding)")
    if encoder_bn is not None and encoder_ckpt is None:
        raise click.UsageError("--encoder-bn goes with --encoder")
    from jaxgan import parallel
    from jaxgan.edit import invert, invert_outputs
    from jaxgan.images import load_image

    lpips = load_lpips(lpips_ckpt)
    G = load_generator(ckpt)
    encoder = load_encoder(encoder_ckpt)
    if encoder is not None:
        invert.check_encoder(G, encoder)
    gcfg = G.config
    method, _, _, config_class, _ = invert.METHODS[space]
    overrides = {"steps": steps} if steps is not None else {}
    overrides.update({"encoder_batch_norm": encoder_bn} if encoder_bn is not None else {})
    cfg = config_class(**overrides)
    targets = load_images(images, lambda path: load_image(path, gcfg.img_resolution, gcfg.img_channels,
                                                          fit=cfg.image_fit))
    updates = invert.updates_for(space, cfg.steps)
    batches = -(-len(targets) // (batch_size * parallel.local_device_count()))
    label = f"inverting {plural(len(targets), 'image')} ({method}, {space})"
    with progress(updates * batches, label, item_show_func=lambda x: x) as bar:
        result = invert.invert_images(G, lpips, targets, space=space, cfg=cfg, seed=seed, encoder=encoder,
                                      batch_size=batch_size, steps_per_call=steps_per_call, on_progress=bar.update)
        bar.update(bar.length - bar.pos)

    settings = {"space": space, "method": method, "steps": cfg.steps, "updates": updates, "seed": seed,
                "batch_size": batch_size, "steps_per_call": steps_per_call, "config": cfg,
                "encoder": None if encoder_ckpt is None else str(encoder_ckpt)}
    files, lines = invert_outputs.inversion_files(G, images, targets, result, checkpoint=ckpt,
                                                  lpips_checkpoint=lpips_ckpt, settings=settings)
    write_files(outdir, files)
    for line in lines:
        click.echo(line)
    click.echo(f"wrote {plural(len(images), 'inversion')} and {invert_outputs.SUMMARY_NAME} to {outdir}")
