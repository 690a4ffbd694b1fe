"""`jaxgan editgan train-seg`: train the segmentation branch (DatasetGAN's pixel classifiers) on a few annotated
latents, by `jaxgan.edit.segtrain`; and the class-names option the editgan commands share."""

from pathlib import Path

import click

from jaxgan.cli.common import CHECKPOINT, load_generator, progress, reports_errors


def names_option(command):
    return click.option("--names", "names_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                        help="Class names for the legends: one per line (line i = class i) or a JSON list.")(command)


def read_class_names(names_file, num_classes: int):
    from jaxgan.edit import editgan_outputs
    return None if names_file is None else editgan_outputs.read_class_names(names_file, num_classes)


@click.command("train-seg")
@click.argument("ckpt", type=CHECKPOINT)
@click.option("--latents", "latents_dir", required=True, type=click.Path(exists=True, file_okay=False,
                                                                          path_type=Path),
              help="Folder of the annotated images' W+ latents, NAME.npy of shape (num_ws, w_dim) (e.g. from "
                   "`jaxgan invert --space w+`).")
@click.option("--masks", "masks_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of their label masks, NAME.png: class ids, 8-bit grey or palette indices, at the "
                   "generator's resolution.")
@click.option("--classes", "num_classes", required=True, type=click.IntRange(min=2),
              help="Number of classes (ids 0 .. N-1, 0 = background).")
@click.option("--models", "num_models", type=click.IntRange(min=1), default=10, show_default=True,
              help="Classifiers in the ensemble.")
@click.option("--epochs", type=click.IntRange(min=1), default=100, show_default=True,
              help="At most this many epochs (the official early stop usually ends training after epoch 4).")
@click.option("--eval-latents", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Held-out annotated latents (same layout as --latents) to score the trained branch on.")
@click.option("--eval-masks", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Their label masks (same layout as --masks).")
@click.option("--seed", type=click.IntRange(0, 2 ** 32 - 1), default=0, show_default=True,
              help="Key of the classifiers' initial weights and pixel shuffles.")
@names_option
@click.option("--out", "dst", required=True, type=click.Path(path_type=Path),
              help="The new segmentation-branch checkpoint directory (must not exist).")
@reports_errors
def train_seg_command(ckpt, latents_dir, masks_dir, num_classes, num_models, epochs, eval_latents, eval_masks, seed,
                      names_file, dst):
    """Train the segmentation branch (DatasetGAN's pixel classifiers) on a few annotated latents.

    The official recipe (EditGAN's train_interpreter.py): every pixel of every annotated image is a sample, with
    the generator's layer features upsampled bilinearly; labels with fewer than 30 pixels in an image become
    background; cross-entropy, Adam lr 1e-3, batches of 64 random pixels, early stop per classifier once a
    batch loss has not improved for 50 batches after epoch 4. The features are kept at their own resolutions
    (float16), so memory is N x sum(r^2 C) x 2 bytes: 4.1 GB for 32 annotated images at 512 px (config F), not the
    official 75-230 GB. With --eval-latents / --eval-masks, prints per-class pixel accuracy, IoU and mIoU on the
    held-out images. The result loads with `--seg DST` in the other editgan commands.

    \b
    Example:
      jaxgan editgan train-seg car --latents annotated/latents --masks annotated/masks --classes 32 \\
          --eval-latents held_out/latents --eval-masks held_out/masks --out car-seg
    """
    import jax

    from jaxgan.checkpoint import save_checkpoint
    from jaxgan.edit import segtrain
    from jaxgan.edit.editgan_outputs import read_annotated_pairs
    if (eval_latents is None) != (eval_masks is None):
        raise click.UsageError("give both --eval-latents and --eval-masks, or neither")
    if dst.exists():
        raise click.ClickException(f"{dst} already exists; choose a new destination or remove it first")
    G = load_generator(ckpt, "stylegan2-generator")
    gcfg = G.config
    shape = (num_classes, gcfg.img_resolution, gcfg.num_ws, gcfg.w_dim)
    names, ws, masks = read_annotated_pairs(latents_dir, masks_dir, *shape)
    held_out = None if eval_latents is None else read_annotated_pairs(eval_latents, eval_masks, *shape)
    class_names = read_class_names(names_file, num_classes)
    cfg = segtrain.SegTrainConfig(max_epochs=epochs)
    click.echo(f"training {num_models} classifiers on {len(names)} annotated images "
               f"({len(names) * gcfg.img_resolution ** 2} pixels, {num_classes} classes)", err=True)
    with progress(epochs, "epochs (early stop usually ends sooner)") as bar:
        def on_progress(epoch, iteration, losses, stopped):
            if epoch + 1 > bar.pos:
                bar.update(epoch + 1 - bar.pos)
        S, report = segtrain.train_segbranch(G, ws, masks, num_classes, jax.random.key(seed), num_models=num_models,
                                             config=cfg, on_progress=on_progress)
    metrics = None if held_out is None else segtrain.evaluate(S, G, held_out[1], held_out[2])
    meta = segtrain.training_record(ckpt, names, seed, num_models, cfg, report, class_names, held_out, metrics)
    try:
        save_checkpoint(dst, {"S": S}, meta)
    except OSError as e:
        raise click.ClickException(f"cannot write {dst}: {e}") from None
    iterations = report["iterations"]
    click.echo(f"trained {num_models} classifiers: {min(iterations)}-{max(iterations)} iterations, "
               f"{sum(report['stopped_early'])} stopped early; features held in "
               f"{report['feature_bytes'] / 2 ** 20:.1f} MiB")
    if metrics is not None:
        label = (lambda c: f"{c} {class_names[c]}") if class_names else str
        click.echo(f"held-out ({len(held_out[0])} images): pixel accuracy {metrics['pixel_accuracy']:.4f}, "
                   f"mIoU {metrics['miou']:.4f}")
        for c in range(num_classes):
            acc, iou = metrics["per_class_accuracy"][c], metrics["per_class_iou"][c]
            if acc is not None or iou is not None:
                click.echo(f"  class {label(c)}: accuracy {'-' if acc is None else f'{acc:.4f}'}, "
                           f"IoU {'-' if iou is None else f'{iou:.4f}'}")
    click.echo(f"wrote {dst}")
