"""`jaxgan editgan`: EditGAN's segmentation branch, segmentation-guided edits and edit vectors on the command line.

Commands: `seg` (images and their segmentations), `train-seg` (train the branch from a few annotated latents),
`edit` (edit latents towards a target segmentation inside a region; writes edit vectors), `apply` (apply an edit
vector to other latents, optionally refined). The library side is `jaxgan.edit.editgan`, `jaxgan.edit.segtrain`
and `jaxgan.edit.editgan_outputs`; this module parses options, calls them, and writes files atomically. It is
registered on the `jaxgan` group by `jaxgan.cli`, whose helpers it shares.
"""

import dataclasses
import json
import sys
from pathlib import Path

import click

from jaxgan.cli import _atomic_write, _load_lpips, _lpips_option, _save_png, _user_errors, parse_seeds
from jaxgan.demo import CHECKPOINT

SEG_KINDS = ("segbranch",)


@click.group("editgan")
def editgan():
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


# ----------------------------------------------------------------------------------------------------------------
# Shared loading


def _load_generator_and_branch(ckpt: Path, seg_ckpt: Path):
    from jaxgan.checkpoint import load_checkpoint, read_sidecar
    from jaxgan.models import segbranch
    G = load_checkpoint(ckpt, names=("G",))[0]["G"]
    models = read_sidecar(seg_ckpt)["models"]
    names = [name for name, entry in models.items() if entry.get("kind") in SEG_KINDS]
    if not names:
        raise ValueError(f"{seg_ckpt} holds no segmentation branch (it holds {', '.join(sorted(models))}); "
                         "convert classifier files with `jaxgan convert DIR DST --kind segbranch` or train one with "
                         "`jaxgan editgan train-seg`")
    S = load_checkpoint(seg_ckpt, names=names[:1])[0][names[0]]
    segbranch.check_compatible(segbranch.FeatureLayout.of_generator(G.config), S.config)
    return G, S


def _latents(G, seeds, ws_file, truncation_psi):
    """(ws [N, num_ws, w_dim], names) from --seeds (mapping, truncation) or --ws."""
    import numpy as np
    from jaxgan import sampling
    from jaxgan.models import stylegan2
    cfg = G.config
    if (seeds is None) == (ws_file is None):
        raise click.UsageError("give exactly one of --seeds and --ws")
    if seeds is not None:
        seed_list = parse_seeds(seeds)
        z = sampling.z_from_seeds(seed_list, cfg.z_dim)
        ws = np.asarray(stylegan2.mapping(G, z, truncation_psi=truncation_psi))
        return ws, [f"seed{s:04d}" for s in seed_list]
    ws = np.load(ws_file, allow_pickle=False)
    ws = ws[None] if ws.ndim == 2 and ws.shape[0] == cfg.num_ws and cfg.num_ws > 1 else ws
    ws = sampling.broadcast_ws(ws, cfg.num_ws, cfg.w_dim)
    if len(ws) == 0:
        raise ValueError(f"{ws_file} holds no latents")
    return ws.astype(np.float32), [f"ws{i:04d}" for i in range(len(ws))]


def _names(names_file, num_classes):
    from jaxgan.edit import editgan_outputs
    return None if names_file is None else editgan_outputs.read_class_names(names_file, num_classes)


def _latent_options(command):
    command = click.option("--trunc", "truncation_psi", type=float, default=0.7, show_default=True,
                           help="With --seeds: truncation psi towards w_avg on all layers (EditGAN samples at "
                                "0.7).")(command)
    command = click.option("--ws", "ws_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                           help="W+ latents as .npy: (N, num_ws, w_dim), (num_ws, w_dim) or (N, w_dim), e.g. from "
                                "`jaxgan invert --space w+` or `jaxgan editgan seg`.")(command)
    return click.option("--seeds", help="Random seeds, e.g. '0-7,12' (z as stylegan2-ada-pytorch's generate.py), "
                                        "mapped to W+.")(command)


def _seg_option(command):
    return click.option("--seg", "seg_ckpt", required=True, type=click.Path(exists=True, file_okay=False,
                                                                              path_type=Path),
                        help="The segmentation-branch checkpoint (`jaxgan convert ... --kind segbranch` or "
                             "`jaxgan editgan train-seg`).")(command)


def _names_option(command):
    return click.option("--names", "names_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                        help="Class names for the legends: one per line (line i = class i) or a JSON list.")(command)


def _write_all(outdir: Path, files: dict) -> None:
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        for name, write in files.items():
            _atomic_write(outdir / name, write)
    except OSError as e:
        raise click.ClickException(f"cannot write the outputs: {e}") from None


def _json_writer(doc):
    return lambda f: f.write((json.dumps(doc, indent=2) + "\n").encode())


def _npy_writer(array):
    import numpy as np
    return lambda f: np.save(f, array)


def _progress(total: int, label: str):
    return click.progressbar(length=max(total, 1), label=label, file=sys.stderr)


# ----------------------------------------------------------------------------------------------------------------
# seg


@editgan.command("seg")
@click.argument("ckpt", type=CHECKPOINT)
@_seg_option
@_latent_options
@click.option("--mode", type=click.Choice(["bilinear", "nearest"]), default="bilinear", show_default=True,
              help="Feature upsampling: bilinear is the official display and training path, nearest the one the "
                   "editing losses use.")
@click.option("--ensemble", type=click.Choice(["mean", "vote"]), default="mean", show_default=True,
              help="mean: argmax of the classifiers' mean logits (EditGAN); vote: the most frequent of their "
                   "argmaxes, ties to the smaller id (DatasetGAN).")
@_names_option
@click.option("--outdir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the outputs (created if missing).")
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
    import numpy as np

    from jaxgan import sampling
    from jaxgan.edit import editgan as eg
    from jaxgan.edit import editgan_outputs as out
    try:
        G, S = _load_generator_and_branch(ckpt, seg_ckpt)
        ws, names = _latents(G, seeds, ws_file, truncation_psi)
        class_names = _names(names_file, S.config.num_classes)
        images, labels, uncertainty = eg.render_with_uncertainty(G, S, ws, mode=mode, ensemble=ensemble)
    except _user_errors() as e:
        raise click.ClickException(str(e)) from None
    pixels = sampling.to_uint8(images)
    files = {"ws.npy": _npy_writer(ws),
             "seg.json": _json_writer({"checkpoint": str(ckpt), "segmentation": str(seg_ckpt), "mode": mode,
                                       "ensemble": ensemble,
                                       "images": [{"name": n, "uncertainty": float(u),
                                                   "classes": sorted(int(c) for c in np.unique(lab))}
                                                  for n, u, lab in zip(names, uncertainty, labels)]})}
    num_classes = S.config.num_classes
    for name, image, label in zip(names, pixels, labels):
        files[f"{name}.png"] = _png(image)
        files[f"{name}_labels.png"] = out.write_label_png(label)
        files[f"{name}_seg.png"] = _png(out.segmentation_figure(image, label, num_classes, class_names))
    _write_all(outdir, files)
    click.echo(f"segmented {len(names)} image{'s' if len(names) > 1 else ''} into {num_classes} classes; wrote "
               f"{outdir}")


def _png(pixels):
    from jaxgan.images import png_writer
    return png_writer(pixels)


# ----------------------------------------------------------------------------------------------------------------
# edit


def _per_latent(paths, count: int, option: str, read):
    """One file for all latents, or one per latent."""
    if len(paths) not in (1, count):
        raise click.UsageError(f"give {option} once (for every latent) or once per latent ({count})")
    arrays = [read(p) for p in paths]
    return arrays * count if len(arrays) == 1 else arrays


@editgan.command("edit")
@click.argument("ckpt", type=CHECKPOINT)
@_seg_option
@_lpips_option
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
@click.option("--steps", type=click.IntRange(min=1), default=30, show_default=True,
              help="As the official tool's `steps`: STEPS - 1 Adam updates (lr 0.02).")
@_names_option
@click.option("--outdir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the outputs (created if missing).")
@click.option("--steps-per-call", type=click.IntRange(min=1), default=1, show_default=True,
              help="Optimisation steps run inside one compiled call.")
def edit_command(ckpt, seg_ckpt, lpips_ckpt, ws_file, indices, target_files, region_files, steps, names_file, outdir,
                 steps_per_call):
    """Edit latents so that their segmentation inside a region becomes the target segmentation (EditGAN).

    Optimises W+ with the official loss: 15 (10 LPIPS + 5 MSE) on the image outside the dilated region, plus the
    cross-entropy of the ensemble's mean logits against the target inside it. All edits run together, batched
    and spread over the local devices. Per edit NAME (wsNNNN, the row of --ws): NAME_after.png (edited image),
    NAME_labels.png (its segmentation, class ids), NAME_compare.png (before / after, images and segmentations,
    region outlined), NAME_vector.npz (the edit vector: w_edited - w and the class ids it changes); plus
    ws_edited.npy and edit.json (losses, class ids, region sizes). With one edit, the vector is also written as
    edit_vector.npz.

    \b
    Example:
      jaxgan editgan edit car --seg car-seg --lpips lpips-vgg --ws seg/ws.npy --index 1 \\
          --target-seg target.png --region region.png --outdir edit
    """
    import numpy as np

    from jaxgan import sampling
    from jaxgan.edit import editgan as eg
    from jaxgan.edit import editgan_outputs as out
    lpips = _load_lpips(lpips_ckpt)
    try:
        G, S = _load_generator_and_branch(ckpt, seg_ckpt)
        ws, names = _latents(G, None, ws_file, 1.0)
        if indices is not None:
            try:
                rows = parse_seeds(indices)
            except click.BadParameter:
                raise click.BadParameter(f"{indices!r} is not a row list like '1' or '0,2-3'",
                                         param_hint="--index") from None
            bad = [r for r in rows if r >= len(ws)]
            if bad:
                raise ValueError(f"--index {bad[0]} is out of range: {ws_file} has {len(ws)} latents")
            ws, names = ws[rows], [names[r] for r in rows]
        res = G.config.img_resolution
        num_classes = S.config.num_classes
        targets = np.stack(_per_latent(target_files, len(ws), "--target-seg",
                                       lambda p: out.read_label_png(p, num_classes, res)))
        regions = np.stack(_per_latent(region_files, len(ws), "--region", lambda p: out.read_region_png(p, res)))
        class_names = _names(names_file, num_classes)
        cfg = eg.EditConfig(steps=steps)
        with _progress(cfg.updates * 1, f"editing {len(ws)} latent{'s' if len(ws) > 1 else ''}") as bar:
            result = eg.edit(G, S, lpips, ws, targets, regions, cfg, steps_per_call=steps_per_call,
                             on_progress=bar.update)
    except _user_errors() as e:
        raise click.ClickException(str(e)) from None

    before, after = sampling.to_uint8(result["images_before"]), sampling.to_uint8(result["images_after"])
    files = {"ws_edited.npy": _npy_writer(result["ws"])}
    entries = []
    for i, name in enumerate(names):
        losses = result["losses"][i]
        class_ids = result["class_ids"][i]
        meta = {"resolution": res, "num_classes": num_classes, "steps": steps, "lr": cfg.learning_rate,
                "checkpoint": str(ckpt), "segmentation_checkpoint": str(seg_ckpt)}
        if class_names is not None:
            meta["class_names"] = [class_names[c] for c in class_ids]
        files[f"{name}_after.png"] = _png(after[i])
        files[f"{name}_labels.png"] = out.write_label_png(result["labels_after"][i])
        files[f"{name}_compare.png"] = _png(out.before_after_figure(
            before[i], result["labels_before"][i], after[i], result["labels_after"][i], num_classes,
            region=regions[i], names=class_names))
        files[f"{name}_vector.npz"] = out.edit_vector_writer(result["vectors"][i], class_ids, meta)
        if len(names) == 1:
            files["edit_vector.npz"] = out.edit_vector_writer(result["vectors"][i], class_ids, meta)
        entries.append({
            "name": name, "class_ids": class_ids, "region_pixels": int(result["region_pixels"][i]),
            "first": dict(zip(eg.LOSS_NAMES, map(float, losses[0]))) if len(losses) else {},
            "last": dict(zip(eg.LOSS_NAMES, map(float, losses[-1]))) if len(losses) else {},
            "vector_norm": float(np.linalg.norm(result["vectors"][i])),
        })
        if len(losses):
            click.echo(f"{name}: cross-entropy in the region {losses[0][2]:.4f} -> {losses[-1][2]:.4f}, "
                       f"LPIPS outside {losses[-1][0]:.4f}; classes {class_ids}")
    files["edit.json"] = _json_writer({"checkpoint": str(ckpt), "segmentation": str(seg_ckpt),
                                       "ws": str(ws_file), "settings": dataclasses.asdict(cfg),
                                       "loss_names": list(eg.LOSS_NAMES), "edits": entries})
    _write_all(outdir, files)
    click.echo(f"wrote {len(names)} edit{'s' if len(names) > 1 else ''} to {outdir}")


# ----------------------------------------------------------------------------------------------------------------
# apply


@editgan.command("apply")
@click.argument("ckpt", type=CHECKPOINT)
@_seg_option
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
@_lpips_option
@_latent_options
@_names_option
@click.option("--outdir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the outputs (created if missing).")
def apply_command(ckpt, seg_ckpt, vector_file, scale, refine, class_ids_text, lpips_ckpt, seeds, ws_file,
                  truncation_psi, names_file, outdir):
    """Apply an edit vector to latents, optionally followed by self-supervised refinement (EditGAN).

    Per image NAME: NAME_after.png, NAME_labels.png (segmentation after, class ids), NAME_compare.png (before /
    after); plus ws_after.npy (N, num_ws, w_dim) and apply.json. --scale 0 returns the latents unchanged.

    \b
    Examples:
      jaxgan editgan apply car --seg car-seg --vector edit/edit_vector.npz --seeds 10-17 --outdir applied
      jaxgan editgan apply car --seg car-seg --vector edit/edit_vector.npz --ws ws.npy --scale 1.5 \\
          --refine 30 --lpips lpips-vgg --outdir refined
    """
    import numpy as np

    from jaxgan import sampling
    from jaxgan.edit import editgan as eg
    from jaxgan.edit import editgan_outputs as out
    lpips = _load_lpips(lpips_ckpt) if refine > 1 else None
    try:
        G, S = _load_generator_and_branch(ckpt, seg_ckpt)
        cfg_g, num_classes = G.config, S.config.num_classes
        class_names = _names(names_file, num_classes)
        vector, stored_ids, _ = out.load_edit_vector(vector_file, cfg_g.num_ws, cfg_g.w_dim, num_classes)
        class_ids = stored_ids if class_ids_text is None else out.class_ids_arg(class_ids_text, num_classes,
                                                                                 class_names)
        if refine > 1 and not class_ids:
            raise ValueError(f"{vector_file} stores no class ids; give --class-ids for --refine")
        ws, names = _latents(G, seeds, ws_file, truncation_psi)
        cfg = eg.EditConfig(steps=refine)
        with _progress(cfg.updates, f"refining {len(ws)} latent{'s' if len(ws) > 1 else ''}") as bar:
            result = eg.apply_and_refine(G, S, lpips, ws, vector, class_ids, scale, cfg, on_progress=bar.update)
    except _user_errors() as e:
        raise click.ClickException(str(e)) from None
    before, after = sampling.to_uint8(result["images_before"]), sampling.to_uint8(result["images_after"])
    files = {"ws_after.npy": _npy_writer(result["ws"])}
    entries = []
    for i, name in enumerate(names):
        region = np.isin(result["labels_before"][i], class_ids) | np.isin(result["labels_after"][i], class_ids) \
            if class_ids else None
        files[f"{name}_after.png"] = _png(after[i])
        files[f"{name}_labels.png"] = out.write_label_png(result["labels_after"][i])
        files[f"{name}_compare.png"] = _png(out.before_after_figure(
            before[i], result["labels_before"][i], after[i], result["labels_after"][i], num_classes,
            region=region, names=class_names))
        losses = result["losses"][i]
        entries.append({"name": name, "refined_region_pixels": int(result["region_pixels"][i]),
                        "last": dict(zip(eg.LOSS_NAMES, map(float, losses[-1]))) if len(losses) else {}})
    skipped = [e["name"] for e in entries if refine > 1 and e["refined_region_pixels"] == 0]
    if skipped:
        click.echo(f"note: {', '.join(skipped)} show none of classes {class_ids} before or after the vector; "
                   "left unrefined", err=True)
    files["apply.json"] = _json_writer({"checkpoint": str(ckpt), "segmentation": str(seg_ckpt),
                                        "vector": str(vector_file), "scale": scale, "refine": refine,
                                        "class_ids": class_ids, "images": entries})
    _write_all(outdir, files)
    click.echo(f"applied {vector_file.name} at scale {scale:g} to {len(names)} latent{'s' if len(names) > 1 else ''}"
               f"{f' with {refine} refinement steps' if refine > 1 else ''}; wrote {outdir}")


# ----------------------------------------------------------------------------------------------------------------
# train-seg


def _annotated_pairs(latents_dir: Path, masks_dir: Path, num_classes: int, resolution: int, num_ws: int,
                     w_dim: int):
    """(names, ws [N, num_ws, w_dim], masks [N, res, res]) of the NAME.npy / NAME.png pairs of two folders."""
    import numpy as np

    from jaxgan.edit import editgan_outputs as out
    latents = {p.stem: p for p in sorted(latents_dir.glob("*.npy"))}
    masks = {p.stem: p for p in sorted(masks_dir.glob("*.png"))}
    if not latents:
        raise ValueError(f"{latents_dir} holds no .npy latents")
    unmatched = sorted(set(latents) ^ set(masks))
    if unmatched:
        raise ValueError(f"latents and masks are paired by file name (NAME.npy with NAME.png); unpaired: "
                         f"{', '.join(unmatched[:5])}{' ...' if len(unmatched) > 5 else ''}")
    names = sorted(latents)
    ws = []
    for name in names:
        w = np.load(latents[name], allow_pickle=False)
        w = w[0] if w.ndim == 3 and w.shape[0] == 1 else w
        if w.shape != (num_ws, w_dim):
            raise ValueError(f"{latents[name]}: expected a W+ latent of shape ({num_ws}, {w_dim}) or "
                             f"(1, {num_ws}, {w_dim}), found {w.shape}")
        ws.append(w.astype(np.float32))
    labels = [out.read_label_png(masks[name], num_classes, resolution) for name in names]
    return names, np.stack(ws), np.stack(labels)


@editgan.command("train-seg")
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
@_names_option
@click.option("--out", "dst", required=True, type=click.Path(path_type=Path),
              help="The new segmentation-branch checkpoint directory (must not exist).")
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
    import dataclasses as dc

    import jax

    from jaxgan.checkpoint import load_checkpoint, save_checkpoint
    from jaxgan.edit import segtrain
    if (eval_latents is None) != (eval_masks is None):
        raise click.UsageError("give both --eval-latents and --eval-masks, or neither")
    if dst.exists():
        raise click.ClickException(f"{dst} already exists; choose a new destination or remove it first")
    try:
        G = load_checkpoint(ckpt, names=("G",))[0]["G"]
        gcfg = G.config
        shape = (num_classes, gcfg.img_resolution, gcfg.num_ws, gcfg.w_dim)
        names, ws, masks = _annotated_pairs(latents_dir, masks_dir, *shape)
        held_out = None if eval_latents is None else _annotated_pairs(eval_latents, eval_masks, *shape)
        class_names = _names(names_file, num_classes)
        cfg = segtrain.SegTrainConfig(max_epochs=epochs)
        click.echo(f"training {num_models} classifiers on {len(names)} annotated images "
                   f"({len(names) * gcfg.img_resolution ** 2} pixels, {num_classes} classes)", err=True)
        with _progress(epochs, "epochs (early stop usually ends sooner)") as bar:
            state = {"epoch": 0}

            def on_progress(epoch, iteration, losses, stopped):
                if epoch + 1 > state["epoch"]:
                    bar.update(epoch + 1 - state["epoch"])
                    state["epoch"] = epoch + 1
            S, report = segtrain.train_segbranch(G, ws, masks, num_classes, jax.random.key(seed),
                                                 num_models=num_models, config=cfg, on_progress=on_progress)
        metrics = None if held_out is None else segtrain.evaluate(S, G, held_out[1], held_out[2])
    except _user_errors() as e:
        raise click.ClickException(str(e)) from None

    meta = {"training": {"checkpoint": str(ckpt), "annotated": names, "seed": seed, "num_models": num_models,
                         "config": dc.asdict(cfg), "iterations": report["iterations"], "epochs": report["epochs"],
                         "stopped_early": report["stopped_early"], "feature_bytes": report["feature_bytes"]}}
    if class_names is not None:
        meta["class_names"] = class_names
    if metrics is not None:
        meta["evaluation"] = {"images": held_out[0], **{k: metrics[k] for k in
                                                          ("pixel_accuracy", "miou", "per_class_accuracy",
                                                           "per_class_iou")}}
    try:
        save_checkpoint(dst, {"S": S}, meta)
    except (OSError, FileExistsError) as e:
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
