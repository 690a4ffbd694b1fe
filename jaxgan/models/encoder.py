"""EditGAN's image encoder (`FPNEncoder`): a ResNet-50 feature pyramid and one small head per W+ row.

Follows `models/encoder/encoder.py` of nv-tlabs/editGAN_release@fef9ab8 (`FPNEncoder(3, n_latent)` with its defaults
use_style_head=False, only_last_layer=False, same_view_code=False, as `EditGAN_tool.py` and `train_encoder.py` build
it):

* `FPN`: conv 7x7 / 2 (no bias), BatchNorm, ReLU, max pool 3x3 / 2 (padding 1); four stages of `Bottleneck` blocks
  ([3, 4, 6, 3], expansion 4, the stride on the 3x3 conv, a 1x1 conv + BatchNorm shortcut where the shape changes)
  giving c2 ... c5; top-down `p5 = toplayer(c5)`, then `p4 = up(p5) + latlayer1(c4)`, `p3 = up(p4) + latlayer2(c3)`,
  `p2 = up(p3) + latlayer3(c2)`, with `up` = bilinear resizing to the lateral map's size (align_corners=False, the
  ratio need not be 2); then `smooth1..3` (3x3) on p4, p3, p2.
* `ToStyleCode(n)`: n x [conv 3x3 / 2 with bias, LeakyReLU(0.01)], `view(-1, C)`, Linear. Three coarse heads (n=5)
  read p4 and give W+ rows 0-2, four medium heads (n=6) read p3 (rows 3-6), `num_ws - 7` fine heads (n=7) read p2.
  The rows are stacked into W+ [N, num_ws, w_dim] and used as they are (no average latent is added).

Every size is a config field that the converter reads off the tensor shapes: the official network has base width 64
(stage outputs 256 ... 2048), pyramid width 512 and heads of width 512 = w_dim. `head_dim` may differ from `w_dim`
(then the heads' Linear is head_dim -> w_dim), which small test networks use.

BatchNorm. The official code never calls `eval()` on the encoder, so every call normalises with the statistics of
the batch it is given (`batch_norm="batch"`, the default here), and its output for one image depends on the other
images of the batch. `encode` reproduces exactly that; `encode_each` runs every image as its own batch of one, the
way the official embedding calls the encoder, so that each result depends on its image only (whatever it is
batched with). For a batch of one, batch statistics are per-image statistics over the spatial positions of each
map, down to c5 with ceil(H/32) x ceil(W/32) positions: 2 x 2 at 64 px, so a 32 px image alone cannot be encoded
that way (PyTorch raises too). `batch_norm="running"` uses the stored running statistics (PyTorch's eval mode),
and `encode_train` is train mode with the running-average update, for training an encoder.

Sizes. Each head halves its map (rounding up) until 1 x 1 when H and W are at most 512; above that the official
`view(-1, C)` silently mixes positions into the batch, so larger images are refused here (EditGAN feeds at most
512 px). `head_convs` (official: 5, 6, 7) may be smaller for an encoder of small images: the official depth leaves
a 32 px image's heads with four, four and four convs on a 1 x 1 map, and an encoder trained from PyTorch's default
initialisation through them gives the same W+ for every image (scripts/results/demo_encoder_attempt.json); with
fewer convs the largest image is `max_size` = min(16 * 2^n0, 8 * 2^n1, 4 * 2^n2). Images are NHWC in [-1, 1];
activations NHWC, float32.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxgan.nn import Buffer
from jaxgan.nn.split import SplitModel, split
from jaxgan.ops.resize import resize_bilinear
from jaxgan.ops.torch_layers import (batch_norm, batch_statistics, conv2d, max_pool_3x3_s2, running_average)

BATCH_NORM_MODES = ("batch", "running")
OFFICIAL_BATCH_NORM = "batch"          # EditGAN never calls eval() on its encoder
EXPANSION = 4                          # Bottleneck.expansion
HEAD_GROUPS = (("course_styles", 3), ("medium_styles", 4))  # (attribute, heads); official spelling
FINE_HEADS = "fine_styles"
FIXED_ROWS = sum(count for _, count in HEAD_GROUPS)  # 7: the fine heads give the remaining num_ws - 7 rows
HEAD_STRIDES = (16, 8, 4)              # of p4, p3, p2: the maps the coarse, medium and fine heads read
OFFICIAL_HEAD_CONVS = (5, 6, 7)        # ToStyleCode(5 / 6 / 7): 1 x 1 at the end for images up to 512 px
HEAD_SLOPE = 0.01                      # nn.LeakyReLU() default


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
    """An `FPNEncoder`; the defaults are the official network (FPNEncoder(3, n_latent=16), 277.5 M parameters)."""

    num_ws: int = 16                    # n_latent: W+ rows
    w_dim: int = 512                    # width of each W+ row (the heads' Linear output)
    in_channels: int = 3
    base_width: int = 64                # stem width; stage k has planes base * 2^k and outputs 4 x that
    stage_blocks: tuple[int, ...] = (3, 4, 6, 3)  # ResNet-50
    fpn_dim: int = 512                  # FPN.feature_dim: toplayer, latlayers, smooth convs
    head_dim: int = 512                 # ToStyleCode conv width (= w_dim in the official network)
    head_convs: tuple[int, int, int] = OFFICIAL_HEAD_CONVS  # stride-2 convs of the coarse, medium, fine heads

    def __post_init__(self):
        if self.num_ws < FIXED_ROWS:
            raise ValueError(f"an FPNEncoder gives at least {FIXED_ROWS} W+ rows (3 coarse, 4 medium heads), "
                             f"got num_ws={self.num_ws}")
        if len(self.stage_blocks) != 4 or min(self.stage_blocks) < 1:
            raise ValueError(f"stage_blocks must be four positive block counts, got {self.stage_blocks}")
        for name in ("w_dim", "in_channels", "base_width", "fpn_dim", "head_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if len(self.head_convs) != 3 or min(self.head_convs) < 1:
            raise ValueError(f"head_convs must be three positive conv counts, got {self.head_convs}")

    @property
    def max_size(self) -> int:
        """The largest image side the heads reduce to 1 x 1 (512 for the official heads): above it the official
        `view(-1, C)` would mix positions into the batch."""
        return min(stride * 2 ** n for stride, n in zip(HEAD_STRIDES, self.head_convs))

    @property
    def stage_channels(self) -> tuple[int, ...]:
        """Output channels of c2 ... c5."""
        return tuple(EXPANSION * self.base_width * 2 ** k for k in range(4))


# ----------------------------------------------------------------------------------------------------------------
# Layers, named as the PyTorch state dict (`FPN_module.layer2.0.shortcut.1.running_mean`, `fine_styles.3.convs.4`)


def _torch_uniform(key, shape, fan_in: int):
    """PyTorch's default Conv2d / Linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform with a=sqrt(5))."""
    bound = 1 / np.sqrt(fan_in)
    return jax.random.uniform(key, shape, jnp.float32, -bound, bound)


class Conv2d(nnx.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1, bias: bool = True,
                 rngs: nnx.Rngs):
        self.stride, self.padding = stride, kernel_size // 2
        fan_in = in_channels * kernel_size ** 2
        self.weight = nnx.Param(_torch_uniform(rngs.params(), (out_channels, in_channels, kernel_size, kernel_size),
                                               fan_in))
        self.bias = nnx.Param(_torch_uniform(rngs.params(), (out_channels,), fan_in)) if bias else None

    def __call__(self, x):
        bias = None if self.bias is None else self.bias[...]
        return conv2d(x, self.weight[...], bias, stride=self.stride, padding=self.padding)


class Linear(nnx.Module):
    def __init__(self, in_features: int, out_features: int, *, rngs: nnx.Rngs):
        self.weight = nnx.Param(_torch_uniform(rngs.params(), (out_features, in_features), in_features))
        self.bias = nnx.Param(_torch_uniform(rngs.params(), (out_features,), in_features))

    def __call__(self, x):
        return x @ self.weight[...].T + self.bias[...]


class BatchNorm2d(nnx.Module):
    """`nn.BatchNorm2d(C)` (PyTorch's initial values). mode: 'batch', 'running', or 'update' (batch statistics, and
    the running averages updated in place, for training). `num_batches_tracked` has no counterpart: with the default
    momentum PyTorch never reads it."""

    def __init__(self, channels: int):
        self.weight = nnx.Param(jnp.ones((channels,), jnp.float32))
        self.bias = nnx.Param(jnp.zeros((channels,), jnp.float32))
        self.running_mean = Buffer(jnp.zeros((channels,), jnp.float32))
        self.running_var = Buffer(jnp.ones((channels,), jnp.float32))

    def __call__(self, x, mode: str):
        if mode == "running":
            mean, var = self.running_mean[...], self.running_var[...]
        else:
            mean, var = batch_statistics(x)
            if mode == "update":
                values = x.size // x.shape[-1]
                new_mean, new_var = running_average(self.running_mean[...], self.running_var[...],
                                                    jax.lax.stop_gradient(mean), jax.lax.stop_gradient(var), values)
                self.running_mean.value, self.running_var.value = new_mean, new_var
        return batch_norm(x, self.weight[...], self.bias[...], mean, var)


class Indexed(nnx.Module):
    """An `nn.Sequential` / `nn.ModuleList` of modules stored under their PyTorch indices ('0', '2', ...)."""

    def __init__(self, items: dict[int, nnx.Module]):
        self.indices = tuple(items)
        for index, module in items.items():
            setattr(self, str(index), module)

    def __iter__(self):
        return (getattr(self, str(i)) for i in self.indices)


class Shortcut(nnx.Module):
    """`nn.Sequential(Conv2d 1x1 / stride, BatchNorm2d)`: keys `shortcut.0.weight`, `shortcut.1.*`."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, *, rngs: nnx.Rngs):
        setattr(self, "0", Conv2d(in_channels, out_channels, 1, stride=stride, bias=False, rngs=rngs))
        setattr(self, "1", BatchNorm2d(out_channels))

    def __call__(self, x, mode: str):
        return getattr(self, "1")(getattr(self, "0")(x), mode)


class Bottleneck(nnx.Module):
    def __init__(self, in_planes: int, planes: int, stride: int, *, rngs: nnx.Rngs):
        out = EXPANSION * planes
        self.conv1 = Conv2d(in_planes, planes, 1, bias=False, rngs=rngs)
        self.bn1 = BatchNorm2d(planes)
        self.conv2 = Conv2d(planes, planes, 3, stride=stride, bias=False, rngs=rngs)
        self.bn2 = BatchNorm2d(planes)
        self.conv3 = Conv2d(planes, out, 1, bias=False, rngs=rngs)
        self.bn3 = BatchNorm2d(out)
        self.shortcut = (Shortcut(in_planes, out, stride, rngs=rngs) if stride != 1 or in_planes != out else None)

    def __call__(self, x, mode: str):
        y = jax.nn.relu(self.bn1(self.conv1(x), mode))
        y = jax.nn.relu(self.bn2(self.conv2(y), mode))
        y = self.bn3(self.conv3(y), mode)
        return jax.nn.relu(y + (x if self.shortcut is None else self.shortcut(x, mode)))


def upsample_add(top, lateral):
    """`FPN._upsample_add`: `F.interpolate(top, size=lateral's, mode='bilinear', align_corners=False) + lateral`."""
    return resize_bilinear(top, lateral.shape[1:3]) + lateral


class FPN(nnx.Module):
    def __init__(self, cfg: EncoderConfig, *, rngs: nnx.Rngs):
        base, f = cfg.base_width, cfg.fpn_dim
        self.conv1 = Conv2d(cfg.in_channels, base, 7, stride=2, bias=False, rngs=rngs)
        self.bn1 = BatchNorm2d(base)
        in_planes = base
        for k, blocks in enumerate(cfg.stage_blocks):
            planes = base * 2 ** k
            stage = {}
            for i in range(blocks):
                stage[i] = Bottleneck(in_planes, planes, 2 if (k > 0 and i == 0) else 1, rngs=rngs)
                in_planes = EXPANSION * planes
            setattr(self, f"layer{k + 1}", Indexed(stage))
        c2, c3, c4, c5 = cfg.stage_channels
        self.toplayer = Conv2d(c5, f, 1, rngs=rngs)
        for i in (1, 2, 3):
            setattr(self, f"smooth{i}", Conv2d(f, f, 3, rngs=rngs))
        for i, channels in zip((1, 2, 3), (c4, c3, c2)):
            setattr(self, f"latlayer{i}", Conv2d(channels, f, 1, rngs=rngs))

    def __call__(self, x, mode: str):
        c = max_pool_3x3_s2(jax.nn.relu(self.bn1(self.conv1(x), mode)))
        stages = []
        for k in range(4):
            for block in getattr(self, f"layer{k + 1}"):
                c = block(c, mode)
            stages.append(c)
        c2, c3, c4, c5 = stages
        p5 = self.toplayer(c5)
        p4 = upsample_add(p5, self.latlayer1(c4))
        p3 = upsample_add(p4, self.latlayer2(c3))
        p2 = upsample_add(p3, self.latlayer3(c2))
        return self.smooth3(p2), self.smooth2(p3), self.smooth1(p4)


class ToStyleCode(nnx.Module):
    """n x [conv 3x3 / 2, LeakyReLU(0.01)] (convs at Sequential indices 0, 2, 4, ...), then Linear(head, w_dim)."""

    def __init__(self, n_convs: int, in_channels: int, head_dim: int, w_dim: int, *, rngs: nnx.Rngs):
        self.convs = Indexed({2 * i: Conv2d(in_channels if i == 0 else head_dim, head_dim, 3, stride=2, rngs=rngs)
                              for i in range(n_convs)})
        self.linear = Linear(head_dim, w_dim, rngs=rngs)

    def __call__(self, x):
        for conv in self.convs:
            x = jax.nn.leaky_relu(conv(x), HEAD_SLOPE)
        return self.linear(x.reshape(x.shape[0], x.shape[-1]))  # 1 x 1 maps (sizes checked in `_check_images`)


class FPNEncoder(nnx.Module):
    def __init__(self, cfg: EncoderConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        self.FPN_module = FPN(cfg, rngs=rngs)
        groups = HEAD_GROUPS + ((FINE_HEADS, cfg.num_ws - FIXED_ROWS),)
        for (name, count), n_convs in zip(groups, cfg.head_convs):
            setattr(self, name, Indexed({i: ToStyleCode(n_convs, cfg.fpn_dim, cfg.head_dim, cfg.w_dim, rngs=rngs)
                                         for i in range(count)}))

    def __call__(self, x, mode: str):
        """x [N, H, W, C] -> (W+ [N, num_ws, w_dim], (p2, p3, p4))."""
        pyramid = self.FPN_module(x, mode)
        p2, p3, p4 = pyramid
        rows = [head(p4) for head in self.course_styles]
        rows += [head(p3) for head in self.medium_styles]
        rows += [head(p2) for head in self.fine_styles]
        return jnp.stack(rows, axis=1), pyramid


# ----------------------------------------------------------------------------------------------------------------
# The pure, functional API


def init_encoder(cfg: EncoderConfig, key) -> SplitModel:
    """A freshly initialised encoder with PyTorch's default initialisation (nothing pretrained, as EditGAN's)."""
    return split(FPNEncoder(cfg, rngs=nnx.Rngs(params=key)))


def abstract_model(cfg: EncoderConfig) -> SplitModel:
    return split(nnx.eval_shape(lambda: FPNEncoder(cfg, rngs=nnx.Rngs(0))))


def smallest_map(height: int, width: int) -> tuple[int, int]:
    """The size of c5, the smallest map the BatchNorm layers see: ceil(H / 32) x ceil(W / 32)."""
    return -(-height // 32), -(-width // 32)


def _check_images(E: SplitModel, images, batch_norm_mode: str):
    if batch_norm_mode not in BATCH_NORM_MODES:
        raise ValueError(f"batch_norm must be one of {BATCH_NORM_MODES}, got {batch_norm_mode!r}")
    images = jnp.asarray(images, jnp.float32)
    cfg = E.config
    if images.ndim != 4 or images.shape[-1] != cfg.in_channels:
        raise ValueError(f"the encoder takes NHWC images [N, H, W, {cfg.in_channels}], got shape {images.shape}")
    n, h, w, _ = images.shape
    if max(h, w) > cfg.max_size:
        raise ValueError(f"the encoder takes images of at most {cfg.max_size} x {cfg.max_size} pixels (its heads "
                         f"end above 1 x 1 beyond that, and the official network mixes positions into the batch), "
                         f"got {h} x {w}: resize them first")
    if batch_norm_mode == "batch" and n * np.prod(smallest_map(h, w)) < 2:
        raise ValueError(f"batch-statistics BatchNorm needs at least two values per channel in the {smallest_map(h, w)} "
                         f"map of a {h} x {w} image: encode a batch of several images or images above 32 px, or "
                         "use batch_norm='running'")
    return images


def encode(E: SplitModel, images, *, batch_norm: str = OFFICIAL_BATCH_NORM, return_pyramid: bool = False):
    """W+ [N, num_ws, w_dim] of images [N, H, W, C] in [-1, 1], H and W at most 512.

    batch_norm 'batch' (the official behaviour: the encoder is never in eval mode) normalises with the statistics of
    this whole batch, so every image's code depends on the others; see `encode_each`. 'running' uses the stored
    running statistics. With `return_pyramid`, also the FPN maps (p2, p3, p4), NHWC.
    """
    images = _check_images(E, images, batch_norm)
    ws, pyramid = E.module()(images, batch_norm)
    return (ws, pyramid) if return_pyramid else ws


def encode_each(E: SplitModel, images, *, batch_norm: str = OFFICIAL_BATCH_NORM):
    """W+ [N, num_ws, w_dim]: every image encoded as a batch of its own (the official embedding's call, batch 1),
    so that each result depends on its image alone.

    The images run one after the other through the one-image program (`lax.map`), not vectorised: with batch
    statistics over a few positions (2 x 2 at 64 px) the encoder amplifies float32 rounding several hundred times,
    and a vectorised convolution rounds differently at different batch positions, which would make a code depend
    on where its image sits in the batch (by ~1e-4 at 64 px). This way it is bit-identical whatever the batch.
    """
    images = jnp.asarray(images, jnp.float32)
    _check_images(E, images[:1], batch_norm)
    return jax.lax.map(lambda image: encode(E, image[None], batch_norm=batch_norm)[0], images)


def encode_train(E: SplitModel, images):
    """Train mode: (W+ [N, num_ws, w_dim], E with its BatchNorm running statistics updated as PyTorch does:
    momentum 0.1, unbiased batch variance). Differentiable in E.params and images."""
    images = _check_images(E, images, "batch")
    # Fresh buffer Variables, made at the current trace level: under jit + grad the given ones belong to an outer
    # trace, and NNX refuses to update a Variable of another trace level in place.
    buffers = jax.tree_util.tree_map(lambda x: x, E.buffers)
    module = SplitModel(E.graphdef, E.params, buffers).module()
    ws, _ = module(images, "update")
    return ws, split(module)
