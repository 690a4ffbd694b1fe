"""jaxgan: GAN-based image editing in JAX, as pure functions that batch.

StyleGAN2 generator and discriminator that load the checkpoints people already have, GAN inversion,
DragGAN, EditGAN and pix2pixHD. Layout: `jaxgan.ops` (pure jnp reference ops), `jaxgan.nn` (layers),
`jaxgan.models` (networks), `jaxgan.checkpoint` (orbax I/O), `jaxgan.parallel` (multi-device),
`jaxgan.cli` (the `jaxgan` command).
"""

__version__ = "0.1.0"
