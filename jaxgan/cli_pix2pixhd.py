"""`jaxgan pix2pixhd`: pix2pixHD label-to-image synthesis from label maps (and instance maps) on the command line.

The library side is `jaxgan.models.pix2pixhd` (input encoding and generator) and `jaxgan.label_maps` (reading and
pairing the maps, previews, the official uint8 conversion); this module checks every input before anything runs,
batches the maps by size over the local devices (`jaxgan.parallel`) and writes each output atomically. It is
registered on the `jaxgan` group by `jaxgan.cli`, whose helpers it shares.
"""

import dataclasses
import functools
import sys
from pathlib import Path

import click

from jaxgan.cli import _atomic_write, _user_errors

GENERATOR_KIND = "pix2pixhd-generator"
IMAGE_SUFFIX = "_synthesized_image.png"  # the official visualizer's names for test results
PREVIEW_SUFFIX = "_input_label.png"


def _load_generator(ckpt: Path):
    from jaxgan.checkpoint import load_checkpoint, read_sidecar
    models = read_sidecar(ckpt)["models"]
    names = [name for name, entry in models.items() if entry.get("kind") == GENERATOR_KIND]
    if not names:
        raise ValueError(f"{ckpt} holds no pix2pixHD generator (it holds {', '.join(sorted(models)) or 'nothing'}); "
                         "convert latest_net_G.pth with `jaxgan convert latest_net_G.pth DST --kind pix2pixhd`")
    return load_checkpoint(ckpt, names=names[:1])[0][names[0]]


def _encoding(cfg, label_nc, no_instance: bool):
    """The generator config with the input encoding of the options (or the stored one); checked against input_nc."""
    label_nc = cfg.label_nc if label_nc is None else label_nc
    if label_nc is None:
        raise ValueError("the checkpoint does not record label_nc; give it with --label-nc")
    cfg = dataclasses.replace(cfg, label_nc=label_nc, no_instance=no_instance or cfg.no_instance)
    if cfg.label_nc == 0 and cfg.label_channels != 3:
        raise ValueError(f"label_nc 0 reads each label map as an RGB picture (3 channels), but this generator takes "
                         f"{cfg.label_channels} label channels")
    if cfg.feat_num:
        raise ValueError(f"this generator takes {cfg.feat_num} feature channels (trained with --instance_feat or "
                         "--label_feat); jaxgan pix2pixhd builds labels and instance edges only")
    return cfg


def _check_inputs(pairs, cfg) -> dict[tuple[int, int], list]:
    """Read every map once to refuse bad input before anything is written; the pairs grouped by (height, width)."""
    from jaxgan import label_maps
    from jaxgan.images import ImageError
    groups: dict[tuple[int, int], list] = {}
    for label_path, inst_path in pairs:
        if cfg.label_nc > 0:
            size = label_maps.read_label_ids(label_path, cfg.label_nc).shape
        else:
            size = label_maps.read_label_image(label_path).shape[:2]
        if size[0] % cfg.size_multiple or size[1] % cfg.size_multiple:
            raise ImageError(f"{label_path} is {size[1]}x{size[0]} pixels; this generator needs a width and height "
                             f"that are multiples of {cfg.size_multiple} (2**(n_downsample_global + "
                             "n_local_enhancers)); resize the maps with nearest-neighbour sampling first")
        if inst_path is not None:
            inst_size = label_maps.read_instance_ids(inst_path).shape
            if inst_size != size:
                raise ImageError(f"{inst_path} is {inst_size[1]}x{inst_size[0]} pixels but its label map "
                                 f"{label_path} is {size[1]}x{size[0]}")
        groups.setdefault(size, []).append((label_path, inst_path))
    return groups


@functools.cache
def _program(devices: tuple, label_nc: int, no_instance: bool):
    """encode_input + generate, sharded over `devices`; built once per device set and encoding."""
    from jaxgan import parallel
    from jaxgan.models import pix2pixhd

    def per_device(G, batch):
        encoded = pix2pixhd.encode_input(batch["label"], batch.get("inst"), label_nc, no_instance)
        return pix2pixhd.generate(G, encoded)
    return parallel.shard_problems(per_device, parallel.data_mesh(devices))


def _read(pair, cfg) -> dict:
    from jaxgan import label_maps
    label_path, inst_path = pair
    label = (label_maps.read_label_ids(label_path, cfg.label_nc) if cfg.label_nc > 0
             else label_maps.read_label_image(label_path))
    return {"label": label} if inst_path is None else {"label": label, "inst": label_maps.read_instance_ids(inst_path)}


def _outputs(name: str, image, item: dict, cfg) -> dict:
    from jaxgan import label_maps
    from jaxgan.images import png_writer
    preview = (label_maps.colorize(item["label"], cfg.label_nc) if cfg.label_nc > 0
               else label_maps.tensor2im(item["label"]))
    return {name + IMAGE_SUFFIX: png_writer(label_maps.tensor2im(image)), name + PREVIEW_SUFFIX: png_writer(preview)}


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
@click.option("--outdir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the outputs (created if missing).")
@click.option("--batch-size", type=click.IntRange(min=1), default=1, show_default=True,
              help="Maps per device per step (maps of one size run together).")
def pix2pixhd_command(ckpt, labels_path, inst_path, label_nc, no_instance, outdir, batch_size):
    """Synthesise images from label maps with the pix2pixHD generator of checkpoint CKPT.

    The generator input is built as the official test.py does: one-hot label ids (label_nc channels), then the
    instance edge map (both pixels on each side of an instance boundary are 1) unless the model was trained with
    --no_instance. Maps are used at their own size, which must be a multiple of 2**(n_downsample_global +
    n_local_enhancers) (32 for label2city_1024p): no resizing. Every map is checked (ids below label_nc, sizes,
    pairs) before anything runs. For each label map NAME.png OUTDIR gets NAME_synthesized_image.png (converted as
    util.tensor2im: (x + 1) / 2 * 255, clipped, truncated to uint8) and NAME_input_label.png (a colour preview of
    the labels: the Cityscapes colours for label_nc 35, else the PASCAL VOC colour map).

    \b
    Examples:
      jaxgan convert latest_net_G.pth label2city --kind pix2pixhd --label-nc 35
      jaxgan pix2pixhd label2city --labels frankfurt_000000_000576_gtFine_labelIds.png \\
          --inst frankfurt_000000_000576_gtFine_instanceIds.png --outdir out
      jaxgan pix2pixhd label2city --labels test_label --inst test_inst --outdir results --batch-size 2
    """
    import jax
    import numpy as np

    from jaxgan import label_maps, parallel
    try:
        G = _load_generator(ckpt)
        cfg = _encoding(G.config, label_nc, no_instance)
        if cfg.no_instance and inst_path is not None:
            raise click.UsageError("--inst is not used: this generator takes no instance edges (no_instance)")
        if not cfg.no_instance and inst_path is None:
            raise click.UsageError("this generator takes instance edges: give --inst (or --no-instance for a model "
                                   "trained with --no_instance)")
        pairs = label_maps.pair_files(labels_path, inst_path)
        groups = _check_inputs(pairs, cfg)
    except _user_errors() as e:
        raise click.ClickException(str(e)) from None

    all_devices = jax.local_devices()
    chunk = batch_size * len(all_devices)
    written = 0
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        with click.progressbar(length=len(pairs), label=f"synthesising {len(pairs)} image"
                               f"{'s' if len(pairs) > 1 else ''}", file=sys.stderr) as bar:
            for group in groups.values():
                for start in range(0, len(group), chunk):
                    part = group[start:start + chunk]
                    items = [_read(pair, cfg) for pair in part]
                    devices = tuple(all_devices[:len(part)])
                    batch = {key: np.stack([item[key] for item in items]) for key in items[0]}
                    padded, count = parallel.pad_problems(batch, len(devices))
                    images = np.asarray(_program(devices, cfg.label_nc, cfg.no_instance)(G, padded))[:count]
                    for (label_path, _), image, item in zip(part, images, items):
                        for file_name, write in _outputs(label_path.stem, image, item, cfg).items():
                            _atomic_write(outdir / file_name, write)
                    written += len(part)
                    bar.update(len(part))
    except OSError as e:
        raise click.ClickException(f"cannot write the outputs: {e}") from None
    click.echo(f"wrote {written} image{'s' if written > 1 else ''} and label previews to {outdir}")
