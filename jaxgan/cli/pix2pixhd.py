"""`jaxgan pix2pixhd`: pix2pixHD label-to-image synthesis from label maps (and instance maps), by
`jaxgan.models.pix2pixhd.synthesize`; the maps read and checked by `jaxgan.label_maps`."""

from pathlib import Path

import click

from jaxgan.cli.common import distributed_options, outdir_option, plural, progress, reports_errors, write_files

IMAGE_SUFFIX = "_synthesized_image.png"  # the official visualizer's names for test results
PREVIEW_SUFFIX = "_input_label.png"


@click.command("pix2pixhd")
@click.argument("ckpt", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--labels", "labels_path", required=True, type=click.Path(exists=True, path_type=Path),
              help="A label map (PNG of class ids: 8-bit grey, palette indices or 16-bit grey, e.g. Cityscapes "
                   "*_gtFine_labelIds.png), or a folder of them (its *labelIds.png files if it has any, else all its "
                   "PNGs).")
@click.option("--inst", "inst_path", type=click.Path(exists=True, path_type=Path),
              help="The instance map (16-bit PNG of ids, e.g. *_gtFine_instanceIds.png), or a folder of them when "
                   "--labels is a folder: label NAME.png pairs with NAME.png there, a stem ending in labelIds with "
                   "the same stem ending in instanceIds. Required unless the generator takes no instance edges.")
@click.option("--label-nc", type=click.IntRange(min=0), default=None,
              help="Number of label classes (one-hot channels; 0: the label map is an RGB picture).  [default: the "
                   "value stored at conversion]")
@click.option("--no-instance", is_flag=True,
              help="The generator takes no instance-edge channel (trained with --no_instance).  [default: the value "
                   "stored at conversion]")
@outdir_option()
@click.option("--batch-size", type=click.IntRange(min=1), default=1, show_default=True,
              help="Maps per device per step (maps of one size run together).")
@distributed_options
@reports_errors
def pix2pixhd_command(ckpt, labels_path, inst_path, label_nc, no_instance, outdir, batch_size):
    """Synthesise images from label maps with the pix2pixHD generator of checkpoint CKPT.

    The generator input is built as the official test.py does: one-hot label ids (label_nc channels), then the
    instance edge map (both pixels on each side of an instance boundary are 1) unless the model was trained with
    --no_instance. Maps are used at their own size, which must be a multiple of 2**(n_downsample_global +
    n_local_enhancers) (32 for label2city_1024p): no resizing. Every map is checked (ids below label_nc, sizes,
    pairs) before anything runs. With --coordinator / --num-processes / --process-id (or under srun) one job
    spans several processes, each synthesising and writing its share of every size group. For each label map
    NAME.png OUTDIR gets NAME_synthesized_image.png (converted as util.tensor2im: (x + 1) / 2 * 255, clipped,
    truncated to uint8) and NAME_input_label.png (a colour preview of the labels: the Cityscapes colours for
    label_nc 35, else the PASCAL VOC colour map).

    \b
    Examples:
      jaxgan convert latest_net_G.pth label2city --kind pix2pixhd --label-nc 35
      jaxgan pix2pixhd label2city --labels frankfurt_000000_000576_gtFine_labelIds.png \\
          --inst frankfurt_000000_000576_gtFine_instanceIds.png --outdir out
      jaxgan pix2pixhd label2city --labels test_label --inst test_inst --outdir results --batch-size 2
    """
    import numpy as np

    from jaxgan import distributed, label_maps, parallel
    from jaxgan.checkpoint import load_model
    from jaxgan.images import png_writer
    from jaxgan.models import pix2pixhd

    G = load_model(ckpt, "pix2pixhd-generator",
                   hint="convert latest_net_G.pth with `jaxgan convert latest_net_G.pth DST --kind pix2pixhd`")
    cfg = pix2pixhd.with_encoding(G.config, label_nc, no_instance)
    if cfg.no_instance and inst_path is not None:
        raise click.UsageError("--inst is not used: this generator takes no instance edges (no_instance)")
    if not cfg.no_instance and inst_path is None:
        raise click.UsageError("this generator takes instance edges: give --inst (or --no-instance for a model "
                               "trained with --no_instance)")
    pairs = label_maps.pair_files(labels_path, inst_path)
    groups = label_maps.group_by_size(pairs, cfg.label_nc, cfg.size_multiple)
    written = 0
    with progress(len(pairs), f"synthesising {plural(len(pairs), 'image')}") as bar:
        for group in groups.values():  # maps of one size run together; each group is written when it is done
            mesh = parallel.mesh_for(len(group))
            mine = [group[i] for i in parallel.owned_problems(len(group), batch_size, mesh)]  # all, in one process
            labels = np.stack([label_maps.read_map(label, cfg.label_nc) for label, _ in mine]) if mine else None
            insts = None if cfg.no_instance or not mine else np.stack([label_maps.read_instance_ids(i)
                                                                       for _, i in mine])
            if not mine:  # this process holds only padding rows of the group: feed it the shapes it needs
                labels, insts = _empty_maps(group[0], cfg)
            images = pix2pixhd.synthesize(G, labels, insts, label_nc=cfg.label_nc, no_instance=cfg.no_instance,
                                          batch_size=batch_size, mesh=mesh, count=len(group), on_chunk=bar.update)
            files = {}
            for (label_path, _), image, label in zip(mine, images, labels):
                files[label_path.stem + IMAGE_SUFFIX] = png_writer(label_maps.tensor2im(image))
                files[label_path.stem + PREVIEW_SUFFIX] = png_writer(label_maps.preview(label, cfg.label_nc))
            write_files(outdir, files)
            written += len(mine)
    who = distributed.message_prefix()
    click.echo(f"{who}wrote {plural(written, 'image')} and label previews to {outdir}")


def _empty_maps(pair, cfg):
    """No label maps (and instance maps) of the size of `pair`'s: a process with no map of a size group."""
    import numpy as np

    from jaxgan import label_maps
    label = label_maps.read_map(pair[0], cfg.label_nc)
    inst = None if cfg.no_instance else np.zeros((0,) + label.shape[:2], np.int32)
    return np.zeros((0,) + label.shape, label.dtype), inst
