"""`jaxgan invert`: photos into latents (stylegan2-ada-pytorch's projector, or EditGAN's W+ embedding, optionally
started from EditGAN's encoder), by `jaxgan.edit.invert.invert_images`, outputs by `jaxgan.edit.invert_outputs`; or
with `--method pti` into a pivot latent and a tuned generator each, by `jaxgan.edit.pti.pti_images`, outputs by
`jaxgan.edit.pti_outputs`."""

from pathlib import Path

import click

from jaxgan.cli.common import (CHECKPOINT, LPIPS_ALEX_ENV, LazyImages, distributed_options, encoder_batch_norm,
                               encoder_options, load_encoder, load_generator, load_lpips, lpips_option,
                               outdir_option, plural, progress, reports_errors, write_files)
from jaxgan.edit.invert import EmbedConfig, ProjectorConfig
from jaxgan.edit.pti import PTIConfig

METHODS = ("latent", "pti")


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
@click.option("--method", type=click.Choice(METHODS), default="latent", show_default=True,
              help="latent: optimise the latent only (the method of --space). pti: pivotal tuning (PTI, "
                   "danielroich/PTI): find a pivot latent (--space w: PTI's W projector, --space w+: the W+ "
                   "embedding), then tune a copy of the generator on each photo at its pivot; writes NAME_G/, "
                   "the tuned generator, beside the usual files.")
@click.option("--lpips-alex", "lpips_alex_ckpt", type=click.Path(path_type=Path), envvar=LPIPS_ALEX_ENV,
              show_envvar=True,
              help="With --method pti: LPIPS with the AlexNet trunk (PTI's tuning loss), made by `jaxgan convert "
                   "alexnet-owt-7be5be79.pth DST --kind lpips-alex --lin alex.pth`.")
@click.option("--pivot", "pivot_files", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="With --method pti: start tuning from this latent (.npy, (num_ws, w_dim) or (w_dim,); a W latent "
                   "of any layer count, such as PTI's 18-row pivots, is used on the generator's layers) and skip "
                   "the pivot search. Once per image, in order.")
@click.option("--pivot-steps", type=click.IntRange(min=1), default=None,
              help=f"With --method pti: steps of the pivot search.  [default: {PTIConfig.pivot_steps} (PTI's "
                   "first_inv_steps)]")
@click.option("--tune-steps", type=click.IntRange(min=1), default=None,
              help=f"With --method pti: most tuning steps; tuning stops early once LPIPS-AlexNet reaches "
                   f"{PTIConfig.lpips_threshold}.  [default: {PTIConfig.tune_steps} (PTI's max_pti_steps)]")
@click.option("--locality", is_flag=True, default=False,
              help="With --method pti: add PTI's locality regulariser (alpha "
                   f"{PTIConfig.locality_alpha:g}, {PTIConfig.locality_mse_weight:g} MSE + "
                   f"{PTIConfig.locality_lpips_weight:g} LPIPS-AlexNet between the tuned and the original "
                   "generator away from the pivot), which keeps edits near the photo working.")
@click.option("--seed", type=click.IntRange(0, 2 ** 32 - 1), default=0, show_default=True,
              help="Key of the projector's random numbers (initial noise maps, w jitter): image i (0-based, in "
                   "command-line order) uses fold_in(key(SEED), i), whatever the batches. The W+ embedding is "
                   "deterministic.")
@outdir_option()
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True,
              help="Images per device inverted together; more images run in batches one after another.")
@click.option("--steps-per-call", type=click.IntRange(min=1), default=1, show_default=True,
              help="Optimisation steps run inside one compiled call (fewer host round trips).")
@click.option("--skip-existing", is_flag=True,
              help="Invert only the images whose outputs are not all in --outdir yet (each batch's files are "
                   "written whole as it finishes, and invert.json after every batch, so a stopped run is finished "
                   "by the same command with this flag; invert.json keeps the skipped images' entries).")
@distributed_options
@reports_errors
def invert_command(ckpt, images, lpips_ckpt, space, steps, encoder_ckpt, encoder_bn, method, lpips_alex_ckpt,
                   pivot_files, pivot_steps, tune_steps, locality, seed, outdir, batch_size, steps_per_call,
                   skip_existing):
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
    LPIPS, MSE and PSNR, the settings and the file names. Each batch's files are written as it finishes.
    With --coordinator / --num-processes / --process-id (or under srun) one job spans several processes: each
    reads and inverts its share of every batch and writes its images' files; process 0 writes invert.json (with
    --method pti also every tuned generator, which the others send it).

    With --method pti (PTI's settings: the pivot from its W projector, 450 steps at lr 0.01 from the mean of 600
    mapped z; tuning with Adam 3e-4 on MSE + LPIPS-AlexNet, at most 350 steps, stopping at LPIPS 0.06) each image
    NAME gets NAME_ws.npy (the pivot), NAME_G/ (the tuned generator: `jaxgan generate NAME_G --ws NAME_ws.npy`,
    `jaxgan drag NAME_G --ws NAME_ws.npy ...`), NAME_recon.png (tuned), NAME_pivot.png (the pivot on the original
    generator), NAME_target.png, NAME_compare.png (target | pivot | tuned) and NAME_loss.png (tuning losses);
    invert.json has LPIPS (vgg), MSE and PSNR before and after tuning.

    \b
    Examples:
      jaxgan invert ffhq face.png --lpips lpips-vgg --outdir inverted
      jaxgan invert ffhq a.png b.png --lpips lpips-vgg --space w+ --steps 200 --outdir embedded
      jaxgan invert car car.png --lpips lpips-vgg --space w+ --encoder car-encoder --steps 100 --outdir embedded
      jaxgan invert ffhq face.png --lpips lpips-vgg --method pti --lpips-alex lpips-alex --outdir tuned
    """
    from jaxgan import distributed
    if method == "pti":
        if skip_existing:
            raise click.UsageError("--method pti runs without --skip-existing, for now")
        return _pti(ckpt, images, lpips_ckpt, space, steps, encoder_ckpt, encoder_bn, lpips_alex_ckpt, pivot_files,
                    pivot_steps, tune_steps, locality, seed, outdir, batch_size, steps_per_call)
    for name, given in (("--pivot", bool(pivot_files)), ("--pivot-steps", pivot_steps is not None),
                        ("--tune-steps", tune_steps is not None), ("--locality", locality)):
        if given:
            raise click.UsageError(f"{name} goes with --method pti")
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
    encoder_bn = encoder_batch_norm(encoder_ckpt, encoder_bn)
    gcfg = G.config
    method, _, _, config_class, _ = invert.METHODS[space]
    overrides = {"steps": steps} if steps is not None else {}
    overrides.update({"encoder_batch_norm": encoder_bn} if encoder_bn is not None else {})
    cfg = config_class(**overrides)
    settings = {"space": space, "method": method, "steps": cfg.steps, "updates": invert.updates_for(space, cfg.steps),
                "seed": seed, "batch_size": batch_size, "steps_per_call": steps_per_call, "config": cfg,
                "encoder": None if encoder_ckpt is None else str(encoder_ckpt)}
    names = invert_outputs.unique_names(images)
    with_noise = space == "w" and bool(invert.noise_buffer_names(G))
    todo, kept = list(range(len(images))), {}
    if skip_existing:
        done = distributed.any_true(invert_outputs.finished(outdir, names, with_noise))  # seen by any process
        todo = [i for i in todo if not done[i]]
        kept = invert_outputs.previous_entries(outdir / invert_outputs.SUMMARY_NAME, settings)
        if not todo:
            click.echo(f"all {plural(len(images), 'inversion')} are in {outdir} already")
            return
    loss_names = invert.loss_names(space, encoder is not None)
    entries = {names[i]: kept[names[i]] for i in range(len(images)) if names[i] in kept and i not in todo}

    def write_batch(result):
        files, batch_entries, lines = invert_outputs.batch_files(
            G, [names[i] for i in todo], [images[i] for i in todo], targets, result, settings=settings)
        write_files(outdir, files)
        for line in lines:
            click.echo(line)
        for part in distributed.allgather_objects(batch_entries):  # every process's entries, to process 0
            entries.update((entry["name"], entry) for entry in part)
        if distributed.is_primary():  # after every batch: a stopped run keeps the summary of what it finished
            ordered = [entries[n] for n in names if n in entries]
            write_files(outdir, {invert_outputs.SUMMARY_NAME: invert_outputs.summary_file(invert_outputs.summary_of(
                ordered, checkpoint=ckpt, lpips_checkpoint=lpips_ckpt, settings=settings, loss_names=loss_names))})

    targets = LazyImages([images[i] for i in todo], lambda path: load_image(path, gcfg.img_resolution,
                                                                             gcfg.img_channels, fit=cfg.image_fit))
    for _, _, mine in invert.batch_plan(len(todo), batch_size):  # this process's images, read before any work
        for i in mine:
            targets[i]
    batches = -(-len(todo) // (batch_size * parallel.device_count()))
    label = f"inverting {plural(len(todo), 'image')} ({method}, {space})"
    with progress(settings["updates"] * batches, label, item_show_func=lambda x: x) as bar:
        result = invert.invert_images(G, lpips, targets, space=space, cfg=cfg, seed=seed, encoder=encoder,
                                      batch_size=batch_size, steps_per_call=steps_per_call, indices=todo,
                                      on_progress=bar.update, on_batch=write_batch)
        bar.update(bar.length - bar.pos)
    who = distributed.message_prefix()
    skipped = len(images) - len(todo)
    summary = f" and {invert_outputs.SUMMARY_NAME}" if distributed.is_primary() else ""
    click.echo(f"{who}wrote {plural(len(result['rows']), 'inversion')}{summary} to {outdir}"
               + (f" ({skipped} there already)" if skipped else ""))


def _pti(ckpt, images, lpips_ckpt, space, steps, encoder_ckpt, encoder_bn, lpips_alex_ckpt, pivot_files,
         pivot_steps, tune_steps, locality, seed, outdir, batch_size, steps_per_call):
    """`jaxgan invert --method pti`: pivots, tuning, files and one checkpoint per image."""
    if steps is not None:
        raise click.UsageError("with --method pti, give --pivot-steps and --tune-steps instead of --steps")
    if pivot_files and (pivot_steps is not None or encoder_ckpt is not None):
        raise click.UsageError("--pivot skips the pivot search: --pivot-steps and --encoder do not apply")
    if pivot_files and len(pivot_files) != len(images):
        raise click.UsageError(f"{len(pivot_files)} --pivot files for {plural(len(images), 'image')}: give one per "
                               "image")
    if encoder_ckpt is not None and space != "w+":
        raise click.UsageError("--encoder goes with --space w+ (the W+ embedding pivot)")
    if encoder_bn is not None and encoder_ckpt is None:
        raise click.UsageError("--encoder-bn goes with --encoder")
    import numpy as np

    from jaxgan import distributed, parallel
    from jaxgan.checkpoint import save_checkpoint
    from jaxgan.edit import invert, invert_outputs, pti, pti_outputs
    from jaxgan.images import load_image

    lpips = load_lpips(lpips_ckpt)
    lpips_alex = load_lpips(lpips_alex_ckpt, net="alex")
    G = load_generator(ckpt)
    encoder = load_encoder(encoder_ckpt)
    overrides = {"pivot_space": space, "locality": locality}
    overrides.update({"pivot_steps": pivot_steps} if pivot_steps is not None else {})
    overrides.update({"tune_steps": tune_steps} if tune_steps is not None else {})
    encoder_bn = encoder_batch_norm(encoder_ckpt, encoder_bn)
    overrides.update({"pivot_encoder_batch_norm": encoder_bn} if encoder_bn is not None else {})
    cfg = PTIConfig(**overrides)
    if encoder is not None:
        from jaxgan.edit.invert import check_encoder
        check_encoder(G, encoder)
    pivots = None
    if pivot_files:
        pivots = []
        for path in pivot_files:
            try:
                pivots.append(pti.pivot_of(G, np.load(path, allow_pickle=False)))
            except (ValueError, OSError) as e:
                raise click.ClickException(f"{path}: {e}") from None
    gcfg = G.config
    targets = LazyImages(images, lambda path: load_image(path, gcfg.img_resolution, gcfg.img_channels,
                                                         fit=cfg.image_fit))
    # On a device with an allocator limit, the batch is capped by XLA's memory analysis of one image's step (a
    # compilation of its own); on the CPU only the state's size is recorded.
    limit = pti.device_memory_limit()
    memory = pti.tuning_memory_per_image(G, lpips_alex, cfg, temporaries=limit is not None)
    if limit is not None:
        fits = pti.images_per_device(memory["total"], limit)
        click.echo(f"note: tuning takes about {memory['total'] / 2 ** 20:.0f} MiB per image"
                   + (f"; the batch is capped at {fits} per device" if fits < batch_size else ""), err=True)
        batch_size = min(batch_size, fits)
    mine = pti.images_of_process(len(images), batch_size)  # all images, unless this is one process of several
    for i in mine:  # this process's photos, read (and refused) before any work
        targets[i]
    batches = -(-len(images) // (batch_size * parallel.device_count()))
    pivot_updates = 0 if pivots is not None else (cfg.pivot_steps if space == "w" else cfg.pivot_steps - 1)
    label = f"PTI on {plural(len(images), 'image')} (pivot: {'given' if pivots is not None else space})"
    with progress((pivot_updates + cfg.tune_steps) * batches, label) as bar:  # every process takes part
        result = pti.pti_images(G, lpips, lpips_alex, targets, cfg=cfg, seed=seed, pivots=pivots, encoder=encoder,
                                batch_size=batch_size, steps_per_call=steps_per_call,
                                on_progress=lambda k, phase: bar.update(k))
        bar.update(bar.length - bar.pos)  # tuning that stopped early skips its remaining steps

    settings = {"method": "pti", "pivot": "given" if pivots is not None else space, "seed": seed,
                "batch_size": batch_size, "steps_per_call": steps_per_call, "config": cfg,
                "memory_per_image_bytes": memory,
                "encoder": None if encoder_ckpt is None else str(encoder_ckpt),
                "pivot_files": [str(Path(p).resolve()) for p in pivot_files]}
    names = invert_outputs.unique_names(images)
    entries, generators, lines = [], {}, []
    if mine:
        files, generators, entries, lines = pti_outputs.pti_files(
            [images[i] for i in mine], [targets[i] for i in mine], result, checkpoint=ckpt, settings=settings,
            names=[names[i] for i in mine])
        write_files(outdir, files)
    written = 0
    try:  # in a job of several processes, process 0 writes every process's generators (see pti.tuned_generators)
        for (name, meta), model in pti.tuned_generators(G, result, list(generators.items())):
            save_checkpoint(outdir / name, {"G": model}, meta, replace=True)
            written += 1
    except OSError as e:
        raise click.ClickException(f"cannot write the tuned generators: {e}") from None
    for line in lines:
        click.echo(line)
    # after every process's files: the summary last, its presence means the whole run completed; in image order
    # (a process's images are its rows of each batch)
    pairs = [pair for part in distributed.allgather_objects(list(zip(mine, entries))) for pair in part]
    every = [entry for _, entry in sorted(pairs, key=lambda pair: pair[0])]
    if distributed.is_primary():
        write_files(outdir, {invert_outputs.SUMMARY_NAME: pti_outputs.summary_file(
            every, checkpoint=ckpt, lpips_checkpoint=lpips_ckpt, lpips_alex_checkpoint=lpips_alex_ckpt,
            settings=settings, loss_names=pti.loss_names(cfg.locality),
            pivot_loss_names=None if pivots is not None else invert.loss_names(space, encoder is not None))})
    if distributed.is_primary():
        click.echo(f"{distributed.message_prefix()}wrote {plural(len(mine), 'pivot')}, "
                   f"{plural(written, 'tuned generator')} and {invert_outputs.SUMMARY_NAME} to {outdir}")
    else:
        click.echo(f"{distributed.message_prefix()}wrote {plural(len(mine), 'pivot')} to {outdir} (process 0 "
                   "writes the tuned generators)")
