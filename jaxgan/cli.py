"""The `jaxgan` command line: convert checkpoints, generate images, drag points (DragGAN), invert photos into
latents (projector / W+ embedding), measure LPIPS distances, synthesise images from label maps (pix2pixHD).

Each command parses its options, calls one library function, and writes its outputs atomically (temporary name,
then rename). Bad input gives a one-line error and a non-zero exit. JAX is imported inside the commands so that
`--help` stays instant.
"""

import functools
import sys
import warnings
from pathlib import Path

import click

from jaxgan.demo import CHECKPOINT
from jaxgan.files import atomic_write
from jaxgan.images import tile_grid


def parse_seeds(text: str) -> list[int]:
    """'0-7,12' -> [0, 1, ..., 7, 12] (ranges inclusive, as stylegan2-ada-pytorch's generate.py)."""
    seeds = []
    try:
        for part in text.split(","):
            lo, is_range, hi = part.strip().partition("-")
            seeds.extend(range(int(lo), int(hi) + 1) if is_range else [int(lo)])
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a seed list like '0-7,12'", param_hint="--seeds") from None
    if not seeds or any(s < 0 or s >= 2 ** 32 for s in seeds):
        raise click.BadParameter("seeds must be integers in [0, 2**32)", param_hint="--seeds")
    return seeds


_atomic_write = atomic_write  # the other CLI modules import it under this name


def _save_png(path: Path, image_uint8) -> None:
    from jaxgan.images import PNG_MODES, png_writer
    if image_uint8.shape[-1] not in PNG_MODES:
        raise click.ClickException(f"cannot write a PNG with {image_uint8.shape[-1]} channels; use --raw")
    _atomic_write(path, png_writer(image_uint8))


def _user_errors():
    """Exceptions that mean bad input, reported as one line rather than a traceback."""
    from checkpoints_convert.keymap import ConversionError
    from checkpoints_convert.torch_reader import CheckpointError
    from jaxgan.checkpoint import CheckpointFormatError
    return (CheckpointError, ConversionError, CheckpointFormatError, FileExistsError, ValueError)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="jaxgan")
def main():
    """jaxgan: GAN-based image editing in JAX.

    \b
    Typical use:
      jaxgan convert network-snapshot.pkl ffhq        # official .pkl or rosinality .pt -> jaxgan checkpoint
      jaxgan generate ffhq --seeds 0-7 --outdir out   # images, batched over all local devices
      jaxgan drag ffhq --seed 0 --points 250,200 --targets 250,260 --outdir dragged   # DragGAN
      jaxgan invert ffhq face.png --lpips lpips-vgg --outdir inverted   # photo -> latent (projector)
      jaxgan lpips --lpips lpips-vgg a.png b.png      # perceptual distance
      jaxgan pix2pixhd label2city --labels L.png --inst I.png --outdir out   # pix2pixHD labels -> image
    """


@main.command()
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path))
@click.option("--kind", type=click.Choice(["auto", "stylegan2-ada", "rosinality", "lpips-vgg", "segbranch",
                                           "pix2pixhd", "vgg19"]),
              default="auto", show_default=True,
              help="Source format. auto looks at the file's bytes: torch.save files (zip or legacy) are rosinality "
                   "checkpoints, other pickles are network pickles. lpips-vgg (never auto-detected): SRC is "
                   "torchvision's VGG16 weights and --lin the LPIPS lin weights. segbranch (never auto-detected): "
                   "SRC is the DatasetGAN / EditGAN classifier files model_N.pth, or their directory. pix2pixhd "
                   "(never auto-detected): SRC is a pix2pixHD latest_net_G.pth (or _D, _E). vgg19 (never "
                   "auto-detected): torchvision's vgg19-dcbb9e9d.pth, the trunk of pix2pixHD's VGG loss.")
@click.option("--lin", "lin_file", type=click.Path(dir_okay=False, path_type=Path),
              help="With --kind lpips-vgg (and only then, required): the LPIPS v0.1 lin-weight file "
                   "lpips/weights/v0.1/vgg.pth (in the lpips pip package, or "
                   "github.com/richzhang/PerceptualSimilarity).")
@click.option("--label-nc", type=click.IntRange(min=0), default=None,
              help="With --kind pix2pixhd: the generator's label classes (one-hot channels; 0: the label map is an "
                   "RGB image).  [default: 35, Cityscapes]")
@click.option("--no-instance", is_flag=True, default=None,
              help="With --kind pix2pixhd: the generator takes no instance-edge channel (trained with --no_instance).")
@click.option("--feat-num", type=click.IntRange(min=0), default=None,
              help="With --kind pix2pixhd: feature channels after the labels and edges (--instance_feat / "
                   "--label_feat models).  [default: 0]")
def convert(sources: tuple[Path, ...], dst: Path, kind: str, lin_file: Path | None, label_nc: int | None,
            no_instance: bool | None, feat_num: int | None):
    """Convert a PyTorch checkpoint SRC into a jaxgan checkpoint directory DST.

    \b
    Usage: jaxgan convert SRC DST, or for --kind segbranch: jaxgan convert DIR_OR_FILES... DST
    Reads, without torch and without running any code stored in the file:
      - stylegan2-ada-pytorch / stylegan3-repo (StyleGAN2) / DragGAN network pickles (.pkl):
        G_ema is converted for generation, D when present;
      - rosinality stylegan2-pytorch checkpoints (.pt): g_ema with latent_avg, and d when present;
      - LPIPS v0.1 (vgg), for `jaxgan lpips` and `jaxgan invert` (--kind lpips-vgg): SRC is torchvision's
        vgg16-397923af.pth (https://download.pytorch.org/models/vgg16-397923af.pth), --lin is
        lpips/weights/v0.1/vgg.pth from the lpips package (github.com/richzhang/PerceptualSimilarity);
      - the DatasetGAN / EditGAN segmentation branch (--kind segbranch), for `jaxgan editgan`: the ensemble's
        pixel-classifier files ({'model_state_dict': ...}, `module.` prefixes), given one by one or as the
        directory holding model_0.pth, model_1.pth, ... (or car_model_N.pth); they are stacked in model order;
      - pix2pixHD (--kind pix2pixhd), for `jaxgan pix2pixhd`: latest_net_G.pth (global or local generator, the
        structure read from the tensor shapes), latest_net_D.pth, latest_net_E.pth; legacy or zip torch.save,
        InstanceNorm running statistics ignored, netG./netD./netE. prefixes accepted. The generator's input
        encoding (--label-nc, --no-instance, --feat-num) is stored with it and must add up to its input channels;
      - torchvision's vgg19-dcbb9e9d.pth (--kind vgg19) as model VGG19: convs up to relu5_1, for the perceptual
        loss of pix2pixHD training (jaxgan.train.pix2pixhd).
    DST gets an orbax checkpoint and jaxgan.json (model configs, SHA-256 of the sources, converter version).
    DST must not exist; it appears only once complete.

    \b
    Examples:
      jaxgan convert stylegan2-ffhq-512x512.pkl ffhq512
      jaxgan convert vgg16-397923af.pth lpips-vgg --kind lpips-vgg --lin vgg.pth
      jaxgan convert checkpoint/datasetgan_pretrain/classifier car-seg --kind segbranch
      jaxgan convert checkpoints/label2city_1024p/latest_net_G.pth label2city --kind pix2pixhd --label-nc 35
    """
    if kind == "lpips-vgg" and lin_file is None:
        raise click.UsageError("--kind lpips-vgg needs --lin, the LPIPS lin-weight file lpips/weights/v0.1/vgg.pth")
    if kind != "lpips-vgg" and lin_file is not None:
        raise click.UsageError("--lin only goes with --kind lpips-vgg")
    if kind != "pix2pixhd" and (label_nc is not None or no_instance or feat_num is not None):
        raise click.UsageError("--label-nc, --no-instance and --feat-num only go with --kind pix2pixhd")
    if len(sources) > 1 and kind != "segbranch":
        raise click.UsageError("several source files only go with --kind segbranch (one file per classifier)")
    from checkpoints_convert.convert import convert_file, convert_segbranch_files
    try:
        if kind == "segbranch":
            out = convert_segbranch_files(sources, dst)
        else:
            if sources[0].is_dir():
                raise ValueError(f"{sources[0]} is a directory; only --kind segbranch reads a directory of files")
            encoding = ({"label_nc": label_nc, "no_instance": no_instance, "feat_num": feat_num}
                        if kind == "pix2pixhd" else {})
            out = convert_file(sources[0], dst, kind=kind, lin=lin_file, **encoding)
    except _user_errors() as e:
        raise click.ClickException(str(e)) from None
    from jaxgan.checkpoint import read_sidecar
    sidecar = read_sidecar(out)
    for name, entry in sidecar["models"].items():
        cfg = entry["config"]
        if entry["kind"] == "lpips-vgg":
            click.echo(f"{name}: {entry['kind']} (LPIPS v{cfg['version']}, {cfg['net']} trunk)")
        elif entry["kind"] == "segbranch":
            click.echo(f"{name}: {entry['kind']} ({cfg['num_models']} classifiers, {cfg['num_classes']} classes, "
                       f"{cfg['feature_dim']} feature channels)")
        elif entry["kind"] == "pix2pixhd-generator":
            parts = [f"label_nc {cfg['label_nc']}"] + ([] if cfg["no_instance"] else ["instance edges"])
            parts += [f"{cfg['feat_num']} feature channels"] if cfg["feat_num"] else []
            click.echo(f"{name}: {entry['kind']} ({cfg['netG']}, ngf {cfg['ngf']}, input {cfg['input_nc']} channels: "
                       f"{' + '.join(parts)})")
        elif entry["kind"].startswith("stylegan2-"):
            click.echo(f"{name}: {entry['kind']} {cfg['img_resolution']}x{cfg['img_resolution']}, "
                       f"c_dim {cfg['c_dim']}, architecture {cfg['architecture']}")
        else:
            click.echo(f"{name}: {entry['kind']}")
    source = sidecar.get("source", {})
    if source.get("kind") == "lpips-vgg":
        if not source.get("vgg_is_torchvision_vgg16_397923af", True):
            click.echo(f"note: {source.get('file')} is not torchvision's vgg16-397923af.pth; distances will differ "
                       "from published LPIPS values", err=True)
        if not source.get("lin", {}).get("released_v0.1_vgg", True):
            click.echo(f"note: {source['lin'].get('file')} is not the released lpips v0.1 vgg.pth", err=True)
    click.echo(f"wrote {out}")


@main.command()
@click.argument("ckpt", type=CHECKPOINT)
@click.option("--seeds", help="Random seeds, e.g. '0-7,12'; z = np.random.RandomState(seed).randn(1, z_dim) "
                              "exactly as stylegan2-ada-pytorch's generate.py.")
@click.option("--z", "z_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Latents z as a .npy array of shape (N, z_dim).")
@click.option("--ws", "ws_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Intermediate latents as .npy, (N, num_ws, w_dim) or (N, w_dim); skips the mapping network.")
@click.option("--trunc", "truncation_psi", type=float, default=1.0, show_default=True,
              help="Truncation psi: ws are pulled towards w_avg (1 = none).")
@click.option("--trunc-cutoff", "truncation_cutoff", type=click.IntRange(min=0), default=None,
              help="Truncate only the first N ws (default: all).")
@click.option("--class", "class_idx", type=click.IntRange(min=0), default=None,
              help="Class index for conditional networks.")
@click.option("--noise-mode", type=click.Choice(["const", "random", "none"]), default="const", show_default=True,
              help="const: the network's stored noise; random: fresh noise per image (from --noise-seed); none.")
@click.option("--noise-seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed for --noise-mode random; image i uses fold_in(key(noise_seed), seed or row index).")
@click.option("--outdir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the PNGs (created if missing).")
@click.option("--grid", is_flag=True, help="Also write all images tiled into grid.png.")
@click.option("--raw", "raw_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Also save the unclipped float32 output as .npy of shape (N, H, W, C).")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True,
              help="Images per device per step.")
@click.option("--fused-modconv", is_flag=True,
              help="Use per-sample (grouped) modulated convolutions; same numbers, usually slower on CPU.")
def generate(ckpt, seeds, z_file, ws_file, truncation_psi, truncation_cutoff, class_idx, noise_mode, noise_seed,
             outdir, grid, raw_file, batch_size, fused_modconv):
    """Generate images with the generator of the jaxgan checkpoint CKPT.

    Give exactly one of --seeds, --z, --ws. Writes seed0000.png-style names for seeds and img0000.png for
    --z / --ws rows, converted as generate.py does: (img * 127.5 + 128) clipped to [0, 255], truncated to uint8.
    Generation is batched and spread over all local devices, with a progress bar.

    \b
    Examples:
      jaxgan generate ffhq --seeds 0-7 --trunc 0.7 --outdir out --grid
      jaxgan generate ffhq --ws edited_ws.npy --outdir out --raw out/raw.npy
    """
    import numpy as np

    sources = [s for s in (seeds, z_file, ws_file) if s is not None]
    if len(sources) != 1:
        raise click.UsageError("give exactly one of --seeds, --z, --ws")
    if ws_file is not None and (truncation_psi != 1.0 or truncation_cutoff is not None or class_idx is not None):
        raise click.UsageError("--trunc, --trunc-cutoff and --class apply to --seeds / --z, not to --ws")
    try:
        from jaxgan import sampling
        from jaxgan.checkpoint import load_checkpoint
        models, _ = load_checkpoint(ckpt, names=("G",))
        G = models["G"]
        cfg = G.config
        seed_list = parse_seeds(seeds) if seeds is not None else None
        inputs = {}
        if seed_list is not None:
            inputs["z"] = sampling.z_from_seeds(seed_list, cfg.z_dim)
        elif z_file is not None:
            z = np.load(z_file, allow_pickle=False)
            if z.ndim != 2 or z.shape[1] != cfg.z_dim:
                raise ValueError(f"{z_file}: z must have shape (N, {cfg.z_dim}), got {z.shape}")
            inputs["z"] = z
        else:
            inputs["ws"] = sampling.broadcast_ws(np.load(ws_file, allow_pickle=False), cfg.num_ws, cfg.w_dim)
        count = len(next(iter(inputs.values())))
        if count == 0:
            raise ValueError("nothing to generate: the input has no rows")
        if "z" in inputs:
            inputs["c"] = sampling.one_hot_labels(class_idx, cfg.c_dim, count)
        if truncation_cutoff is not None and truncation_cutoff > cfg.num_ws:
            raise ValueError(f"--trunc-cutoff {truncation_cutoff} exceeds num_ws {cfg.num_ws}")
        ids = seed_list if seed_list is not None else list(range(count))
        keys = sampling.noise_keys(ids, noise_seed)
        options = sampling.GenerationOptions(truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                                             noise_mode=noise_mode, fused_modconv=fused_modconv)
        outdir.mkdir(parents=True, exist_ok=True)
        with click.progressbar(length=count, label=f"generating {count} images", file=sys.stderr) as bar:
            images = sampling.generate_images(G, **inputs, keys=keys, options=options, batch_size=batch_size,
                                              on_progress=bar.update)
    except _user_errors() as e:
        raise click.ClickException(str(e)) from None

    pixels = sampling.to_uint8(images)
    names = [f"seed{s:04d}.png" for s in seed_list] if seed_list is not None else [f"img{i:04d}.png" for i in ids]
    for name, image in zip(names, pixels):
        _save_png(outdir / name, image)
    if grid:
        _save_png(outdir / "grid.png", tile_grid(pixels))
    if raw_file is not None:
        raw_file.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(raw_file, lambda f: np.save(f, images.astype(np.float32)))
    click.echo(f"wrote {len(names)} images to {outdir}" + (f" and {raw_file}" if raw_file else ""))


def _drag_session(G, cfg, job):
    """A fresh drag session for a `drag_outputs.Job`: w0 as the DragGAN renderer builds it, or from a file."""
    import numpy as np
    from jaxgan import sampling
    from jaxgan.edit import drag, drag_outputs
    from jaxgan.models import stylegan2
    gcfg = G.config
    mask = drag_outputs.load_mask(job.mask, gcfg.img_resolution) if job.mask is not None else None
    if job.ws is not None:
        w0 = drag_outputs.load_latent(job.ws, gcfg.num_ws, gcfg.w_dim)
    else:  # renderer.py: mapping(RandomState(seed).randn(1, z_dim), zero label, truncation_psi=psi)
        z = sampling.z_from_seeds([job.seed], gcfg.z_dim)
        w0 = np.asarray(stylegan2.mapping(G, z, np.zeros((1, gcfg.c_dim), np.float32), truncation_psi=job.trunc))[0]
    state = drag.new_session(cfg, w0, job.points, job.targets, mask=mask, space=job.space, lr=job.lr,
                             lambda_mask=job.lambda_mask, max_steps=job.steps)
    return state, drag_outputs.mask_note(mask)


def _run_drag_sessions(G, cfg, states, steps_per_call: int):
    """drag.run_sessions with a progress bar over steps, on the first min(N, devices) local devices: a single
    session runs on one device rather than beside finished padding copies on the others."""
    import jax
    from jaxgan import parallel
    from jaxgan.edit import drag
    count = len(states)
    devices = jax.local_devices()[:count]
    total = max(int(s.max_steps) for s in states) + 1  # the step cap plus the closing observation
    label = "dragging" if count == 1 else f"dragging {count} sessions on {len(devices)} device(s)"
    with click.progressbar(length=total, label=label, file=sys.stderr, item_show_func=lambda x: x) as bar:
        def on_step(done, _):
            bar.update(min(steps_per_call, total - bar.pos), f"{done}/{count} finished" if count > 1 else None)
        finals, traces = drag.run_sessions(G, cfg, states, mesh=parallel.data_mesh(devices),
                                           steps_per_call=steps_per_call, on_step=on_step)
        bar.update(total - bar.pos)  # sessions that reach their targets end early
    return finals, traces


@main.command("drag")
@click.argument("ckpt", type=CHECKPOINT)
@click.option("--seed", type=click.IntRange(0, 2 ** 32 - 1),
              help="Start from w0 = mapping(np.random.RandomState(SEED).randn(1, z_dim)) (zero class label for "
                   "conditional networks), truncated by --trunc, as the DragGAN renderer.")
@click.option("--trunc", type=float, default=None,
              help="Truncation psi for --seed, and the default of job-file jobs with a seed.  [default: 0.7]")
@click.option("--ws", "ws_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Start from this latent instead: .npy of shape (num_ws, w_dim), (1, num_ws, w_dim) or (w_dim,), "
                   "e.g. the drag_ws.npy of an earlier drag.")
@click.option("--points", help="Handle points as 'row,col;row,col' image pixels (row = y, col = x).")
@click.option("--targets", help="One target per handle point, same format.")
@click.option("--mask", "mask_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="PNG of the image's size whose white pixels (> 127 in greyscale; alpha ignored) mark the region "
                   "that may move, as painted in the DragGAN GUI. Default: everything may move.")
@click.option("--space", type=click.Choice(["w+", "w"]), default="w+", show_default=True,
              help="Optimise the first 6 ws separately (w+) or one shared w.")
@click.option("--steps", type=click.IntRange(min=0), default=200, show_default=True,
              help="Cap on optimisation steps. The drag stops earlier once every handle is within max(2, 2*H/512) "
                   "px of its target, the official stop rule.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True,
              help="Adam step size.")
@click.option("--lambda-mask", type=click.FloatRange(min=0), default=20.0, show_default=True,
              help="Weight of the term that keeps the fixed (black) region of --mask unchanged.")
@click.option("--r1", type=click.FloatRange(min=0, min_open=True), default=3.0, show_default=True,
              help="Motion-supervision patch radius in pixels at 512 px (scaled with the image).")
@click.option("--r2", type=click.FloatRange(min=0, min_open=True), default=12.0, show_default=True,
              help="Point-tracking search radius in pixels at 512 px (scaled with the image).")
@click.option("--feature-idx", type=click.IntRange(min=0), default=5, show_default=True,
              help="Synthesis block whose features are supervised and tracked (5 = the 6th block).")
@click.option("--jobs", "jobs_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Run the sessions of this JSON job file together, batched and spread over the local devices "
                   "(schema in the README); outputs go to OUTDIR/<name>/. --trunc, --space, --steps, --lr and "
                   "--lambda-mask then give the defaults of the jobs.")
@click.option("--outdir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for drag.png, drag.gif, drag_ws.npy and drag.json (created if missing).")
@click.option("--trace", "trace_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Also save the per-step trace as .npz: points, targets, losses, ws, stop, updated.")
@click.option("--steps-per-call", type=click.IntRange(min=1), default=1, show_default=True,
              help="Drag steps run inside one compiled call (fewer host round trips; the bar moves in these units).")
def drag_command(ckpt, seed, trunc, ws_file, points, targets, mask_file, space, steps, lr, lambda_mask, r1, r2,
                 feature_idx, jobs_file, outdir, trace_file, steps_per_call):
    """Drag handle points of a generated image to targets (DragGAN), with the generator of checkpoint CKPT.

    One session: give --seed (or --ws), --points and --targets, optionally --mask. Many sessions at once: --jobs.
    Follows the official DragGAN renderer step for step (defaults included). Writes into OUTDIR the final image
    drag.png, an animated drag.gif (handles red, targets blue), the final latent drag_ws.npy (num_ws, w_dim),
    which --ws accepts to continue the drag, and a summary drag.json (final points, distances, steps, why it
    stopped, settings).

    \b
    Examples:
      jaxgan drag ffhq --seed 0 --points 250,200 --targets 250,260 --outdir out
      jaxgan drag ffhq --ws out/drag_ws.npy --points 300,256 --targets 280,256 --mask face.png --outdir out2
      jaxgan drag ffhq --jobs jobs.json --outdir many
    """
    import numpy as np
    from jaxgan.edit import drag_outputs

    if jobs_file is not None:
        extra = [name for name, value in (("--seed", seed), ("--ws", ws_file), ("--points", points),
                                          ("--targets", targets), ("--mask", mask_file), ("--trace", trace_file))
                 if value is not None]
        if extra:
            raise click.UsageError(f"{', '.join(extra)} cannot be combined with --jobs: each job gives its own "
                                   "(a job's \"trace\": true writes OUTDIR/<name>/drag_trace.npz)")
    else:
        if (seed is None) == (ws_file is None):
            raise click.UsageError("give exactly one of --seed and --ws (or a job file with --jobs)")
        if ws_file is not None and trunc is not None:
            raise click.UsageError("--trunc applies to --seed, not to --ws")
        if points is None or targets is None:
            raise click.UsageError("--points and --targets are required (or a job file with --jobs)")
    trunc = drag_outputs.DEFAULTS["trunc"] if trunc is None else trunc
    try:
        if jobs_file is not None:
            jobs = drag_outputs.read_jobs(jobs_file, dict(trunc=trunc, space=space, steps=steps, lr=lr,
                                                          lambda_mask=lambda_mask))
        else:
            point_list = drag_outputs.parse_points(points, "--points")
            target_list = drag_outputs.parse_points(targets, "--targets")
            if len(point_list) != len(target_list):
                raise ValueError(f"{len(point_list)} points but {len(target_list)} targets: give one target per "
                                 "point")
            jobs = [drag_outputs.Job(name="", points=point_list, targets=target_list, seed=seed, trunc=trunc,
                                     ws=ws_file, mask=mask_file, space=space, steps=steps, lr=lr,
                                     lambda_mask=lambda_mask)]
        from jaxgan.checkpoint import load_checkpoint
        from jaxgan.edit import drag
        G = load_checkpoint(ckpt, names=("G",))[0]["G"]
        cfg = drag.DragConfig.for_generator(G.config, max_points=max(len(job.points) for job in jobs), r1=r1, r2=r2,
                                            feature_idx=feature_idx)
        states = []
        for job in jobs:  # every job is checked before anything runs
            try:
                state, note = _drag_session(G, cfg, job)
            except ValueError as e:
                raise ValueError(f"job {job.name!r}: {e}" if job.name else str(e)) from None
            if note:
                click.echo(f"note: {f'job {job.name!r}: ' if job.name else ''}{note}", err=True)
            states.append(state)
        finals, traces = _run_drag_sessions(G, cfg, states, steps_per_call)
    except _user_errors() as e:
        raise click.ClickException(str(e)) from None

    settings = {"r1": r1, "r2": r2, "feature_idx": feature_idx, "noise_mode": cfg.noise_mode,
                "patch_radius": cfg.patch_radius, "search_radius": cfg.search_radius,
                "stop_distance": cfg.stop_distance}
    results = [drag_outputs.DragResult(
        job=job, trace=drag_outputs.trim_trace(trace, len(job.points), cfg.max_points),
        targets=np.asarray(job.targets, np.int32),
        final_ws=np.asarray(drag.assemble_ws(cfg, state.w, state.w0, state.w_space), np.float32),
        reached=bool(state.reached), steps_done=int(state.steps_done), mask_used=bool(state.use_mask))
        for job, state, trace in zip(jobs, finals, traces)]
    try:
        for result in results:
            job = result.job
            folder = outdir / job.name if job.name else outdir
            folder.mkdir(parents=True, exist_ok=True)
            if trace_file is not None:
                trace_file.parent.mkdir(parents=True, exist_ok=True)
                _atomic_write(trace_file, lambda f: np.savez(f, **drag_outputs.trace_arrays(result)))
            files = drag_outputs.output_files(result, checkpoint=ckpt, settings=settings, trace_file=trace_file)
            for name, write in files.items():
                _atomic_write(folder / name, write)
            final = result.trace["points"][-1]
            distance = float(np.sqrt(np.sum((result.targets - final) ** 2, axis=-1)).max())
            click.echo(f"{job.name + ': ' if job.name else ''}"
                       f"{'reached targets' if result.reached else 'step limit'} after {result.steps_done} steps, "
                       f"handles at {';'.join(f'{y},{x}' for y, x in final)} (farthest {distance:.1f} px from its "
                       "target)")
    except OSError as e:  # e.g. a file where a job's folder should go, or no permission
        raise click.ClickException(f"cannot write the outputs: {e}") from None
    click.echo(f"wrote {outdir}" + (f" ({len(jobs)} sessions)" if jobs_file is not None else "")
               + (f" and {trace_file}" if trace_file is not None else ""))


# ----------------------------------------------------------------------------------------------------------------
# LPIPS: the checkpoint option shared by `lpips` and `invert`

LPIPS_ENV = "JAXGAN_LPIPS"
LPIPS_FILES_HINT = (
    "LPIPS needs two files: torchvision's vgg16-397923af.pth (https://download.pytorch.org/models/vgg16-397923af.pth) "
    "and lpips/weights/v0.1/vgg.pth (in the lpips pip package, or github.com/richzhang/PerceptualSimilarity); "
    "convert them once with `jaxgan convert vgg16-397923af.pth lpips-vgg --kind lpips-vgg --lin vgg.pth`, then give "
    f"--lpips lpips-vgg (or set {LPIPS_ENV})")


def _lpips_option(command):
    return click.option(
        "--lpips", "lpips_ckpt", type=click.Path(path_type=Path), envvar=LPIPS_ENV, show_envvar=True,
        help="The jaxgan LPIPS checkpoint, made by `jaxgan convert vgg16-397923af.pth DST --kind lpips-vgg --lin "
             "vgg.pth`.")(command)


def _load_lpips(path):
    """The LPIPS model of the checkpoint at `path`; a one-line error naming the files to get when there is none."""
    from jaxgan.checkpoint import CheckpointFormatError, load_checkpoint, read_sidecar
    if path is None:
        raise click.ClickException(f"no LPIPS checkpoint given. {LPIPS_FILES_HINT}")
    path = Path(path)
    if not path.exists():
        raise click.ClickException(f"the LPIPS checkpoint {path} does not exist. {LPIPS_FILES_HINT}")
    if not path.is_dir():  # e.g. one of the .pth files themselves
        raise click.ClickException(f"{path} is a file, not a jaxgan LPIPS checkpoint directory. {LPIPS_FILES_HINT}")
    try:
        models = read_sidecar(path)["models"]
    except CheckpointFormatError:
        raise click.ClickException(f"{path} is not a jaxgan LPIPS checkpoint. {LPIPS_FILES_HINT}") from None
    names = [name for name, entry in models.items() if entry.get("kind") == "lpips-vgg"]
    if not names:
        raise click.ClickException(f"{path} holds no LPIPS model (it holds {', '.join(sorted(models))}). "
                                   f"{LPIPS_FILES_HINT}")
    try:
        return load_checkpoint(path, names=names[:1])[0][names[0]]
    except CheckpointFormatError as e:
        raise click.ClickException(str(e)) from None


def _notes_from_warnings(caught) -> None:
    """Warnings raised while reading inputs (e.g. a dropped alpha channel), shown as one-line notes on stderr."""
    for warning in caught:
        click.echo(f"note: {warning.message}", err=True)


def _load_images(paths, load):
    """[load(path) for path in paths], with warnings turned into notes."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return [load(path) for path in paths]
        finally:
            _notes_from_warnings(caught)


def lpips_pairs(count: int, all_pairs: bool) -> list[tuple[int, int]]:
    """Which images `jaxgan lpips` compares: the first with each of the others, or every pair (i < j)."""
    if all_pairs:
        return [(i, j) for i in range(count) for j in range(i + 1, count)]
    return [(0, j) for j in range(1, count)]


@functools.cache
def _lpips_program(devices: tuple):
    """The sharded LPIPS of a batch of pairs on `devices`, built once per device set (so jit's cache is reused)."""
    from jaxgan import parallel
    from jaxgan.models import lpips as lpips_model
    return parallel.shard_problems(lambda model, pair: lpips_model.lpips_distance(model, *pair),
                                   parallel.data_mesh(devices))


def _lpips_distances(model, images, pairs, batch_size: int):
    """LPIPS of images[i] and images[j] for each pair, batch_size pairs per device per call, over the local devices."""
    import jax
    import numpy as np
    from jaxgan import parallel
    devices = tuple(jax.local_devices()[:len(pairs)])
    run = _lpips_program(devices)
    chunk = batch_size * len(devices)
    out = []
    for start in range(0, len(pairs), chunk):
        part = pairs[start:start + chunk]
        batch = (images[[i for i, _ in part]], images[[j for _, j in part]])
        padded, count = parallel.pad_problems(batch, len(devices))
        out.append(np.asarray(run(model, padded))[:count])
    return np.concatenate(out).astype(np.float32)


@main.command("lpips")
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@_lpips_option
@click.option("--all-pairs", is_flag=True, help="Compare every pair of images, not just the first with the others.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object {\"lpips_checkpoint\", \"pairs\": [{\"a\", \"b\", \"distance\"}]} instead.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True,
              help="Pairs per device per step.")
def lpips_command(images, lpips_ckpt, all_pairs, as_json, batch_size):
    """LPIPS distance (v0.1, vgg) between images, as the lpips package computes it.

    With two images, prints their distance; with more, the distance of the first to each of the others, or of
    every pair with --all-pairs. One line per pair: `A B DISTANCE` (6 decimals). Images are read as RGB and mapped
    to [-1, 1] by x / 127.5 - 1, without crop or resize (the lpips package's im2tensor; alpha is dropped with a
    note); they must all have the same size, at least 16x16.

    \b
    Examples:
      jaxgan lpips --lpips lpips-vgg photo.png inverted/photo_recon.png
      JAXGAN_LPIPS=lpips-vgg jaxgan lpips --all-pairs --json a.png b.png c.png
    """
    import json

    import numpy as np

    if len(images) < 2:
        raise click.UsageError("give at least two images to compare")
    model = _load_lpips(lpips_ckpt)
    try:
        from jaxgan.images import load_rgb_pm1
        from jaxgan.models.lpips import MIN_SIZE
        arrays = _load_images(images, load_rgb_pm1)
        height, width = arrays[0].shape[:2]
        for path, array in zip(images[1:], arrays[1:]):
            if array.shape[:2] != (height, width):
                raise ValueError(f"{images[0]} is {width}x{height} pixels but {path} is {array.shape[1]}x"
                                 f"{array.shape[0]}: LPIPS compares images of the same size (crop or resize first)")
        if min(height, width) < MIN_SIZE:
            raise ValueError(f"the images are {width}x{height} pixels; LPIPS (vgg) needs at least "
                             f"{MIN_SIZE}x{MIN_SIZE}")
        pairs = lpips_pairs(len(images), all_pairs)
        distances = _lpips_distances(model, np.stack(arrays), pairs, batch_size)
    except _user_errors() as e:
        raise click.ClickException(str(e)) from None
    if as_json:
        click.echo(json.dumps({"lpips_checkpoint": str(Path(lpips_ckpt).resolve()),
                               "pairs": [{"a": str(images[i]), "b": str(images[j]), "distance": float(d)}
                                         for (i, j), d in zip(pairs, distances)]}, indent=2))
    else:
        for (i, j), d in zip(pairs, distances):
            click.echo(f"{images[i]} {images[j]} {d:.6f}")


# ----------------------------------------------------------------------------------------------------------------
# Inversion


def _run_inversions(G, lpips, targets, *, space, cfg, seed, batch_size, steps_per_call):
    """invert.invert over `targets` in batches of batch_size images per device, with one progress bar over all
    steps; returns the batches' results joined."""
    import jax
    import numpy as np
    from jaxgan import parallel
    from jaxgan.edit import invert
    count = len(targets)
    all_devices = jax.local_devices()
    chunk = batch_size * len(all_devices)
    batches = [list(range(start, min(start + chunk, count))) for start in range(0, count, chunk)]
    updates = invert.updates_for(space, cfg.steps)
    w_stats = invert.w_statistics(G)
    method = invert.METHODS[space][0]
    key = jax.random.key(seed)
    label = f"inverting {count} image{'s' if count > 1 else ''} ({method}, {space})"
    results = []
    with click.progressbar(length=max(updates * len(batches), 1), label=label, file=sys.stderr,
                           item_show_func=lambda x: x) as bar:
        for b, batch in enumerate(batches):
            note = f"batch {b + 1}/{len(batches)}" if len(batches) > 1 else None
            # image i of the command line uses fold_in(key, i) whichever batch it runs in
            keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(np.asarray(batch, np.uint32))
            results.append(invert.invert(
                G, lpips, np.stack([targets[i] for i in batch]), space=space, cfg=cfg, keys=keys, w_stats=w_stats,
                mesh=parallel.data_mesh(all_devices[:len(batch)]), steps_per_call=steps_per_call,
                on_progress=lambda k, note=note: bar.update(k, note)))
        bar.update(bar.length - bar.pos)
    joined = {name: np.concatenate([r[name] for r in results])
              for name in ("ws", "images", "lpips", "mse", "psnr", "losses")}
    joined["noise"] = [np.concatenate(maps) for maps in zip(*(r["noise"] for r in results))]
    joined["loss_names"] = results[0]["loss_names"]
    return joined


@main.command("invert")
@click.argument("ckpt", type=CHECKPOINT)
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@_lpips_option
@click.option("--space", type=click.Choice(["w", "w+"]), default="w", show_default=True,
              help="w: stylegan2-ada-pytorch's projector (projector.py): one w for every layer, plus the synthesis "
                   "noise maps, minimising LPIPS. w+: EditGAN's embedding: one w per layer, minimising "
                   "10 LPIPS + MSE, noise fixed.")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="Optimisation steps: the projector makes STEPS updates, the W+ embedding STEPS - 1 (as EditGAN's "
                   "loop).  [default: 1000 for w (projector.py), 500 for w+ (EditGAN's command line)]")
@click.option("--seed", type=click.IntRange(0, 2 ** 32 - 1), default=0, show_default=True,
              help="Key of the projector's random numbers (initial noise maps, w jitter): image i (0-based, in "
                   "command-line order) uses fold_in(key(SEED), i), whatever the batches. The W+ embedding is "
                   "deterministic.")
@click.option("--outdir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the outputs (created if missing).")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True,
              help="Images per device inverted together; more images run in batches one after another.")
@click.option("--steps-per-call", type=click.IntRange(min=1), default=1, show_default=True,
              help="Optimisation steps run inside one compiled call (fewer host round trips).")
def invert_command(ckpt, images, lpips_ckpt, space, steps, seed, outdir, batch_size, steps_per_call):
    """Invert photos IMAGES into latents of the generator of checkpoint CKPT (GAN inversion).

    Each image is centre-cropped to a square and resized (Lanczos) to the generator's resolution, as
    projector.py does, then all are optimised together, batched and spread over the local devices. Per image
    NAME (the file's stem; -2, -3, ... added when stems repeat) OUTDIR gets NAME_ws.npy (the latent,
    (num_ws, w_dim) float32, which `jaxgan generate --ws` takes), NAME_recon.png (its image), NAME_target.png,
    NAME_compare.png (target | reconstruction), NAME_loss.png (loss curve) and, for --space w, NAME_noise.npz
    (the optimised noise maps the reconstruction uses); plus invert.json with each image's final LPIPS, MSE and
    PSNR, the settings and the file names.

    \b
    Examples:
      jaxgan invert ffhq face.png --lpips lpips-vgg --outdir inverted
      jaxgan invert ffhq a.png b.png --lpips lpips-vgg --space w+ --steps 200 --outdir embedded
    """
    import dataclasses

    import numpy as np
    from jaxgan.edit import invert_outputs

    lpips = _load_lpips(lpips_ckpt)
    try:
        from jaxgan import sampling
        from jaxgan.checkpoint import load_checkpoint
        from jaxgan.edit import invert
        from jaxgan.images import load_image
        G = load_checkpoint(ckpt, names=("G",))[0]["G"]
        gcfg = G.config
        targets = _load_images(images, lambda path: load_image(path, gcfg.img_resolution, gcfg.img_channels))
        method, _, _, config_class, loss_names = invert.METHODS[space]
        cfg = config_class() if steps is None else config_class(steps=steps)
        result = _run_inversions(G, lpips, targets, space=space, cfg=cfg, seed=seed, batch_size=batch_size,
                                 steps_per_call=steps_per_call)
        noise_keys = invert.noise_buffer_names(G)  # the order of result["noise"]
    except _user_errors() as e:
        raise click.ClickException(str(e)) from None

    names = invert_outputs.unique_names(images)
    target_pixels = sampling.to_uint8(np.stack(targets))
    recon_pixels = sampling.to_uint8(result["images"])
    with_noise = space == "w"
    entries = []
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        for i, (name, path) in enumerate(zip(names, images)):
            losses = result["losses"][i]
            noise = {k: maps[i] for k, maps in zip(noise_keys, result["noise"])} if with_noise else None
            files = invert_outputs.output_files(
                name, target=target_pixels[i], reconstruction=recon_pixels[i], ws=result["ws"][i], losses=losses,
                loss_names=loss_names, noise=noise,
                title=f"{name}: {method if space in method else f'{method} ({space})'}, "
                      f"final LPIPS {float(result['lpips'][i]):.4f}")
            for file_name, write in files.items():
                _atomic_write(outdir / file_name, write)
            entries.append(invert_outputs.image_entry(
                name, path, lpips=result["lpips"][i], mse=result["mse"][i], psnr=result["psnr"][i],
                final_losses=dict(zip(loss_names, losses[-1])) if len(losses) else {}, with_noise=with_noise))
            click.echo(f"{name}: LPIPS {float(result['lpips'][i]):.4f}, MSE {float(result['mse'][i]):.5f}, "
                       f"PSNR {float(result['psnr'][i]):.2f} dB")
        settings = {"space": space, "method": method, "steps": cfg.steps,
                    "updates": invert.updates_for(space, cfg.steps), "seed": seed, "batch_size": batch_size,
                    "steps_per_call": steps_per_call, "config": dataclasses.asdict(cfg)}
        doc = invert_outputs.summary(checkpoint=ckpt, lpips_checkpoint=lpips_ckpt, settings=settings,
                                     loss_names=loss_names, images=entries)
        _atomic_write(outdir / invert_outputs.SUMMARY_NAME, invert_outputs.summary_file(doc))
    except OSError as e:  # e.g. a file where OUTDIR should go, or no permission
        raise click.ClickException(f"cannot write the outputs: {e}") from None
    click.echo(f"wrote {len(names)} inversion{'s' if len(names) > 1 else ''} and {invert_outputs.SUMMARY_NAME} to "
               f"{outdir}")


@main.command("demo")
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
    ctx.invoke(generate, ckpt=ckpt, seeds=settings["samples"]["seeds"], truncation_psi=settings["samples"]["trunc"],
               outdir=samples, grid=True)
    job = settings["drag"]
    ctx.invoke(drag_command, ckpt=ckpt, seed=job["seed"], trunc=job["trunc"], points=job["points"],
               targets=job["targets"], steps=job["steps"], lr=job["lr"], r1=job["r1"], r2=job["r2"],
               feature_idx=job["feature_idx"], outdir=dragged)
    click.echo(f"demo done: samples in {samples / 'grid.png'}, the drag in {dragged / 'drag.gif'} "
               f"(handle {job['points']} -> target {job['targets']} on seed {job['seed']})")


# `jaxgan editgan ...` lives in its own module, which uses the helpers above; imported last for that reason.
from jaxgan.cli_editgan import editgan  # noqa: E402

main.add_command(editgan)

from jaxgan.cli_pix2pixhd import pix2pixhd_command  # noqa: E402

main.add_command(pix2pixhd_command)

from jaxgan.cli_train import train_command  # noqa: E402

main.add_command(train_command)
