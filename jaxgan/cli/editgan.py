"""`jaxgan editgan`: EditGAN's segmentation branch, segmentation-guided edits and edit vectors on the command line.

Commands: `seg` (images and their segmentations), `edit` (edit latents towards a target segmentation inside a
region; writes edit vectors), `apply` (apply an edit vector to other latents, optionally refined) here, and
`train-seg` (train the branch from a few annotated latents) in `jaxgan.cli.editgan_train`. The library side is
`jaxgan.edit.editgan`, `jaxgan.edit.segtrain` and `jaxgan.edit.editgan_outputs`.
"""

import dataclasses
from pathlib import Path

import click

from jaxgan.cli.common import (CHECKPOINT, SEG_HINT, distributed_options, encoder_batch_norm, encoder_options,
                               load_encoder, load_generator, load_lpips, lpips_option, outdir_option, parse_seeds,
                               plural, progress, reports_errors, seg_option, write_files)
from jaxgan.cli.editgan_train import names_option, read_class_names, train_seg_command
from jaxgan.edit.editgan import EditConfig


@click.group("editgan")
def editgan_group():
    """EditGAN: segment generated images, train the segmentation branch, edit by segmentation, reuse edits.

    \b
    A round trip:
      jaxgan convert model_dir car-seg --kind segbranch          # or: jaxgan editgan train-seg ...
      jaxgan editgan seg car --seg car-seg --seeds 0-3 --outdir seg            # writes seg/ws.npy
      (paint the target segmentation seg/seed0001_labels.png and a region mask)
      jaxgan editgan edit car --seg car-seg --lpips lpips-vgg --ws seg/ws.npy --index 1 \\
          --target-seg target.png --region region.png --outdir edit                # writes edit/edit_vector.npz
      jaxgan editgan apply car --seg car-seg --vector edit/edit_vector.npz --seeds 10-17 --outdir applied
    """


editgan_group.add_command(train_seg_command)


def load_generator_and_branch(ckpt: Path, seg_ckpt: Path):
    from jaxgan.checkpoint import load_model
    from jaxgan.models import segbranch
    G = load_generator(ckpt, "stylegan2-generator")
    S = load_model(seg_ckpt, "segbranch", hint=SEG_HINT)
    segbranch.check_compatible(segbranch.FeatureLayout.of_generator(G.config), S.config)
    return G, S


def latents_of(G, seeds, ws_file, truncation_psi):
    """(ws [N, num_ws, w_dim], names) from --seeds (mapping, truncation) or --ws (`jaxgan.latents` rule)."""
    import numpy as np

    from jaxgan import sampling
    from jaxgan.latents import read_latents
    from jaxgan.models import stylegan2
    cfg = G.config
    if (seeds is None) == (ws_file is None):
        raise click.UsageError("give exactly one of --seeds and --ws")
    if seeds is not None:
        seed_list = parse_seeds(seeds)
        z = sampling.z_from_seeds(seed_list, cfg.z_dim)
        return np.asarray(stylegan2.mapping(G, z, truncation_psi=truncation_psi)), [f"seed{s:04d}" for s in seed_list]
    ws = read_latents(ws_file, cfg.num_ws, cfg.w_dim)
    return ws, [f"ws{i:04d}" for i in range(len(ws))]


def latent_options(command):
    command = click.option("--trunc", "truncation_psi", type=float, default=0.7, show_default=True,
                           help="With --seeds: truncation psi towards w_avg on all layers (EditGAN samples at "
                                "0.7).")(command)
    command = click.option("--ws", "ws_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                           help="W+ latents as .npy: (N, num_ws, w_dim), (num_ws, w_dim) or (N, w_dim), e.g. from "
                                "`jaxgan invert --space w+` or `jaxgan editgan seg`.")(command)
    return click.option("--seeds", help="Random seeds, e.g. '0-7,12' (z as stylegan2-ada-pytorch's generate.py), "
                                        "mapped to W+.")(command)


@editgan_group.command("seg")
@click.argument("ckpt", type=CHECKPOINT)
@seg_option
@latent_options
@click.option("--mode", type=click.Choice(["bilinear", "nearest"]), default="bilinear", show_default=True,
              help="Feature upsampling: bilinear is the official display and training path, nearest the one the "
                   "editing losses use.")
@click.option("--ensemble", type=click.Choice(["mean", "vote"]), default="mean", show_default=True,
              help="mean: argmax of the classifiers' mean logits (EditGAN); vote: the most frequent of their "
                   "argmaxes, ties to the smaller id (DatasetGAN).")
@names_option
@outdir_option()
@reports_errors
def seg_command(ckpt, seg_ckpt, seeds, ws_file, truncation_psi, mode, ensemble, names_file, outdir):
    """Generate images from the generator of CKPT and segment them with the segmentation branch.

    Per image NAME (seedNNNN for --seeds, wsNNNN for rows of --ws): NAME.png (the image), NAME_labels.png (class
    ids, 8-bit grey: the format `edit --target-seg` reads), NAME_seg.png (image | colour-coded segmentation |
    legend); ws.npy, the W+ latents (N, num_ws, w_dim) that `edit --ws` and `apply --ws` take; and seg.json with
    each image's DatasetGAN uncertainty (the mean of the top tenth of the pixels' Jensen-Shannon divergence between
    the classifiers: higher means they disagree more; DatasetGAN drops the most uncertain samples).

    \b
    Example:
      jaxgan editgan seg car --seg car-seg --seeds 0-3 --outdir seg
    """
    from jaxgan import sampling
    from jaxgan.edit import editgan as eg
    from jaxgan.edit import editgan_outputs as out
    G, S = load_generator_and_branch(ckpt, seg_ckpt)
    ws, names = latents_of(G, seeds, ws_file, truncation_psi)
    num_classes = S.config.num_classes
    class_names = read_class_names(names_file, num_classes)
    images, labels, uncertainty = eg.render_with_uncertainty(G, S, ws, mode=mode, ensemble=ensemble)
    header = {"checkpoint": str(ckpt), "segmentation": str(seg_ckpt), "mode": mode, "ensemble": ensemble}
    write_files(outdir, out.seg_files(names, sampling.to_uint8(images), labels, uncertainty, ws, num_classes,
                                      class_names, header))
    click.echo(f"segmented {plural(len(names), 'image')} into {num_classes} classes; wrote {outdir}")


def per_latent(paths, count: int, option: str, read, rows, shape):
    """[len(rows), *shape] of one file for all `count` latents, or one per latent: only the files of `rows` (this
    process's latents) are read."""
    import numpy as np
    if len(paths) not in (1, count):
        raise click.UsageError(f"give {option} once (for every latent) or once per latent ({count})")
    if not rows:
        return np.zeros((0,) + tuple(shape))
    if len(paths) == 1:
        return np.stack([read(paths[0])] * len(rows))
    return np.stack([read(paths[i]) for i in rows])


def write_summary(outdir: Path, own_entries: list, own_ws, summary_files) -> None:
    """The summary of every process's items, written once (by process 0): `summary_files(ws, entries)`."""
    from jaxgan import distributed
    entries = [entry for part in distributed.allgather_objects(own_entries) for entry in part]
    ws = distributed.allgather_rows(own_ws)  # also the job's last barrier: a lost process shows here
    if distributed.is_primary():
        write_files(outdir, summary_files(ws, entries))


@editgan_group.command("edit")
@click.argument("ckpt", type=CHECKPOINT)
@seg_option
@lpips_option
@click.option("--ws", "ws_file", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The W+ latents to edit, .npy (N, num_ws, w_dim) or (num_ws, w_dim).")
@click.option("--index", "indices", type=str, default=None,
              help="Edit only these rows of --ws, e.g. '1' or '0,2-3' (default: all).")
@click.option("--target-seg", "target_files", required=True, multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The wanted segmentation: a class-id PNG (8-bit grey or palette indices) at the generator's "
                   "resolution, e.g. an edited NAME_labels.png. Once for all latents, or once per latent.")
@click.option("--region", "region_files", required=True, multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The edit region: an image whose non-zero pixels are the edited area (it is dilated by 7x7, as "
                   "the official tool). Once for all latents, or once per latent.")
@click.option("--steps", type=click.IntRange(min=1), default=EditConfig.steps, show_default=True,
              help=f"As the official tool's `steps`: STEPS - 1 Adam updates (lr {EditConfig.learning_rate:g}).")
@encoder_options
@names_option
@outdir_option()
@click.option("--steps-per-call", type=click.IntRange(min=1), default=1, show_default=True,
              help="Optimisation steps run inside one compiled call.")
@distributed_options
@reports_errors
def edit_command(ckpt, seg_ckpt, lpips_ckpt, ws_file, indices, target_files, region_files, steps, encoder_ckpt,
                 encoder_bn, names_file, outdir, steps_per_call):
    """Edit latents so that their segmentation inside a region becomes the target segmentation (EditGAN).

    Optimises W+ with the official loss: 15 (10 LPIPS + 5 MSE) on the image outside the dilated region, plus the
    cross-entropy of the ensemble's mean logits against the target inside it (and, with --encoder, the official
    encoder regulariser MSE(w, E(G(w))), E seeing the image in [0, 1]). All edits run together, batched
    and spread over the local devices. Per edit NAME (wsNNNN, the row of --ws): NAME_after.png (edited image),
    NAME_labels.png (its segmentation, class ids), NAME_compare.png (before / after, images and segmentations,
    region outlined), NAME_vector.npz (the edit vector: w_edited - w and the class ids it changes); plus
    ws_edited.npy and edit.json (losses, class ids, region sizes). With one edit, the vector is also written as
    edit_vector.npz. With --coordinator / --num-processes / --process-id (or under srun) the edits are shared out
    over several processes, each reading and writing its own; process 0 writes ws_edited.npy and edit.json.

    \b
    Example:
      jaxgan editgan edit car --seg car-seg --lpips lpips-vgg --ws seg/ws.npy --index 1 \\
          --target-seg target.png --region region.png --outdir edit
    """
    from jaxgan import distributed
    from jaxgan.edit import editgan as eg
    from jaxgan.edit import editgan_outputs as out
    if encoder_bn is not None and encoder_ckpt is None:
        raise click.UsageError("--encoder-bn goes with --encoder")
    lpips = load_lpips(lpips_ckpt)
    G, S = load_generator_and_branch(ckpt, seg_ckpt)
    encoder = load_encoder(encoder_ckpt)
    if encoder is not None:
        from jaxgan.edit.invert import check_encoder
        check_encoder(G, encoder)
    ws, names = latents_of(G, None, ws_file, 1.0)
    if indices is not None:
        try:
            rows = parse_seeds(indices, "--index")
        except click.BadParameter:
            raise click.BadParameter(f"{indices!r} is not a row list like '1' or '0,2-3'",
                                     param_hint="--index") from None
        bad = [r for r in rows if r >= len(ws)]
        if bad:
            raise ValueError(f"--index {bad[0]} is out of range: {ws_file} has {len(ws)} latents")
        ws, names = ws[rows], [names[r] for r in rows]
    res, num_classes, count = G.config.img_resolution, S.config.num_classes, len(ws)
    mine, padded_size = eg.owned_edits(count)  # all edits, unless this is one process of several
    targets = per_latent(target_files, count, "--target-seg", lambda p: out.read_label_png(p, num_classes, res),
                         mine, (res, res)).astype(int)
    regions = per_latent(region_files, count, "--region", lambda p: out.read_region_png(p, res), mine,
                         (res, res)).astype(bool)
    class_names = read_class_names(names_file, num_classes)
    encoder_bn = encoder_batch_norm(encoder_ckpt, encoder_bn)
    cfg = EditConfig(steps=steps, **({} if encoder_bn is None else {"encoder_batch_norm": encoder_bn}))
    with progress(cfg.updates, f"editing {plural(count, 'latent')}") as bar:
        result = eg.edit(G, S, lpips, ws[mine], targets, regions, cfg, steps_per_call=steps_per_call,
                         on_progress=bar.update, encoder=encoder, padded_size=padded_size)
    meta = {"resolution": res, "num_classes": num_classes, "steps": steps, "lr": cfg.learning_rate,
            "checkpoint": str(ckpt), "segmentation_checkpoint": str(seg_ckpt)}
    header = {"checkpoint": str(ckpt), "segmentation": str(seg_ckpt), "ws": str(ws_file),
              "encoder": None if encoder_ckpt is None else str(encoder_ckpt), "settings": dataclasses.asdict(cfg)}
    files, entries, lines = out.edit_files([names[i] for i in mine], result, regions, num_classes, class_names, meta,
                                           result["loss_names"], single=count == 1)
    for line in lines:
        click.echo(line)
    write_files(outdir, files)
    write_summary(outdir, entries, result["ws"],
                  lambda ws, entries: out.edit_summary_files(ws, entries, header, result["loss_names"]))
    click.echo(f"{distributed.message_prefix()}wrote {plural(len(mine), 'edit')} to {outdir}")


@editgan_group.command("apply")
@click.argument("ckpt", type=CHECKPOINT)
@seg_option
@click.option("--vector", "vector_file", required=True, type=click.Path(exists=True, dir_okay=False,
                                                                         path_type=Path),
              help="An edit vector: NAME_vector.npz from `edit`, or an official pre-learned .npy (then give "
                   "--class-ids for --refine).")
@click.option("--scale", type=float, default=1.0, show_default=True,
              help="w + SCALE * vector (1 reproduces the edit; the official tool's slider value is 2 * SCALE).")
@click.option("--refine", type=click.IntRange(min=0), default=0, show_default=True,
              help="Self-supervised refinement steps after the vector, as the official `finetune_steps`: REFINE - 1 "
                   "Adam updates (0 or 1: none). Needs --lpips.")
@click.option("--class-ids", "class_ids_text", default=None,
              help="The vector's classes, e.g. '3,5' (default: those stored in the vector); they define the "
                   "refinement region.")
@lpips_option
@latent_options
@names_option
@outdir_option()
@distributed_options
@reports_errors
def apply_command(ckpt, seg_ckpt, vector_file, scale, refine, class_ids_text, lpips_ckpt, seeds, ws_file,
                  truncation_psi, names_file, outdir):
    """Apply an edit vector to latents, optionally followed by self-supervised refinement (EditGAN).

    Per image NAME: NAME_after.png, NAME_labels.png (segmentation after, class ids), NAME_compare.png (before /
    after); plus ws_after.npy (N, num_ws, w_dim) and apply.json. --scale 0 returns the latents unchanged. With
    --coordinator / --num-processes / --process-id (or under srun) the latents are shared out over several
    processes, each refining and writing its own; process 0 writes ws_after.npy and apply.json.

    \b
    Examples:
      jaxgan editgan apply car --seg car-seg --vector edit/edit_vector.npz --seeds 10-17 --outdir applied
      jaxgan editgan apply car --seg car-seg --vector edit/edit_vector.npz --ws ws.npy --scale 1.5 \\
          --refine 30 --lpips lpips-vgg --outdir refined
    """
    from jaxgan import distributed
    from jaxgan.edit import editgan as eg
    from jaxgan.edit import editgan_outputs as out
    lpips = load_lpips(lpips_ckpt) if refine > 1 else None
    G, S = load_generator_and_branch(ckpt, seg_ckpt)
    cfg_g, num_classes = G.config, S.config.num_classes
    class_names = read_class_names(names_file, num_classes)
    vector, stored_ids, _ = out.load_edit_vector(vector_file, cfg_g.num_ws, cfg_g.w_dim, num_classes)
    class_ids = stored_ids if class_ids_text is None else out.class_ids_arg(class_ids_text, num_classes, class_names)
    if refine > 1 and not class_ids:
        raise ValueError(f"{vector_file} stores no class ids; give --class-ids for --refine")
    ws, names = latents_of(G, seeds, ws_file, truncation_psi)
    mine, _ = eg.owned_edits(len(ws))  # all latents, unless this is one process of several
    cfg = EditConfig(steps=refine)
    with progress(cfg.updates, f"refining {plural(len(ws), 'latent')}") as bar:
        result = eg.apply_and_refine(G, S, lpips, ws[mine], vector, class_ids, scale, cfg, on_progress=bar.update)
    header = {"checkpoint": str(ckpt), "segmentation": str(seg_ckpt), "vector": str(vector_file), "scale": scale,
              "refine": refine, "class_ids": class_ids}
    files, entries = out.apply_files([names[i] for i in mine], result, class_ids, num_classes, class_names,
                                     eg.LOSS_NAMES)
    skipped = [e["name"] for e in entries if refine > 1 and e["refined_region_pixels"] == 0]
    if skipped:
        click.echo(f"note: {', '.join(skipped)} show none of classes {class_ids} before or after the vector; "
                   "left unrefined", err=True)
    write_files(outdir, files)
    write_summary(outdir, entries, result["ws"], lambda ws, entries: out.apply_summary_files(ws, entries, header))
    click.echo(f"{distributed.message_prefix()}applied {vector_file.name} at scale {scale:g} to "
               f"{plural(len(mine), 'latent')}{f' with {refine} refinement steps' if refine > 1 else ''}; "
               f"wrote {outdir}")
