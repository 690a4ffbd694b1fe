"""LPIPS v0.1 with the VGG16 trunk (richzhang/PerceptualSimilarity = PyPI `lpips` 0.1.4) as a Flax NNX module.

Follows richzhang/PerceptualSimilarity@082bb24: `LPIPS.forward` with `ScalingLayer` and `NetLinLayer` in
`lpips/lpips.py` and `normalize_tensor` in `lpips/__init__.py` (scaling layer, unit normalisation with the eps added
to the norm, squared difference, 1x1 lin layers without bias, spatial mean or bilinear upsampling, sum over layers),
the `vgg16` class of `lpips/pretrained_networks.py` (VGG16 `features` taps relu1_2 ... relu5_3) and the lin weights
`lpips/weights/v0.1/vgg.pth`. Dropout in front of each lin layer is
the identity in eval mode, the official default, so it has no counterpart here.

Names and layouts are the PyTorch ones: the trunk is `features.{0,2,5,...,28}.{weight,bias}` as in torchvision's
`vgg16().features` (OIHW weights), the calibration layers are `lin0` ... `lin4` with weight [1, C, 1, 1] (the
official `lin{k}.model.1.weight`, dropout index dropped). Activations are NHWC, everything runs in float32.

The public API is pure functions of a `SplitModel` (`lpips_distance`), differentiable with respect to the images
and usable under `jax.jit` / `jax.vmap`.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import lax

from jaxgan import parallel
from jaxgan.nn.split import SplitModel, split
from jaxgan.ops.resize import resize_bilinear

# ImageNet mean/std rewritten for inputs in [-1, 1] (2*mean - 1, 2*std), exactly the official constants
# (float32 buffers in `ScalingLayer`), not recomputed from the ImageNet values, which would differ in the last bit.
SHIFT = np.array([-0.030, -0.088, -0.188], np.float32)
SCALE = np.array([0.458, 0.448, 0.450], np.float32)
NORM_EPS = 1e-10  # added to the channel norm, not inside the sqrt (lpips/__init__.py normalize_tensor)

# torchvision vgg16().features: "C" a 3x3 conv (padding 1) followed by an in-place ReLU, "M" a 2x2 max pool (stride 2).
# Indices are the Sequential positions, so the conv at index i owns `features.{i}.weight/bias`.
_VGG16_LAYOUT = ((0, 3, 64), (2, 64, 64), "M",
                 (5, 64, 128), (7, 128, 128), "M",
                 (10, 128, 256), (12, 256, 256), (14, 256, 256), "M",
                 (17, 256, 512), (19, 512, 512), (21, 512, 512), "M",
                 (24, 512, 512), (26, 512, 512), (28, 512, 512))
# lpips `vgg16`: slices [0:4], [4:9], [9:16], [16:23], [23:30] end after the ReLU of these convs (relu1_2 ... relu5_3).
_VGG16_TAPS = (2, 7, 14, 21, 28)
VGG16_CONV_INDICES = tuple(layer[0] for layer in _VGG16_LAYOUT if layer != "M")
VGG16_TAP_CHANNELS = (64, 128, 256, 512, 512)
MIN_SIZE = 16  # four 2x2 pools before relu5_3

NETS = ("vgg",)
VERSIONS = ("0.1",)


@dataclasses.dataclass(frozen=True)
class LPIPSConfig:
    """What the model is; only the combination with released and tested weights exists (vgg, v0.1).

    `net` selects the trunk (alex and squeeze exist upstream, not implemented); `version` '0.0' would drop the
    scaling layer and use the v0.0 lin weights (the "normalization bug" release), also not implemented.
    """

    net: str = "vgg"
    version: str = "0.1"

    def __post_init__(self):
        if self.net not in NETS:
            raise ValueError(f"LPIPS net must be one of {NETS}, got {self.net!r}")
        if self.version not in VERSIONS:
            raise ValueError(f"LPIPS version must be one of {VERSIONS}, got {self.version!r}")

    @property
    def tap_channels(self) -> tuple[int, ...]:
        return VGG16_TAP_CHANNELS


class Conv2d(nnx.Module):
    """`torch.nn.Conv2d(in, out, k, padding=k//2)` with bias: weight [O, I, k, k], NHWC activations."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, rngs: nnx.Rngs):
        self.padding = kernel_size // 2
        # torch's default init bounds (kaiming-uniform, a=sqrt(5)); in practice only traced by `abstract_model`.
        bound = 1 / np.sqrt(in_channels * kernel_size ** 2)
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        self.weight = nnx.Param(jax.random.uniform(rngs.params(), shape, jnp.float32, -bound, bound))
        self.bias = nnx.Param(jax.random.uniform(rngs.params(), (out_channels,), jnp.float32, -bound, bound))

    def __call__(self, x):
        p = self.padding
        y = lax.conv_general_dilated(x, self.weight[...], window_strides=(1, 1), padding=((p, p), (p, p)),
                                     dimension_numbers=("NHWC", "OIHW", "NHWC"))
        return y + self.bias[...]


def max_pool_2x2(x):
    """`nn.MaxPool2d(2, 2)`: VALID windows, so odd sizes drop the last row / column (PyTorch's floor mode)."""
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


class VGG16Features(nnx.Module):
    """torchvision `vgg16().features` up to relu5_3; the convs are attributes '0', '2', ..., '28'."""

    def __init__(self, *, rngs: nnx.Rngs):
        for layer in _VGG16_LAYOUT:
            if layer != "M":
                index, in_channels, out_channels = layer
                setattr(self, str(index), Conv2d(in_channels, out_channels, 3, rngs=rngs))

    def __call__(self, x) -> list:
        """x: [N, H, W, 3] (already scaled) -> the five taps, NHWC, post-ReLU."""
        taps = []
        for layer in _VGG16_LAYOUT:
            if layer == "M":
                x = max_pool_2x2(x)
                continue
            index = layer[0]
            x = jax.nn.relu(getattr(self, str(index))(x))
            if index in _VGG16_TAPS:
                taps.append(x)
        return taps


class NetLinLayer(nnx.Module):
    """The official `NetLinLayer` in eval mode: Dropout (identity) then a 1x1 conv C -> 1 without bias."""

    def __init__(self, channels: int, *, rngs: nnx.Rngs):
        # Released weights (weights/v0.1/vgg.pth) are non-negative, hence the [0, 1/C) range for a freshly built module.
        self.weight = nnx.Param(jax.random.uniform(rngs.params(), (1, channels, 1, 1), jnp.float32, 0, 1 / channels))

    def __call__(self, d):
        """d: [N, H, W, C] -> [N, H, W]."""
        # A broadcast multiply and a channel sum rather than a dot: the layer is tiny, and this keeps it exact float32
        # on GPUs whose default matmul precision is TF32.
        return jnp.sum(d * self.weight[0, :, 0, 0], axis=-1)


def unit_normalize(f, eps: float = NORM_EPS):
    """`f / (sqrt(sum_c f^2) + eps)` over the channel (last) axis, as the official `normalize_tensor`.

    Where every channel is zero (all ReLUs off at a pixel), f is zero and so is the result; there the gradient of
    sqrt at 0 is infinite and PyTorch's gradient is NaN. The sqrt gets a safe argument at those pixels, which leaves
    every value unchanged and makes their gradient the finite one of f / eps.
    """
    sum_sq = jnp.sum(jnp.square(f), axis=-1, keepdims=True)
    positive = sum_sq > 0
    norm = jnp.where(positive, jnp.sqrt(jnp.where(positive, sum_sq, 1.0)), 0.0)
    return f / (norm + eps)


class LPIPS(nnx.Module):
    """LPIPS(net='vgg', version='0.1', lpips=True) in eval mode."""

    def __init__(self, cfg: LPIPSConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        self.features = VGG16Features(rngs=rngs)
        for k, channels in enumerate(cfg.tap_channels):
            setattr(self, f"lin{k}", NetLinLayer(channels, rngs=rngs))

    def layer_maps(self, x0, x1) -> list:
        """Per tap, lin((f̂0 - f̂1)^2) as [N, h_l, w_l, 1] maps (before spatial averaging or upsampling)."""
        # Both images go through the trunk as one batch: one compiled conv stack, the same per-image numbers.
        x = (jnp.concatenate([x0, x1], axis=0) - SHIFT) / SCALE
        n = x0.shape[0]
        maps = []
        for k, f in enumerate(self.features(x)):
            f = unit_normalize(f)
            maps.append(getattr(self, f"lin{k}")(jnp.square(f[:n] - f[n:]))[..., None])
        return maps

    def __call__(self, x0, x1, spatial: bool = False):
        maps = self.layer_maps(x0, x1)
        if spatial:
            # `nn.Upsample(size=(H, W), mode='bilinear', align_corners=False)` (lpips.py `upsample`): the project's
            # PyTorch-exact bilinear op, which never antialiases.
            per_layer = [resize_bilinear(m, x0.shape[1:3]) for m in maps]
        else:
            per_layer = [jnp.mean(m, axis=(1, 2, 3)) for m in maps]
        total = per_layer[0]
        for r in per_layer[1:]:  # the official left-to-right sum, res[0] + res[1] + ...
            total = total + r
        return total


# ----------------------------------------------------------------------------------------------------------------
# The pure, functional API


def abstract_model(cfg: LPIPSConfig) -> SplitModel:
    """Shapes and dtypes only (no random init), the target for the converter and checkpoint restores.

    There is no `init_lpips`: a metric with random weights measures nothing, and the weights always come from
    files (`checkpoints_convert.lpips_vgg`).
    """
    return split(nnx.eval_shape(lambda: LPIPS(cfg, rngs=nnx.Rngs(0))))


def _check_images(x0, x1):
    x0 = jnp.asarray(x0, jnp.float32)
    x1 = jnp.asarray(x1, jnp.float32)
    if x0.ndim != 4 or x0.shape[-1] != 3 or x0.shape != x1.shape:
        raise ValueError(f"LPIPS compares two NHWC RGB batches of the same shape [N, H, W, 3]; "
                         f"got {x0.shape} and {x1.shape}")
    if min(x0.shape[1:3]) < MIN_SIZE:
        # Four 2x2 pools leave relu5_3 empty below 16 px; the official network returns NaN there.
        raise ValueError(f"LPIPS (vgg) needs images of at least {MIN_SIZE}x{MIN_SIZE} pixels, got {x0.shape[1:3]}")
    return x0, x1


def lpips_distance(model: SplitModel, x0, x1, *, spatial: bool = False, normalize: bool = False):
    """LPIPS distance between x0 and x1, NHWC float RGB images [N, H, W, 3] in [-1, 1].

    Returns [N] (the official (N, 1, 1, 1) result, squeezed), or with `spatial=True` the per-pixel map [N, H, W, 1]
    (the official (N, 1, H, W), each layer's map upsampled bilinearly to the input size before the sum).
    `normalize=True` takes images in [0, 1] instead (the official `normalize` flag: x -> 2x - 1).
    Images must be at least 16x16 (below that relu5_3 is empty and the official result is NaN).
    """
    x0, x1 = _check_images(x0, x1)
    if normalize:
        x0, x1 = 2 * x0 - 1, 2 * x1 - 1
    return model.module()(x0, x1, spatial=spatial)


def lpips_pairs(count: int, all_pairs: bool = False) -> list[tuple[int, int]]:
    """Which of `count` images to compare: the first with each of the others, or every pair (i < j)."""
    if all_pairs:
        return [(i, j) for i in range(count) for j in range(i + 1, count)]
    return [(0, j) for j in range(1, count)]


@functools.cache
def _pair_program(mesh):
    """The sharded LPIPS of a batch of pairs on `mesh`, built once per mesh (so jit's cache is reused)."""
    def per_device(shared, pair):
        model, images = shared
        first, second = pair
        return lpips_distance(model, images[first], images[second])
    return parallel.shard_problems(per_device, mesh)


def lpips_distances(model: SplitModel, images, pairs, *, batch_size: int = 8, mesh=None) -> np.ndarray:
    """float32 [len(pairs)]: LPIPS of images[i] and images[j] for each (i, j), `batch_size` pairs per device per
    call, over `mesh` (default: as many local devices as pairs, `parallel.mesh_for`). images: [N, H, W, 3] in
    [-1, 1], all the same size."""
    if not pairs:
        raise ValueError("no pairs to compare")
    images = np.asarray(images, np.float32)
    mesh = parallel.mesh_for(len(pairs)) if mesh is None else mesh
    first, second = (np.asarray(side, np.int32) for side in zip(*pairs))
    # The pairs are index pairs into the images (replicated once), so no chunk copies the images of all pairs.
    distances = parallel.map_chunks(_pair_program(mesh), (model, images), (first, second), batch_size=batch_size,
                                    mesh=mesh)
    return distances.astype(np.float32)
