"""`jaxgan export`: a jaxgan StyleGAN2 generator back to the PyTorch tools, as a state dict under the official names
and layouts (stylegan2-ada-pytorch / DragGAN, or rosinality), by `checkpoints_convert.export`."""

from pathlib import Path

import click

from checkpoints_convert.formats import EXPORT_FORMATS, EXPORT_LAYOUTS
from jaxgan.cli.common import CHECKPOINT, reports_errors


@click.command("export")
@click.argument("ckpt", type=CHECKPOINT)
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(EXPORT_FORMATS), required=True,
              help="safetensors: safetensors.numpy file, the layout and the exact jaxgan config in its metadata. pt: "
                   "a torch.save zip archive (written without torch) for torch.load(OUT, weights_only=True).")
@click.option("--layout", type=click.Choice(EXPORT_LAYOUTS), default="stylegan2-ada", show_default=True,
              help="stylegan2-ada: Generator.state_dict() of stylegan2-ada-pytorch training/networks.py (also "
                   "DragGAN's), buffers included. rosinality: {'g_ema': state dict, 'latent_avg'} of "
                   "rosinality/stylegan2-pytorch (EditGAN's); refused for what it cannot represent.")
@click.option("--model", "model_name", default=None,
              help="The generator's name in CKPT.  [default: the first StyleGAN2 generator, G]")
@reports_errors
def export_command(ckpt: Path, out: Path, fmt: str, layout: str, model_name: str | None):
    """Write the StyleGAN2 generator of the jaxgan checkpoint CKPT (e.g. a tuned one) to the new file OUT.

    \b
    The official code loads it with load_state_dict, e.g. for stylegan2-ada-pytorch / DragGAN:
      G.load_state_dict(torch.load("G.pt", weights_only=True))
    with G built from the same constructor arguments, or for rosinality:
      ckpt = torch.load("G.pt", weights_only=True); g_ema.load_state_dict(ckpt["g_ema"])
    A .pt holds no config: `jaxgan convert` of it reads the config from the tensor shapes and the official
    defaults, and a note names what that loses; .safetensors keeps the exact config. OUT must not exist; it
    appears only once complete.

    \b
    Examples:
      jaxgan export tuned G.pt --format pt
      jaxgan export car car-g.pt --format pt --layout rosinality
      jaxgan export tuned G.safetensors --format safetensors
    """
    from checkpoints_convert.export import export_checkpoint
    path, notes = export_checkpoint(ckpt, out, fmt=fmt, layout=layout, model=model_name)
    for note in notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"wrote {path}")
