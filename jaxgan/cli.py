"""The `jaxgan` command line: convert checkpoints and generate images.

Each command parses its options, calls one library function, and writes its outputs atomically (temporary name,
then rename). Bad input gives a one-line error and a non-zero exit. JAX is imported inside the commands so that
`--help` stays instant.
"""

import os
import sys
import tempfile
from pathlib import Path

import click


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


def _atomic_write(path: Path, write) -> None:
    """Call write(file_object) on a temporary file beside `path`, then rename it into place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _save_png(path: Path, image_uint8) -> None:
    from PIL import Image
    mode = {1: "L", 3: "RGB", 4: "RGBA"}.get(image_uint8.shape[-1])
    if mode is None:
        raise click.ClickException(f"cannot write a PNG with {image_uint8.shape[-1]} channels; use --raw")
    pixels = image_uint8[..., 0] if mode == "L" else image_uint8
    _atomic_write(path, lambda f: Image.fromarray(pixels, mode).save(f, format="PNG"))


def _grid(images):
    import numpy as np
    n, h, w, c = images.shape
    cols = int(np.ceil(np.sqrt(n)))
    rows = -(-n // cols)
    grid = np.zeros((rows * h, cols * w, c), images.dtype)
    for i, image in enumerate(images):
        r, col = divmod(i, cols)
        grid[r * h:(r + 1) * h, col * w:(col + 1) * w] = image
    return grid


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
    """


@main.command()
@click.argument("src", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path))
@click.option("--kind", type=click.Choice(["auto", "stylegan2-ada", "rosinality"]), default="auto", show_default=True,
              help="Source format. auto looks at the file's bytes: torch.save files (zip or legacy) are rosinality "
                   "checkpoints, other pickles are network pickles.")
def convert(src: Path, dst: Path, kind: str):
    """Convert a PyTorch StyleGAN2 checkpoint SRC into a jaxgan checkpoint directory DST.

    \b
    Reads, without torch and without running any code stored in the file:
      - stylegan2-ada-pytorch / stylegan3-repo (StyleGAN2) / DragGAN network pickles (.pkl):
        G_ema is converted for generation, D when present;
      - rosinality stylegan2-pytorch checkpoints (.pt): g_ema with latent_avg, and d when present.
    DST gets an orbax checkpoint and jaxgan.json (model configs, SHA-256 of SRC, converter version).
    DST must not exist; it appears only once complete.

    \b
    Example:
      jaxgan convert stylegan2-ffhq-512x512.pkl ffhq512
    """
    from checkpoints_convert.convert import convert_file
    try:
        out = convert_file(src, dst, kind=kind)
    except _user_errors() as e:
        raise click.ClickException(str(e)) from None
    from jaxgan.checkpoint import read_sidecar
    sidecar = read_sidecar(out)
    for name, entry in sidecar["models"].items():
        cfg = entry["config"]
        click.echo(f"{name}: {entry['kind']} {cfg['img_resolution']}x{cfg['img_resolution']}, "
                   f"c_dim {cfg['c_dim']}, architecture {cfg['architecture']}")
    click.echo(f"wrote {out}")


@main.command()
@click.argument("ckpt", type=click.Path(exists=True, file_okay=False, path_type=Path))
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
        _save_png(outdir / "grid.png", _grid(pixels))
    if raw_file is not None:
        raw_file.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(raw_file, lambda f: np.save(f, images.astype(np.float32)))
    click.echo(f"wrote {len(names)} images to {outdir}" + (f" and {raw_file}" if raw_file else ""))
