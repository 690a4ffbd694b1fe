"""LPIPS v0.1 with the VGG16 or the AlexNet trunk (richzhang/PerceptualSimilarity = PyPI `lpips` 0.1.4) as a Flax
NNX module.

Follows richzhang/PerceptualSimilarity@082bb24: `LPIPS.forward` with `ScalingLayer` and `NetLinLayer` in
`lpips/lpips.py` and `normalize_tensor` in `lpips/__init__.py` (scaling layer, unit normalisation with the eps added
to the norm, squared difference, 1x1 lin layers without bias, spatial mean or bilinear upsampling, sum over layers;
`retPerLayer` for the per-layer terms), the `vgg16` and `alexnet` classes of `lpips/pretrained_networks.py`
(torchvision `features` taps: relu1_2 ... relu5_3 of VGG16, relu1 ... relu5 of AlexNet) and the lin weights
`lpips/weights/v0.1/{vgg,alex}.pth`. Dropout in front of each lin layer is the identity in eval mode, the official
default, so it has no counterpart here. The scaling layer and the lin layers are the same for both nets; only the
trunk (`TRUNKS`) and the lin widths differ.

Names and layouts are the PyTorch ones: the trunk is `features.{i}.{weight,bias}` with i the conv's position in
torchvision's `vgg16().features` (0, 2, 5, ..., 28) or `alexnet().features` (0, 3, 6, 8, 10), OIHW weights; the
calibration layers are `lin0` ... `lin4` with weight [1, C, 1, 1] (the official `lin{k}.model.1.weight`, dropout
index dropped). Activations are NHWC, everything runs in float32.

The public API is pure functions of a `SplitModel` (`lpips_distance`, `lpips_layer_distances`), differentiable with
respect to the images and usable under `jax.jit` / `jax.vmap`.
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


@dataclasses.dataclass(frozen=True)
class Conv:
    """A `nn.Conv2d` (with bias) and the in-place ReLU after it; `index` is the conv's position in the Sequential,
    so it owns `features.{index}.weight/bias`."""

    index: int
    in_channels: int
    out_channels: int
    kernel_size: int = 3
    stride: int = 1
    padding: int = 1


@dataclasses.dataclass(frozen=True)
class MaxPool:
    """`nn.MaxPool2d(kernel_size, stride)`: no padding, floor mode (torchvision's VGG16 and AlexNet both)."""

    kernel_size: int
    stride: int


@dataclasses.dataclass(frozen=True)
class Trunk:
    """The part of a torchvision `features` Sequential that LPIPS runs, and where it taps it.

    `taps`: the convs whose ReLU output ends one of lpips' slices (each slice ends after an in-place ReLU, so every
    tap is post-ReLU). `min_size`: the smallest image side for which every tap is non-empty (below it the official
    network fails or returns NaN).
    """

    torchvision: str
    layers: tuple
    taps: tuple[int, ...]
    min_size: int

    @property
    def convs(self) -> tuple[Conv, ...]:
        return tuple(layer for layer in self.layers if isinstance(layer, Conv))

    @property
    def conv_indices(self) -> tuple[int, ...]:
        return tuple(conv.index for conv in self.convs)

    @property
    def tap_channels(self) -> tuple[int, ...]:
        return tuple(conv.out_channels for conv in self.convs if conv.index in self.taps)


_POOL_2X2 = MaxPool(2, 2)
_POOL_3X3_S2 = MaxPool(3, 2)

TRUNKS = {
    # torchvision vgg16().features: 3x3 convs (padding 1), 2x2 pools; lpips `vgg16` slices [0:4], [4:9], [9:16],
    # [16:23], [23:30] end after the ReLUs of convs 2, 7, 14, 21, 28 (relu1_2 ... relu5_3). Four pools before
    # relu5_3: at least 16 px.
    "vgg": Trunk("vgg16", (Conv(0, 3, 64), Conv(2, 64, 64), _POOL_2X2,
                           Conv(5, 64, 128), Conv(7, 128, 128), _POOL_2X2,
                           Conv(10, 128, 256), Conv(12, 256, 256), Conv(14, 256, 256), _POOL_2X2,
                           Conv(17, 256, 512), Conv(19, 512, 512), Conv(21, 512, 512), _POOL_2X2,
                           Conv(24, 512, 512), Conv(26, 512, 512), Conv(28, 512, 512)),
                 taps=(2, 7, 14, 21, 28), min_size=16),
    # torchvision alexnet().features up to relu5 (the last pool, index 12, ends no slice); lpips `alexnet` slices
    # [0:2], [2:5], [5:8], [8:10], [10:12] end after the ReLUs of convs 0, 3, 6, 8, 10. The 11x11 stride-4 conv
    # gives floor((H - 7) / 4) + 1 rows and each 3x3 stride-2 pool floor((h - 3) / 2) + 1; relu3 needs 3 rows
    # before the second pool, so 7 after the first conv: H >= 31.
    "alex": Trunk("alexnet", (Conv(0, 3, 64, 11, stride=4, padding=2), _POOL_3X3_S2,
                              Conv(3, 64, 192, 5, padding=2), _POOL_3X3_S2,
                              Conv(6, 192, 384), Conv(8, 384, 256), Conv(10, 256, 256)),
                  taps=(0, 3, 6, 8, 10), min_size=31),
}
NETS = tuple(TRUNKS)
VERSIONS = ("0.1",)


@dataclasses.dataclass(frozen=True)
class LPIPSConfig:
    """What the model is: the trunk `net` ('vgg' or 'alex') with the v0.1 lin weights released for it.

    'squeeze' exists upstream and is not implemented; `version` '0.0' would drop the scaling layer and use the v0.0
    lin weights (the "normalization bug" release), also not implemented.
    """

    net: str = "vgg"
    version: str = "0.1"

    def __post_init__(self):
        if self.net not in NETS:
            raise ValueError(f"LPIPS net must be one of {NETS}, got {self.net!r}")
        if self.version not in VERSIONS:
            raise ValueError(f"LPIPS version must be one of {VERSIONS}, got {self.version!r}")

    @property
    def trunk(self) -> Trunk:
        return TRUNKS[self.net]

    @property
    def tap_channels(self) -> tuple[int, ...]:
        return self.trunk.tap_channels

    @property
    def min_size(self) -> int:
        return self.trunk.min_size


class Conv2d(nnx.Module):
    """`torch.nn.Conv2d(in, out, k, stride, padding)` with bias: weight [O, I, k, k], NHWC activations; the padding
    defaults to k // 2 (a size-keeping conv at stride 1)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1,
                 padding: int | None = None, rngs: nnx.Rngs):
        self.stride = stride
        self.padding = kernel_size // 2 if padding is None else padding
        # torch's default init bounds (kaiming-uniform, a=sqrt(5)); in practice only traced by `abstract_model`.
        bound = 1 / np.sqrt(in_channels * kernel_size ** 2)
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        self.weight = nnx.Param(jax.random.uniform(rngs.params(), shape, jnp.float32, -bound, bound))
        self.bias = nnx.Param(jax.random.uniform(rngs.params(), (out_channels,), jnp.float32, -bound, bound))

    def __call__(self, x):
        p, s = self.padding, self.stride
        y = lax.conv_general_dilated(x, self.weight[...], window_strides=(s, s), padding=((p, p), (p, p)),
                                     dimension_numbers=("NHWC", "OIHW", "NHWC"))
        return y + self.bias[...]


def max_pool(x, kernel_size: int, stride: int):
    """`nn.MaxPool2d(kernel_size, stride)` on NHWC: VALID windows, so sizes that do not fit a whole window drop the
    last rows / columns (PyTorch's floor mode, no padding). Not `ops.torch_layers.max_pool_3x3_s2`, which pads by 1
    (ResNet's stem) and rounds the size up."""
    window = (1, kernel_size, kernel_size, 1)
    return lax.reduce_window(x, -jnp.inf, lax.max, window, (1, stride, stride, 1), "VALID")


def max_pool_2x2(x):
    """`nn.MaxPool2d(2, 2)`: VALID windows, so odd sizes drop the last row / column (PyTorch's floor mode)."""
    return max_pool(x, 2, 2)


class Features(nnx.Module):
    """torchvision `vgg16().features` up to relu5_3 or `alexnet().features` up to relu5; conv i is the attribute
    str(i) (ReLUs and pools have no weights)."""

    def __init__(self, net: str, *, rngs: nnx.Rngs):
        self.net = net
        for conv in TRUNKS[net].convs:
            setattr(self, str(conv.index), Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size,
                                                  stride=conv.stride, padding=conv.padding, rngs=rngs))

    def __call__(self, x) -> list:
        """x: [N, H, W, 3] (already scaled) -> the five taps, NHWC, post-ReLU."""
        trunk = TRUNKS[self.net]
        taps = []
        for layer in trunk.layers:
            if isinstance(layer, MaxPool):
                x = max_pool(x, layer.kernel_size, layer.stride)
                continue
            x = jax.nn.relu(getattr(self, str(layer.index))(x))
            if layer.index in trunk.taps:
                taps.append(x)
        return taps


class NetLinLayer(nnx.Module):
    """The official `NetLinLayer` in eval mode: Dropout (identity) then a 1x1 conv C -> 1 without bias."""

    def __init__(self, channels: int, *, rngs: nnx.Rngs):
        # Released weights (weights/v0.1/{vgg,alex}.pth) are non-negative, hence the [0, 1/C) range for a freshly
        # built module.
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
    """LPIPS(net=cfg.net, version='0.1', lpips=True) in eval mode."""

    def __init__(self, cfg: LPIPSConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        self.features = Features(cfg.net, rngs=rngs)
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

    def layer_terms(self, x0, x1, spatial: bool = False) -> list:
        """The official `res` list (what `retPerLayer=True` returns beside the distance): per tap, the spatial mean
        of its map [N], or with `spatial` the map upsampled to the input size [N, H, W, 1]."""
        maps = self.layer_maps(x0, x1)
        if spatial:
            # `nn.Upsample(size=(H, W), mode='bilinear', align_corners=False)` (lpips.py `upsample`): the project's
            # PyTorch-exact bilinear op, which never antialiases.
            return [resize_bilinear(m, x0.shape[1:3]) for m in maps]
        return [jnp.mean(m, axis=(1, 2, 3)) for m in maps]

    def __call__(self, x0, x1, spatial: bool = False):
        per_layer = self.layer_terms(x0, x1, spatial)
        total = per_layer[0]
        for r in per_layer[1:]:  # the official left-to-right sum, res[0] + res[1] + ...
            total = total + r
        return total


# ----------------------------------------------------------------------------------------------------------------
# The pure, functional API


def abstract_model(cfg: LPIPSConfig) -> SplitModel:
    """Shapes and dtypes only (no random init), the target for the converter and checkpoint restores.

    There is no `init_lpips`: a metric with random weights measures nothing, and the weights always come from
    files (`checkpoints_convert.lpips`).
    """
    return split(nnx.eval_shape(lambda: LPIPS(cfg, rngs=nnx.Rngs(0))))


def _check_images(cfg: LPIPSConfig, x0, x1, normalize: bool):
    x0 = jnp.asarray(x0, jnp.float32)
    x1 = jnp.asarray(x1, jnp.float32)
    if x0.ndim != 4 or x0.shape[-1] != 3 or x0.shape != x1.shape:
        raise ValueError(f"LPIPS compares two NHWC RGB batches of the same shape [N, H, W, 3]; "
                         f"got {x0.shape} and {x1.shape}")
    if min(x0.shape[1:3]) < cfg.min_size:
        # A tap would be empty (vgg: four 2x2 pools before relu5_3; alex: the stride-4 conv and two 3x3 pools
        # before relu3); the official network returns NaN or fails there.
        raise ValueError(f"LPIPS ({cfg.net}) needs images of at least {cfg.min_size}x{cfg.min_size} pixels, got "
                         f"{x0.shape[1:3]}")
    if normalize:
        x0, x1 = 2 * x0 - 1, 2 * x1 - 1
    return x0, x1


def lpips_distance(model: SplitModel, x0, x1, *, spatial: bool = False, normalize: bool = False):
    """LPIPS distance between x0 and x1, NHWC float RGB images [N, H, W, 3] in [-1, 1].

    Returns [N] (the official (N, 1, 1, 1) result, squeezed), or with `spatial=True` the per-pixel map [N, H, W, 1]
    (the official (N, 1, H, W), each layer's map upsampled bilinearly to the input size before the sum).
    `normalize=True` takes images in [0, 1] instead (the official `normalize` flag: x -> 2x - 1).
    Images must be at least `model.config.min_size` on each side (vgg 16, alex 31; below that a tap is empty and
    the official result is NaN or an error).
    """
    module = model.module()
    x0, x1 = _check_images(module.cfg, x0, x1, normalize)
    return module(x0, x1, spatial=spatial)


def lpips_layer_distances(model: SplitModel, x0, x1, *, spatial: bool = False, normalize: bool = False):
    """The five per-layer terms whose sum is `lpips_distance`, stacked: [5, N], or with `spatial=True`
    [5, N, H, W, 1] (the official `retPerLayer=True` list). Same inputs and checks as `lpips_distance`."""
    module = model.module()
    x0, x1 = _check_images(module.cfg, x0, x1, normalize)
    return jnp.stack(module.layer_terms(x0, x1, spatial=spatial))


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
