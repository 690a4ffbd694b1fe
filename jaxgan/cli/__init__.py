"""The `jaxgan` command line: the click group and the registration of its commands, one module per command.

Each command parses its options, calls one library function, and writes its outputs atomically (temporary name,
then rename). Bad input gives a one-line error and a non-zero exit (`jaxgan.cli.common.reports_errors`).
"""

import click

from jaxgan.cli.convert import convert_command
from jaxgan.cli.demo import demo_command
from jaxgan.cli.drag import drag_command
from jaxgan.cli.editgan import editgan_group
from jaxgan.cli.export import export_command
from jaxgan.cli.generate import generate_command
from jaxgan.cli.invert import invert_command
from jaxgan.cli.lpips import lpips_command
from jaxgan.cli.pix2pixhd import pix2pixhd_command
from jaxgan.cli.serve import serve_command
from jaxgan.cli.train import train_command
from jaxgan.cli.train_encoder import train_encoder_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="jaxgan")
def main():
    """jaxgan: GAN-based image editing in JAX.

    \b
    Typical use:
      jaxgan demo                                     # the bundled model: a grid of faces and a drag, offline
      jaxgan convert network-snapshot.pkl ffhq        # official .pkl or rosinality .pt -> jaxgan checkpoint
      jaxgan export ffhq G.pt --format pt             # a (tuned) generator -> official state dict, load_state_dict
      jaxgan generate ffhq --seeds 0-7 --outdir out   # images, batched over all local devices
      jaxgan drag ffhq --seed 0 --points 250,200 --targets 250,260 --outdir dragged   # DragGAN
      jaxgan invert ffhq face.png --lpips lpips-vgg --outdir inverted   # photo -> latent (projector)
      jaxgan lpips --lpips lpips-vgg a.png b.png      # perceptual distance
      jaxgan editgan seg car --seg car-seg --seeds 0-3 --outdir seg    # EditGAN (also edit, apply, train-seg)
      jaxgan pix2pixhd label2city --labels L.png --inst I.png --outdir out   # pix2pixHD labels -> image
      jaxgan train toyfaces32 --out runs/faces        # train a StyleGAN2
      jaxgan train-encoder car --images cars --lpips lpips-vgg --out runs/enc   # EditGAN's encoder
      jaxgan serve demo                               # HTTP API: batched drag sessions, generation
    """


for command in (convert_command, export_command, generate_command, drag_command, invert_command, lpips_command,
                editgan_group, pix2pixhd_command, train_command, train_encoder_command, serve_command, demo_command):
    main.add_command(command)
