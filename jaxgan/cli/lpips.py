"""`jaxgan lpips`: LPIPS distances between images, by `jaxgan.models.lpips.lpips_distances`, with whichever trunk
(vgg or alex) the LPIPS checkpoint holds."""

from pathlib import Path

import click

from jaxgan.cli.common import distributed_options, load_images, load_lpips, lpips_option, reports_errors


@click.command("lpips")
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@lpips_option(help_text="The jaxgan LPIPS checkpoint, vgg or alex trunk: `jaxgan convert vgg16-397923af.pth DST "
                        "--kind lpips-vgg --lin vgg.pth` or `jaxgan convert alexnet-owt-7be5be79.pth DST --kind "
                        "lpips-alex --lin alex.pth`.")
@click.option("--all-pairs", is_flag=True, help="Compare every pair of images, not just the first with the others.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object {\"lpips_checkpoint\", \"net\", \"pairs\": [{\"a\", \"b\", "
                   "\"distance\"}]} instead (net: the checkpoint's trunk, vgg or alex).")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True,
              help="Pairs per device per step.")
@distributed_options
@reports_errors
def lpips_command(images, lpips_ckpt, all_pairs, as_json, batch_size):
    """LPIPS distance (v0.1, vgg or alex: the trunk the --lpips checkpoint holds) between images, as the lpips
    package computes it.

    With two images, prints their distance; with more, the distance of the first to each of the others, or of
    every pair with --all-pairs. One line per pair: `A B DISTANCE` (6 decimals). Images are read as RGB and mapped
    to [-1, 1] by x / 127.5 - 1, without crop or resize (the lpips package's im2tensor; alpha is dropped with a
    note); they must all have the same size, at least 16x16 (vgg) or 31x31 (alex). With --coordinator /
    --num-processes / --process-id (or under srun) the pairs are shared out over several processes and process 0
    prints every distance.

    \b
    Examples:
      jaxgan lpips --lpips lpips-vgg photo.png inverted/photo_recon.png
      jaxgan lpips --lpips lpips-alex photo.png inverted/photo_recon.png    # PTI's LPIPS (alex)
      JAXGAN_LPIPS=lpips-vgg jaxgan lpips --all-pairs --json a.png b.png c.png
    """
    import numpy as np

    from jaxgan import distributed, parallel
    from jaxgan.files import json_text
    from jaxgan.images import load_rgb_pm1
    from jaxgan.models.lpips import lpips_distances, lpips_pairs

    if len(images) < 2:
        raise click.UsageError("give at least two images to compare")
    model = load_lpips(lpips_ckpt, net=None)  # measures with the trunk the checkpoint holds
    cfg = model.config
    arrays = load_images(images, load_rgb_pm1)
    height, width = arrays[0].shape[:2]
    for path, array in zip(images[1:], arrays[1:]):
        if array.shape[:2] != (height, width):
            raise ValueError(f"{images[0]} is {width}x{height} pixels but {path} is {array.shape[1]}x"
                             f"{array.shape[0]}: LPIPS compares images of the same size (crop or resize first)")
    if min(height, width) < cfg.min_size:
        raise ValueError(f"the images are {width}x{height} pixels; LPIPS ({cfg.net}) needs at least "
                         f"{cfg.min_size}x{cfg.min_size}")
    pairs = lpips_pairs(len(images), all_pairs)
    mesh = parallel.mesh_for(len(pairs))
    mine = lpips_distances(model, np.stack(arrays), pairs, batch_size=batch_size, mesh=mesh)
    distances = np.zeros(len(pairs), np.float64)
    for part in distributed.allgather_objects(  # every process's distances, exactly (JSON keeps a float's digits)
            [[i, float(d)] for i, d in zip(parallel.owned_problems(len(pairs), batch_size, mesh), mine)]):
        for i, d in part:
            distances[i] = d
    if not distributed.is_primary():
        return
    if as_json:
        click.echo(json_text({"lpips_checkpoint": str(Path(lpips_ckpt).resolve()), "net": cfg.net,
                              "pairs": [{"a": str(images[i]), "b": str(images[j]), "distance": float(d)}
                                        for (i, j), d in zip(pairs, distances)]}), nl=False)
    else:
        for (i, j), d in zip(pairs, distances):
            click.echo(f"{images[i]} {images[j]} {d:.6f}")
