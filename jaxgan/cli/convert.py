"""`jaxgan convert`: PyTorch checkpoints (official .pkl, rosinality .pt, LPIPS, segmentation branch, pix2pixHD, VGG19,
EditGAN's encoder) into jaxgan checkpoint directories, by `checkpoints_convert.convert`."""

from pathlib import Path

import click

from checkpoints_convert.formats import LPIPS_SOURCE_NETS, SOURCE_KINDS, TWO_FILE_KINDS
from jaxgan.cli.common import reports_errors


@click.command("convert")
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path))
@click.option("--kind", type=click.Choice(SOURCE_KINDS), default="auto", show_default=True,
              help="Source format. auto looks at the file's bytes: safetensors files are `jaxgan export`'s "
                   "(safetensors), torch.save files whose first key is a stylegan2-ada name are bare Generator state "
                   "dicts (stylegan2-ada-pt), other torch.save files (zip or legacy) are rosinality checkpoints, "
                   "other pickles are network pickles. lpips-vgg / lpips-alex (never auto-detected): SRC is "
                   "torchvision's VGG16 / AlexNet weights and --lin the LPIPS lin weights of the same net. segbranch "
                   "(never auto-detected): "
                   "SRC is the DatasetGAN / EditGAN classifier files model_N.pth, or their directory. pix2pixhd "
                   "(never auto-detected): SRC is a pix2pixHD latest_net_G.pth (or _D, _E). vgg19 (never "
                   "auto-detected): torchvision's vgg19-dcbb9e9d.pth, the trunk of pix2pixHD's VGG loss. editgan-encoder "
                   "(never auto-detected): EditGAN's encoder checkpoint BEST_loss*.pth.")
@click.option("--lin", "lin_file", type=click.Path(dir_okay=False, path_type=Path),
              help="With --kind lpips-vgg or lpips-alex (and only then, required): the LPIPS v0.1 lin-weight file "
                   "lpips/weights/v0.1/vgg.pth or alex.pth (in the lpips pip package, or "
                   "github.com/richzhang/PerceptualSimilarity).")
@click.option("--label-nc", type=click.IntRange(min=0), default=None,
              help="With --kind pix2pixhd: the generator's label classes (one-hot channels; 0: the label map is an "
                   "RGB image).  [default: 35, Cityscapes]")
@click.option("--no-instance", is_flag=True, default=None,
              help="With --kind pix2pixhd: the generator takes no instance-edge channel (trained with --no_instance).")
@click.option("--feat-num", type=click.IntRange(min=0), default=None,
              help="With --kind pix2pixhd: feature channels after the labels and edges (--instance_feat / "
                   "--label_feat models).  [default: 0]")
@reports_errors
def convert_command(sources: tuple[Path, ...], dst: Path, kind: str, lin_file: Path | None, label_nc: int | None,
                    no_instance: bool | None, feat_num: int | None):
    """Convert a PyTorch checkpoint SRC into a jaxgan checkpoint directory DST.

    \b
    Usage: jaxgan convert SRC DST, or for --kind segbranch: jaxgan convert DIR_OR_FILES... DST
    Reads, without torch and without running any code stored in the file:
      - stylegan2-ada-pytorch / stylegan3-repo (StyleGAN2) / DragGAN network pickles (.pkl):
        G_ema is converted for generation, D when present;
      - rosinality stylegan2-pytorch checkpoints (.pt): g_ema with latent_avg, and d when present;
      - what `jaxgan export` writes: a bare stylegan2-ada Generator state dict (.pt; config from the shapes and the
        official defaults) or a .safetensors generator (exact config from its metadata);
      - LPIPS v0.1 (vgg), for `jaxgan lpips` and `jaxgan invert` (--kind lpips-vgg): SRC is torchvision's
        vgg16-397923af.pth (https://download.pytorch.org/models/vgg16-397923af.pth), --lin is
        lpips/weights/v0.1/vgg.pth from the lpips package (github.com/richzhang/PerceptualSimilarity);
      - LPIPS v0.1 (alex), for `jaxgan lpips` (--kind lpips-alex): SRC is torchvision's alexnet-owt-7be5be79.pth
        (https://download.pytorch.org/models/alexnet-owt-7be5be79.pth), --lin is lpips/weights/v0.1/alex.pth;
      - the DatasetGAN / EditGAN segmentation branch (--kind segbranch), for `jaxgan editgan`: the ensemble's
        pixel-classifier files ({'model_state_dict': ...}, `module.` prefixes), given one by one or as the
        directory holding model_0.pth, model_1.pth, ... (or car_model_N.pth); they are stacked in model order;
      - pix2pixHD (--kind pix2pixhd), for `jaxgan pix2pixhd`: latest_net_G.pth (global or local generator, the
        structure read from the tensor shapes), latest_net_D.pth, latest_net_E.pth; legacy or zip torch.save,
        InstanceNorm running statistics ignored, netG./netD./netE. prefixes accepted. The generator's input
        encoding (--label-nc, --no-instance, --feat-num) is stored with it and must add up to its input channels;
      - torchvision's vgg19-dcbb9e9d.pth (--kind vgg19) as model VGG19: convs up to relu5_1, for the perceptual
        loss of pix2pixHD training (jaxgan.train.pix2pixhd);
      - EditGAN's image encoder (--kind editgan-encoder) as model E, for `jaxgan invert --encoder`:
        checkpoint/encoder_pretrain/BEST_loss*.pth ({'model_state_dict': ...}, `module.` prefixes accepted),
        every size read from the tensor shapes.
    DST gets an orbax checkpoint and jaxgan.json (model configs, SHA-256 of the sources, converter version).
    DST must not exist; it appears only once complete.

    \b
    Examples:
      jaxgan convert stylegan2-ffhq-512x512.pkl ffhq512
      jaxgan convert vgg16-397923af.pth lpips-vgg --kind lpips-vgg --lin vgg.pth
      jaxgan convert alexnet-owt-7be5be79.pth lpips-alex --kind lpips-alex --lin alex.pth
      jaxgan convert checkpoint/datasetgan_pretrain/classifier car-seg --kind segbranch
      jaxgan convert checkpoints/label2city_1024p/latest_net_G.pth label2city --kind pix2pixhd --label-nc 35
      jaxgan convert BEST_loss2.841871976852417.pth car-encoder --kind editgan-encoder
    """
    if kind in LPIPS_SOURCE_NETS and lin_file is None:
        raise click.UsageError(f"--kind {kind} needs --lin, the LPIPS lin-weight file "
                               f"lpips/weights/v0.1/{LPIPS_SOURCE_NETS[kind]}.pth")
    if kind not in TWO_FILE_KINDS and lin_file is not None:
        raise click.UsageError(f"--lin only goes with --kind {' or '.join(TWO_FILE_KINDS)}")
    if kind != "pix2pixhd" and (label_nc is not None or no_instance or feat_num is not None):
        raise click.UsageError("--label-nc, --no-instance and --feat-num only go with --kind pix2pixhd")
    if len(sources) > 1 and kind != "segbranch":
        raise click.UsageError("several source files only go with --kind segbranch (one file per classifier)")
    from checkpoints_convert.convert import convert_file, convert_segbranch_files
    from jaxgan.checkpoint import config_from_dict, read_sidecar
    from jaxgan.models.kinds import describe
    if kind == "segbranch":
        out = convert_segbranch_files(sources, dst)
    else:
        if sources[0].is_dir():
            raise ValueError(f"{sources[0]} is a directory; only --kind segbranch reads a directory of files")
        encoding = ({"label_nc": label_nc, "no_instance": no_instance, "feat_num": feat_num}
                    if kind == "pix2pixhd" else {})
        out = convert_file(sources[0], dst, kind=kind, lin=lin_file, **encoding)
    sidecar = read_sidecar(out)
    for name, entry in sidecar["models"].items():
        click.echo(describe(name, config_from_dict(entry)))
    source = sidecar.get("source", {})
    if source.get("kind") in LPIPS_SOURCE_NETS:
        from checkpoints_convert.lpips import SOURCES
        net = SOURCES[LPIPS_SOURCE_NETS[source["kind"]]]
        if not source.get(net.trunk_note, True):
            click.echo(f"note: {source.get('file')} is not torchvision's {net.torchvision_file}; distances will "
                       "differ from published LPIPS values", err=True)
        if not source.get("lin", {}).get(net.lin_note, True):
            click.echo(f"note: {source['lin'].get('file')} is not the released lpips v0.1 {net.net}.pth", err=True)
    click.echo(f"wrote {out}")
