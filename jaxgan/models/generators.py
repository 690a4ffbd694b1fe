"""The generator API every image-generator family shares: what generate, drag, invert, PTI and serve call.

A family is a module with the same functional API over its `SplitModel` (`mapping`, `synthesis`, `generate`;
`jaxgan.models.stylegan2` and `jaxgan.models.stylegan3`), registered here by its generator config class (a registry
keyed by type, as `jaxgan.models.kinds`, not a chain of isinstance tests). Every generator config has z_dim, c_dim,
w_dim, num_ws, img_resolution, img_channels and `feature_shapes`: the (size, channels) of each map `synthesis(...,
return_features=True)` returns, the list DragGAN's renderer indexes with `feature_idx` (StyleGAN2: every block's
output; StyleGAN3: every layer's, margins included). The options both families take are named here; a family's
own (StyleGAN2's `fused_modconv`, its "blocks" / "layers" feature lists) pass through `**family_options`, and a
family that lacks one refuses it (TypeError).
"""

from types import ModuleType

from jaxgan.models import stylegan2, stylegan3
from jaxgan.nn.split import SplitModel

FAMILIES: dict[type, ModuleType] = {stylegan2.GeneratorConfig: stylegan2, stylegan3.StyleGAN3Config: stylegan3}


def family(cfg) -> ModuleType:
    """The module implementing generators with config `cfg`; TypeError for a config that is not a generator's."""
    try:
        return FAMILIES[type(cfg)]
    except KeyError:
        raise TypeError(f"{type(cfg).__name__} is not an image generator's config (known: "
                        f"{', '.join(c.__name__ for c in FAMILIES)})") from None


def mapping(G: SplitModel, z, c=None, *, truncation_psi=1.0, truncation_cutoff: int | None = None):
    """z [N, z_dim] (and c [N, c_dim]) -> ws [N, num_ws, w_dim], truncated towards w_avg by psi."""
    return family(G.config).mapping(G, z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)


def synthesis(G: SplitModel, ws, *, noise_mode: str = "const", noise_key=None, return_features=False,
              **family_options):
    """ws [N, num_ws, w_dim] -> images [N, R, R, C] (and with return_features the family's feature list)."""
    return family(G.config).synthesis(G, ws, noise_mode=noise_mode, noise_key=noise_key,
                                      return_features=return_features, **family_options)


def synthesis_until(G: SplitModel, ws, index: int, *, noise_mode: str = "const", noise_key=None, **family_options):
    """The synthesis up to feature `index` of `synthesis(..., return_features=True)`: (that feature, a carry).

    With `synthesis_after`, the same image as `synthesis` in two parts, so that a caller can differentiate the
    feature alone and render the image's remaining blocks without a backward pass (DragGAN's step)."""
    return family(G.config).synthesis_until(G, ws, index, noise_mode=noise_mode, noise_key=noise_key,
                                            **family_options)


def synthesis_after(G: SplitModel, ws, index: int, carry, *, noise_mode: str = "const", noise_key=None,
                    **family_options):
    """The rest of the synthesis after `synthesis_until(G, ws, index)`: images [N, R, R, C]."""
    return family(G.config).synthesis_after(G, ws, index, carry, noise_mode=noise_mode, noise_key=noise_key,
                                            **family_options)


def generate(G: SplitModel, z, c=None, *, truncation_psi=1.0, truncation_cutoff: int | None = None,
             noise_mode: str = "const", noise_key=None, **family_options):
    """Mapping then synthesis: z [N, z_dim] -> images [N, R, R, C]."""
    return family(G.config).generate(G, z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                                     noise_mode=noise_mode, noise_key=noise_key, **family_options)


def with_user_transform(G: SplitModel, translate=(0.0, 0.0), rotate: float = 0.0) -> SplitModel:
    """G set up to render its output translated by (x, y) and rotated by `rotate` degrees, as StyleGAN3's
    gen_images.py sets the input transform (always: the identity when nothing is asked, whatever the checkpoint
    stores). A family without an input transform (StyleGAN2) is returned unchanged for the identity and refuses
    anything else with a ValueError."""
    set_transform = getattr(family(G.config), "with_input_transform", None)
    if set_transform is None:
        if tuple(translate) != (0.0, 0.0) or rotate != 0.0:
            raise ValueError("translate and rotate move a StyleGAN3 generator's input; this generator has no input "
                             "transform")
        return G
    return set_transform(G, stylegan3.make_transform(tuple(translate), rotate))
