"""torchvision's VGG19 `features` up to relu5_1, the trunk of pix2pixHD's perceptual (VGG) loss, as a Flax NNX module.

Follows pix2pixHD's `Vgg19` (`models/networks.py`, NVIDIA/pix2pixHD@14b3b3c): it cuts torchvision's `vgg19().features`
into the slices [0:2], [2:7], [7:12], [12:21], [21:30], whose ends are relu1_1, relu2_1, relu3_1, relu4_1 and
relu5_1. Only the 13 convs up to index 28 run; the rest of the file (convs 30, 32, 34, the classifier) is never
used. The input is the image as it is, in [-1, 1]: pix2pixHD applies no ImageNet normalisation.

Names and layouts are torchvision's (`features.{0,2,5,...,28}.{weight,bias}`, OIHW), so the key map is the
identity. `widths` (per stage, 64-128-256-512-512 in torchvision) may be smaller for tests: a VGG19-shaped net of
any width runs the same code.
"""

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from jaxgan.models.lpips import Conv2d, max_pool_2x2
from jaxgan.nn.split import SplitModel, split
from jaxgan.nn.torch_init import torch_style_params

# Convs per stage in vgg19().features; a 2x2 max pool follows every stage. Sequential indices advance by 2 per conv
# (conv, ReLU) and by 1 per pool.
STAGE_CONVS = (2, 2, 4, 4, 4)
TORCHVISION_WIDTHS = (64, 128, 256, 512, 512)
TAPS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
MIN_SIZE = 16  # four pools before relu5_1


def conv_layout(widths=TORCHVISION_WIDTHS) -> tuple[tuple[int, int, int, int], ...]:
    """(Sequential index, stage, in channels, out channels) of every conv of vgg19().features."""
    layout, index, channels = [], 0, 3
    for stage, (count, width) in enumerate(zip(STAGE_CONVS, widths)):
        for _ in range(count):
            layout.append((index, stage, channels, width))
            index, channels = index + 2, width
        index += 1  # the max pool
    return tuple(layout)


# Index of each stage's first conv (0, 5, 10, 19, 28), whose ReLU ends pix2pixHD's slice for that stage (relu{k}_1).
TAP_CONVS = tuple(next(i for i, s, _, _ in conv_layout() if s == stage) for stage in range(len(STAGE_CONVS)))
USED_CONVS = tuple(i for i, _, _, _ in conv_layout() if i <= TAP_CONVS[-1])
UNUSED_CONVS = tuple(i for i, _, _, _ in conv_layout() if i not in USED_CONVS)


@dataclasses.dataclass(frozen=True)
class VGG19Config:
    widths: tuple[int, ...] = TORCHVISION_WIDTHS

    def __post_init__(self):
        if len(self.widths) != len(STAGE_CONVS) or any(not isinstance(w, int) or w < 1 for w in self.widths):
            raise ValueError(f"widths needs 5 positive channel counts (one per stage), got {self.widths}")


class Features(nnx.Module):
    """The Sequential `features`: conv i is the attribute str(i) (ReLUs and pools have no weights)."""

    def __init__(self, cfg: VGG19Config, *, rngs: nnx.Rngs):
        self.cfg = cfg
        for index, _, in_channels, out_channels in conv_layout(cfg.widths):
            if index in USED_CONVS:
                setattr(self, str(index), Conv2d(in_channels, out_channels, 3, rngs=rngs))

    def __call__(self, x) -> list:
        taps, stage = [], 0
        for index, conv_stage, _, _ in conv_layout(self.cfg.widths):
            if index not in USED_CONVS:
                break
            if conv_stage != stage:
                x, stage = max_pool_2x2(x), conv_stage
            x = jax.nn.relu(getattr(self, str(index))(x))
            if index in TAP_CONVS:
                taps.append(x)
        return taps


class VGG19Features(nnx.Module):
    """vgg19() with only `features` convs 0 ... 28 (keys `features.{i}.*`); returns the five relu{k}_1 maps."""

    def __init__(self, cfg: VGG19Config, *, rngs: nnx.Rngs):
        self.cfg = cfg
        self.features = Features(cfg, rngs=rngs)

    def __call__(self, x) -> list:
        return self.features(x)


def init_vgg19(cfg: VGG19Config, key) -> SplitModel:
    """Random weights (torch's default init): for tests; real use converts torchvision's vgg19-dcbb9e9d.pth."""
    abstract = abstract_model(cfg)
    return dataclasses.replace(abstract, params=torch_style_params(abstract.params, key))


def abstract_model(cfg: VGG19Config) -> SplitModel:
    return split(nnx.eval_shape(lambda: VGG19Features(cfg, rngs=nnx.Rngs(0))))


def vgg19_features(V: SplitModel, x) -> list:
    """x [N, H, W, 3] (pix2pixHD feeds images in [-1, 1] unnormalised) -> [relu1_1, ..., relu5_1], NHWC."""
    x = jnp.asarray(x, jnp.float32)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"VGG19 takes RGB batches [N, H, W, 3], got shape {x.shape}")
    if min(x.shape[1:3]) < MIN_SIZE:
        raise ValueError(f"VGG19 up to relu5_1 needs at least {MIN_SIZE}x{MIN_SIZE} pixels, got {x.shape[1:3]}")
    return V.module()(x)
