"""`jaxgan generate`: images from seeds, z or latents with a StyleGAN2 or StyleGAN3 generator, by `jaxgan.sampling`."""

from pathlib import Path

import click

from jaxgan.cli.common import (CHECKPOINT, distributed_options, load_generator, npy, outdir_option, parse_seeds,
                               parse_vec2, png, progress, reports_errors, write_files)
from jaxgan.sampling import GenerationOptions


@click.command("generate")
@click.argument("ckpt", type=CHECKPOINT)
@click.option("--seeds", help="Random seeds, e.g. '0-7,12'; z = np.random.RandomState(seed).randn(1, z_dim) "
                              "exactly as stylegan2-ada-pytorch's generate.py.")
@click.option("--z", "z_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Latents z as a .npy array of shape (N, z_dim).")
@click.option("--ws", "ws_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Intermediate latents as .npy: (N, num_ws, w_dim) or (num_ws, w_dim) (one image, e.g. the "
                   "NAME_ws.npy of `jaxgan invert` or the drag_ws.npy of `jaxgan drag`), or w vectors (N, w_dim) "
                   "repeated on every layer; the rule is in the README (Latent files). Skips the mapping network.")
@click.option("--trunc", "truncation_psi", type=float, default=GenerationOptions.truncation_psi, show_default=True,
              help="Truncation psi: ws are pulled towards w_avg (1 = none).")
@click.option("--trunc-cutoff", "truncation_cutoff", type=click.IntRange(min=0), default=None,
              help="Truncate only the first N ws (default: all).")
@click.option("--class", "class_idx", type=click.IntRange(min=0), default=None,
              help="Class index for conditional networks.")
@click.option("--noise-mode", type=click.Choice(["const", "random", "none"]), default=GenerationOptions.noise_mode,
              show_default=True,
              help="const: the network's stored noise; random: fresh noise per image (from --noise-seed); none.")
@click.option("--noise-seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed for --noise-mode random; image i uses fold_in(key(noise_seed), seed or row index).")
@outdir_option("Directory for the PNGs (created if missing).")
@click.option("--grid", is_flag=True, help="Also write all images tiled into grid.png.")
@click.option("--raw", "raw_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Also save the unclipped float32 output as .npy of shape (N, H, W, C).")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True,
              help="Images per device per step.")
@click.option("--fused-modconv", is_flag=True,
              help="StyleGAN2: use per-sample (grouped) modulated convolutions; same numbers, usually slower on CPU.")
@click.option("--translate", type=str, default=None, metavar="X,Y",
              help="StyleGAN3: translate the output by X,Y (in units of the input grid, e.g. '0.3,1'), as "
                   "stylegan3's gen_images.py.  [default: 0,0]")
@click.option("--rotate", type=float, default=GenerationOptions.rotate,
              help="StyleGAN3: rotate the output by this many degrees, as gen_images.py.  [default: 0]")
@click.option("--skip-existing", is_flag=True,
              help="Generate only the images whose PNG is not in --outdir yet (each PNG is written whole, as its "
                   "batch finishes, so a stopped run is finished by the same command with this flag).")
@distributed_options
@reports_errors
def generate_command(ckpt, seeds, z_file, ws_file, truncation_psi, truncation_cutoff, class_idx, noise_mode,
                     noise_seed, outdir, grid, raw_file, batch_size, fused_modconv, translate, rotate, skip_existing):
    """Generate images with the generator of the jaxgan checkpoint CKPT.

    Give exactly one of --seeds, --z, --ws. Writes seed0000.png-style names for seeds and img0000.png for
    --z / --ws rows, converted as generate.py does: (img * 127.5 + 128) clipped to [0, 255], truncated to uint8.
    Generation is batched and spread over all local devices, with a progress bar; each batch's PNGs are written
    as it finishes. For a StyleGAN3 generator the input transform is set from --translate / --rotate (the identity
    without them), as gen_images.py sets it. With --coordinator / --num-processes / --process-id (or under
    srun) one job spans several processes: every process runs its share of every batch and writes its own
    images into --outdir (--grid and --raw, which need every image, are for one process).

    \b
    Examples:
      jaxgan generate ffhq --seeds 0-7 --trunc 0.7 --outdir out --grid
      jaxgan generate ffhq --ws edited_ws.npy --outdir out --raw out/raw.npy
      jaxgan generate sg3-afhq --seeds 0-3 --translate 0.2,0 --rotate 10 --outdir out
    """
    import numpy as np

    from jaxgan import distributed, sampling
    from jaxgan.images import tile_grid
    from jaxgan.latents import read_latents

    if sum(s is not None for s in (seeds, z_file, ws_file)) != 1:
        raise click.UsageError("give exactly one of --seeds, --z, --ws")
    if distributed.process_count() > 1 and (grid or raw_file is not None):
        raise click.UsageError("--grid and --raw need every image in one process; leave them out of a job of "
                               "several processes")
    if skip_existing and (grid or raw_file is not None):
        raise click.UsageError("--grid and --raw need every image; leave them out with --skip-existing")
    if ws_file is not None and (truncation_psi != 1.0 or truncation_cutoff is not None or class_idx is not None):
        raise click.UsageError("--trunc, --trunc-cutoff and --class apply to --seeds / --z, not to --ws")
    G = load_generator(ckpt)
    cfg = G.config
    family_options = {"fused_modconv": fused_modconv}  # StyleGAN2's; StyleGAN3's are translate and rotate
    if translate is not None or rotate != GenerationOptions.rotate:
        family_options = {"translate": parse_vec2(translate or "0,0", "--translate"), "rotate": rotate}
        if fused_modconv:
            raise click.UsageError("--fused-modconv is for StyleGAN2 generators, --translate / --rotate for "
                                   "StyleGAN3 ones")
    if truncation_cutoff is not None and truncation_cutoff > cfg.num_ws:
        raise ValueError(f"--trunc-cutoff {truncation_cutoff} exceeds num_ws {cfg.num_ws}")
    job = sampling.generation_job(
        cfg, seeds=parse_seeds(seeds) if seeds is not None else None,
        z=np.load(z_file, allow_pickle=False) if z_file is not None else None,
        ws=read_latents(ws_file, cfg.num_ws, cfg.w_dim) if ws_file is not None else None, class_idx=class_idx)
    options = GenerationOptions(truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                                noise_mode=noise_mode, **family_options)
    skipped = 0
    if skip_existing:
        done = distributed.any_true([(outdir / name).exists() for name in job.names])
        skipped = int(done.sum())
        if skipped == len(job.names):
            click.echo(f"all {len(job.names)} images are in {outdir} already")
            return
        job = job.subset(np.flatnonzero(~done))
    written = []

    def write_batch(indices, images):
        write_files(outdir, {job.names[i]: png(pixels) for i, pixels in zip(indices, sampling.to_uint8(images))})
        written.extend(indices)
    with progress(len(job.ids), f"generating {len(job.ids)} images") as bar:
        images = sampling.generate_images(G, **job.inputs, keys=sampling.noise_keys(job.ids, noise_seed),
                                          options=options, batch_size=batch_size, on_progress=bar.update,
                                          on_images=write_batch)
    if grid:
        write_files(outdir, {"grid.png": png(tile_grid(sampling.to_uint8(images)))})
    if raw_file is not None:
        write_files(raw_file.parent, {raw_file.name: npy(images.astype(np.float32))})
    who = distributed.message_prefix()
    click.echo(f"{who}wrote {len(written)} images to {outdir}" + (f" and {raw_file}" if raw_file else "")
               + (f" ({skipped} there already)" if skipped else ""))
    totals = distributed.allgather_objects(len(written))  # also the job's last barrier: a lost process shows here
    if len(totals) > 1 and distributed.is_primary():
        click.echo(f"the job wrote {sum(totals)} images to {outdir}")
