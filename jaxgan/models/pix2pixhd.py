"""pix2pixHD (NVIDIA/pix2pixHD `models/networks.py`) as Flax NNX modules used functionally.

Follows NVIDIA/pix2pixHD@14b3b3c, `models/networks.py`: the `GlobalGenerator` with its `ResnetBlock`s, the
`LocalEnhancer` (global branch without its last three layers, on the input average-pooled once per enhancer,
its last feature map added to each local front end), the numerics of their PyTorch layers (jaxgan.ops.torch_layers),
the input encoding of `Pix2PixHDModel.encode_input` in `models/pix2pixHD_model.py` (one-hot label ids, the instance
edge map of `get_edges`, optional feature channels), the instance-wise feature `Encoder` and the
`MultiscaleDiscriminator` (pass i runs `scale{num_D-1-i}` on the input average-pooled i times).

Every `nn.Sequential` of the official code is a `Sequential` here whose members sit at their index as attribute
name ("0", "1", ...), weightless layers (padding, norm, activations) included, so the module paths are the PyTorch
state-dict names (`model.16.conv_block.5.weight`, `model1_2.3.bias`, `scale1_layer2.0.weight`, `layer0.11.bias`) and
the checkpoint key map is the identity. Weights keep the PyTorch layouts (Conv2d OIHW, ConvTranspose2d IOHW);
activations are NHWC, everything float32.

Only `norm='instance'` is implemented, the setting of every public checkpoint. `norm='batch'` is refused: the
official test.py never calls `.eval()`, so its BatchNorm layers normalise with the statistics of the current batch,
not the running ones a converter would load, and no released model or fixture pins down which one users expect.

The public API is pure functions of a `SplitModel` (`generate`, `discriminate`, `encode_features`) plus the input
encoding (`encode_input`, `get_edges`, `one_hot_labels`), usable under jax.jit / vmap / grad.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxgan import parallel
from jaxgan.nn.split import SplitModel, split
from jaxgan.nn.torch_init import torch_style_params
from jaxgan.ops.torch_layers import (avg_pool_3x3_s2, conv2d, conv_transpose2d, instance_norm, reflection_pad)

NETG = ("global", "local")
NORMS = ("instance",)
BATCH_NORM_REFUSAL = ("norm 'batch' is not supported: the official test.py runs BatchNorm in training mode (statistics "
                      "of the current batch, not the stored running ones) and no released pix2pixHD model uses it; "
                      "only norm 'instance' is implemented")
INIT_STD = 0.02  # official `weights_init`: conv weights ~ N(0, 0.02), biases keep torch's default uniform init


def _check_norm(norm: str):
    if norm == "batch":
        raise ValueError(BATCH_NORM_REFUSAL)
    if norm not in NORMS:
        raise ValueError(f"norm must be 'instance', got {norm!r}")


def _check_positive(cfg, *names, minimum: int = 1):
    for name in names:
        value = getattr(cfg, name)
        if not isinstance(value, int) or value < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


# ----------------------------------------------------------------------------------------------------------------
# Configs


@dataclasses.dataclass(frozen=True)
class Pix2PixHDGeneratorConfig:
    """`define_G` arguments (netG global|local) plus the input encoding the weights expect.

    Defaults are the official option defaults (base_options.py): the 512p recipe. The released label2city_1024p
    model is netG='local', ngf=32. n_local_enhancers and n_blocks_local apply to netG='local' only.
    label_nc (None: unknown), no_instance and feat_num describe the input: label_nc one-hot channels (label_nc 0:
    the label map is an image used as is, input_nc - edge - feat_num channels), then the instance edge map unless
    no_instance, then feat_num feature channels; input_nc must equal their sum.
    """

    input_nc: int = 36
    output_nc: int = 3
    netG: str = "global"  # noqa: N815 (the official option name)
    ngf: int = 64
    n_downsample_global: int = 4
    n_blocks_global: int = 9
    n_local_enhancers: int = 1
    n_blocks_local: int = 3
    norm: str = "instance"
    label_nc: int | None = 35
    no_instance: bool = False
    feat_num: int = 0

    def __post_init__(self):
        if self.netG not in NETG:
            raise ValueError(f"netG must be one of {NETG}, got {self.netG!r}")
        _check_norm(self.norm)
        _check_positive(self, "input_nc", "output_nc", "ngf", "n_downsample_global")
        _check_positive(self, "n_blocks_global", "n_blocks_local", "feat_num", minimum=0)
        if self.netG == "local":
            _check_positive(self, "n_local_enhancers")
        if self.label_nc is not None:
            if not isinstance(self.label_nc, int) or self.label_nc < 0:
                raise ValueError(f"label_nc must be an integer >= 0 (0: the label map is an image), got "
                                 f"{self.label_nc!r}")
            edge = 0 if self.no_instance else 1
            if self.label_nc > 0 and self.label_nc + edge + self.feat_num != self.input_nc:
                raise ValueError(
                    f"input_nc {self.input_nc} does not match the input encoding: label_nc {self.label_nc} + "
                    f"{edge} instance-edge channel{'' if edge == 1 else 's'} + feat_num {self.feat_num} = "
                    f"{self.label_nc + edge + self.feat_num}")
            if self.label_nc == 0 and self.input_nc - edge - self.feat_num < 1:
                raise ValueError(f"input_nc {self.input_nc} leaves no image channels for label_nc 0 "
                                 f"({edge} edge + {self.feat_num} feature channels)")

    @property
    def num_local_enhancers(self) -> int:
        return self.n_local_enhancers if self.netG == "local" else 0

    @property
    def global_ngf(self) -> int:
        """Width of the global branch: ngf * 2**n_local_enhancers (networks.py:136-138)."""
        return self.ngf * 2 ** self.num_local_enhancers

    @property
    def size_multiple(self) -> int:
        """Input height and width must be multiples of this (the official loader's __make_power_2 base)."""
        return 2 ** (self.n_downsample_global + self.num_local_enhancers)

    @property
    def label_channels(self) -> int:
        """Channels of the label part of the input (one-hot, or the label image for label_nc 0)."""
        return self.input_nc - (0 if self.no_instance else 1) - self.feat_num


@dataclasses.dataclass(frozen=True)
class Pix2PixHDDiscriminatorConfig:
    """`define_D` arguments. input_nc = label channels (+1 edge) + output_nc (39 for Cityscapes). num_D 2 is the
    training default (the class default is 3). use_sigmoid (--no_lsgan) is applied only without get_interm_feat:
    the official MultiscaleDiscriminator copies n_layers + 2 groups per scale, leaving the Sigmoid group out."""

    input_nc: int = 39
    ndf: int = 64
    n_layers: int = 3
    num_D: int = 2  # noqa: N815 (the official option name)
    norm: str = "instance"
    use_sigmoid: bool = False
    get_interm_feat: bool = True

    def __post_init__(self):
        _check_norm(self.norm)
        _check_positive(self, "input_nc", "ndf", "n_layers", "num_D")

    @property
    def channels(self) -> tuple[int, ...]:
        """Output channels of the n_layers + 2 groups: ndf, doubling, capped at 512, then 1."""
        nf = [self.ndf]
        for _ in range(self.n_layers):
            nf.append(min(nf[-1] * 2, 512))
        return tuple(nf) + (1,)


@dataclasses.dataclass(frozen=True)
class Pix2PixHDEncoderConfig:
    """`define_G(..., 'encoder')` = `Encoder(output_nc, feat_num, nef, n_downsample_E)`: image in, feat_num out."""

    input_nc: int = 3
    output_nc: int = 3
    ngf: int = 16
    n_downsampling: int = 4
    norm: str = "instance"

    def __post_init__(self):
        _check_norm(self.norm)
        _check_positive(self, "input_nc", "output_nc", "ngf", "n_downsampling")

    @property
    def size_multiple(self) -> int:
        return 2 ** self.n_downsampling


# ----------------------------------------------------------------------------------------------------------------
# Layers: the members of an nn.Sequential, weightless ones included so that indices match PyTorch's


class Conv2d(nnx.Module):
    """`nn.Conv2d(in, out, k, stride, padding)` with bias; weight [O, I, k, k]."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1, padding: int = 0,
                 rngs: nnx.Rngs):
        self.stride, self.padding = stride, padding
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        bound = 1 / np.sqrt(in_channels * kernel_size ** 2)
        self.weight = nnx.Param(INIT_STD * jax.random.normal(rngs.params(), shape, jnp.float32))
        self.bias = nnx.Param(jax.random.uniform(rngs.params(), (out_channels,), jnp.float32, -bound, bound))

    def __call__(self, x):
        return conv2d(x, self.weight[...], self.bias[...], stride=self.stride, padding=self.padding)


class ConvTranspose2d(nnx.Module):
    """`nn.ConvTranspose2d(in, out, 3, stride=2, padding=1, output_padding=1)`; weight [I, O, 3, 3]: doubles H, W."""

    def __init__(self, in_channels: int, out_channels: int, *, rngs: nnx.Rngs):
        shape = (in_channels, out_channels, 3, 3)
        bound = 1 / np.sqrt(out_channels * 9)  # torch takes ConvTranspose2d's fan-in from weight dim 1
        self.weight = nnx.Param(INIT_STD * jax.random.normal(rngs.params(), shape, jnp.float32))
        self.bias = nnx.Param(jax.random.uniform(rngs.params(), (out_channels,), jnp.float32, -bound, bound))

    def __call__(self, x):
        return conv_transpose2d(x, self.weight[...], self.bias[...], stride=2, padding=1, output_padding=1)


class ReflectionPad2d(nnx.Module):
    def __init__(self, pad: int):
        self.pad = pad

    def __call__(self, x):
        return reflection_pad(x, self.pad)


class InstanceNorm2d(nnx.Module):
    """`nn.InstanceNorm2d(C, affine=False)`: no parameters (old checkpoints' running-stat keys are never used)."""

    def __call__(self, x):
        return instance_norm(x)


class ReLU(nnx.Module):
    def __call__(self, x):
        return jax.nn.relu(x)


class LeakyReLU(nnx.Module):
    def __call__(self, x):
        return jax.nn.leaky_relu(x, 0.2)


class Tanh(nnx.Module):
    def __call__(self, x):
        return jnp.tanh(x)


class Sigmoid(nnx.Module):
    def __call__(self, x):
        return jax.nn.sigmoid(x)


class Sequential(nnx.Module):
    """`nn.Sequential`: layer i is the attribute str(i), applied in index order."""

    def __init__(self, *layers: nnx.Module):
        self.length = len(layers)
        for i, layer in enumerate(layers):
            setattr(self, str(i), layer)

    def __call__(self, x):
        for i in range(self.length):
            x = getattr(self, str(i))(x)
        return x


class ResnetBlock(nnx.Module):
    """x + [pad 1, conv 3x3, norm, ReLU, pad 1, conv 3x3, norm](x); keys conv_block.1.* and conv_block.5.*."""

    def __init__(self, dim: int, *, rngs: nnx.Rngs):
        self.conv_block = Sequential(ReflectionPad2d(1), Conv2d(dim, dim, 3, rngs=rngs), InstanceNorm2d(), ReLU(),
                                     ReflectionPad2d(1), Conv2d(dim, dim, 3, rngs=rngs), InstanceNorm2d())

    def __call__(self, x):
        return x + self.conv_block(x)


def _down(in_channels: int, out_channels: int, rngs) -> list:
    return [Conv2d(in_channels, out_channels, 3, stride=2, padding=1, rngs=rngs), InstanceNorm2d(), ReLU()]


def _up(in_channels: int, out_channels: int, rngs) -> list:
    return [ConvTranspose2d(in_channels, out_channels, rngs=rngs), InstanceNorm2d(), ReLU()]


def _front(in_channels: int, out_channels: int, rngs) -> list:
    return [ReflectionPad2d(3), Conv2d(in_channels, out_channels, 7, rngs=rngs), InstanceNorm2d(), ReLU()]


def _head(in_channels: int, out_channels: int, rngs) -> list:
    return [ReflectionPad2d(3), Conv2d(in_channels, out_channels, 7, rngs=rngs), Tanh()]


def encoder_decoder_layers(input_nc: int, output_nc: int, ngf: int, n_down: int, n_blocks: int, rngs, *,
                           head: bool = True) -> list:
    """The GlobalGenerator's Sequential (networks.py:183-211; the Encoder's with n_blocks 0): front 7x7 conv,
    n_down stride-2 convs doubling the width, n_blocks ResnetBlocks, n_down transposed convs halving it, and with
    `head` the final [pad 3, 7x7 conv to output_nc, tanh] (the LocalEnhancer's global branch has none)."""
    layers = _front(input_nc, ngf, rngs)
    for i in range(n_down):
        layers += _down(ngf * 2 ** i, ngf * 2 ** (i + 1), rngs)
    layers += [ResnetBlock(ngf * 2 ** n_down, rngs=rngs) for _ in range(n_blocks)]
    for i in range(n_down):
        mult = 2 ** (n_down - i)
        layers += _up(ngf * mult, ngf * mult // 2, rngs)
    if head:
        layers += _head(ngf, output_nc, rngs)
    return layers


# ----------------------------------------------------------------------------------------------------------------
# Networks


class Generator(nnx.Module):
    """GlobalGenerator (netG 'global': `model`) or LocalEnhancer (netG 'local': `model` is the global branch without
    its head, `model{n}_1` the local front ends, `model{n}_2` the local residual blocks and upsampling, the last one
    with the output head)."""

    def __init__(self, cfg: Pix2PixHDGeneratorConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        n_le = cfg.num_local_enhancers
        self.model = Sequential(*encoder_decoder_layers(cfg.input_nc, cfg.output_nc, cfg.global_ngf,
                                                        cfg.n_downsample_global, cfg.n_blocks_global, rngs,
                                                        head=n_le == 0))
        for n in range(1, n_le + 1):
            width = cfg.ngf * 2 ** (n_le - n)
            setattr(self, f"model{n}_1", Sequential(*_front(cfg.input_nc, width, rngs), *_down(width, 2 * width, rngs)))
            upsample = [ResnetBlock(2 * width, rngs=rngs) for _ in range(cfg.n_blocks_local)]
            upsample += _up(2 * width, width, rngs)
            if n == n_le:
                upsample += _head(cfg.ngf, cfg.output_nc, rngs)
            setattr(self, f"model{n}_2", Sequential(*upsample))

    def __call__(self, x):
        n_le = self.cfg.num_local_enhancers
        pyramid = [x]  # the full input, then average-pooled once per local enhancer (networks.py:165-171)
        for _ in range(n_le):
            pyramid.append(avg_pool_3x3_s2(pyramid[-1]))
        out = self.model(pyramid[-1])
        for n in range(1, n_le + 1):
            local = getattr(self, f"model{n}_1")(pyramid[n_le - n])
            out = getattr(self, f"model{n}_2")(local + out)  # networks.py:180: the two branches are summed
        return out


class MultiscaleDiscriminator(nnx.Module):
    """num_D PatchGAN discriminators (NLayerDiscriminator: 4x4 convs, padding 2, LeakyReLU 0.2) on an image pyramid.

    Groups: [conv s2, lrelu], (n_layers - 1) x [conv s2, norm, lrelu], [conv s1, norm, lrelu], [conv s1 -> 1].
    get_interm_feat: group j of scale i is `scale{i}_layer{j}`; otherwise scale i is one flat Sequential `layer{i}`.
    """

    def __init__(self, cfg: Pix2PixHDDiscriminatorConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        for i in range(cfg.num_D):
            groups = self._groups(cfg, rngs)
            if cfg.get_interm_feat:
                for j, group in enumerate(groups):
                    setattr(self, f"scale{i}_layer{j}", Sequential(*group))
            else:
                flat = [layer for group in groups for layer in group]
                if cfg.use_sigmoid:
                    flat.append(Sigmoid())
                setattr(self, f"layer{i}", Sequential(*flat))

    @staticmethod
    def _groups(cfg: Pix2PixHDDiscriminatorConfig, rngs) -> list[list]:
        nf = cfg.channels
        groups = [[Conv2d(cfg.input_nc, nf[0], 4, stride=2, padding=2, rngs=rngs), LeakyReLU()]]
        for n in range(1, cfg.n_layers + 1):
            stride = 2 if n < cfg.n_layers else 1
            groups.append([Conv2d(nf[n - 1], nf[n], 4, stride=stride, padding=2, rngs=rngs), InstanceNorm2d(),
                           LeakyReLU()])
        groups.append([Conv2d(nf[-2], 1, 4, stride=1, padding=2, rngs=rngs)])
        return groups

    def __call__(self, x) -> list[list]:
        cfg = self.cfg
        result = []
        for i in range(cfg.num_D):
            scale = cfg.num_D - 1 - i  # pass 0 (full resolution) runs the last-built discriminator
            if cfg.get_interm_feat:
                features, h = [], x
                for j in range(cfg.n_layers + 2):
                    h = getattr(self, f"scale{scale}_layer{j}")(h)
                    features.append(h)
                result.append(features)
            else:
                result.append([getattr(self, f"layer{scale}")(x)])
            if i != cfg.num_D - 1:
                x = avg_pool_3x3_s2(x)
        return result


def instance_mean(features, inst):
    """Replace each channel of features [N, H, W, C] by its mean over the pixels of the same instance id in
    inst [N, H, W] (per sample), networks.py:280-290; ids are mapped to contiguous segments by a sort."""
    n, h, w, c = features.shape

    def one(f, ids):
        _, segment = jnp.unique(ids, size=h * w, return_inverse=True)
        segment = segment.reshape(-1)
        sums = jax.ops.segment_sum(f, segment, num_segments=h * w)
        counts = jax.ops.segment_sum(jnp.ones((h * w,), f.dtype), segment, num_segments=h * w)
        return (sums / jnp.maximum(counts, 1)[:, None])[segment]

    return jax.vmap(one)(features.reshape(n, h * w, c), inst.reshape(n, h * w)).reshape(n, h, w, c)


class Encoder(nnx.Module):
    """The instance-wise feature encoder: an encoder-decoder (keys model.1, model.4..., model.{last}) whose output
    is averaged within each instance."""

    def __init__(self, cfg: Pix2PixHDEncoderConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        self.model = Sequential(*encoder_decoder_layers(cfg.input_nc, cfg.output_nc, cfg.ngf, cfg.n_downsampling, 0,
                                                        rngs))

    def __call__(self, image, inst):
        return instance_mean(self.model(image), inst)


_MODULES = {Pix2PixHDGeneratorConfig: Generator, Pix2PixHDDiscriminatorConfig: MultiscaleDiscriminator,
            Pix2PixHDEncoderConfig: Encoder}
CONFIGS = tuple(_MODULES)


# ----------------------------------------------------------------------------------------------------------------
# Input encoding (`Pix2PixHDModel.encode_input` and `get_edges`, models/pix2pixHD_model.py)


def one_hot_labels(label_ids, label_nc: int):
    """label ids [N, H, W] (ints in [0, label_nc)) -> [N, H, W, label_nc] float32 (the official scatter_).

    Ids outside the range give all-zero pixels here (the official scatter_ fails on them); `encode_input` refuses
    them when the ids are concrete arrays."""
    return jax.nn.one_hot(jnp.asarray(label_ids), label_nc, dtype=jnp.float32)


def get_edges(inst):
    """Instance boundary map of inst [N, H, W] (ids): 1 at both pixels of every horizontally or vertically adjacent
    pair with different ids (2 px thick boundaries), else 0; float32 [N, H, W]."""
    inst = jnp.asarray(inst)
    dx = inst[:, :, 1:] != inst[:, :, :-1]
    dy = inst[:, 1:, :] != inst[:, :-1, :]
    # each differing pair marks its right (lower) pixel and its left (upper) pixel
    edges = (jnp.pad(dx, ((0, 0), (0, 0), (1, 0))) | jnp.pad(dx, ((0, 0), (0, 0), (0, 1)))
             | jnp.pad(dy, ((0, 0), (1, 0), (0, 0))) | jnp.pad(dy, ((0, 0), (0, 1), (0, 0))))
    return edges.astype(jnp.float32)


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def encode_input(label_ids, inst_ids=None, label_nc: int = 35, no_instance: bool = False, feat=None):
    """The generator input: [one-hot labels (label_nc channels), instance edges (1, unless no_instance),
    feat (its channels)] concatenated on the last axis, [N, H, W, C] float32 (pix2pixHD_model.encode_input).

    label_ids [N, H, W] integer ids; with label_nc 0 the label map is an image [N, H, W, C] used as is.
    inst_ids [N, H, W] instance ids (only their equality with neighbours matters); required unless no_instance.
    feat [N, H, W, feat_num] or None. Concrete label ids outside [0, label_nc) raise ValueError.
    """
    if label_nc < 0:
        raise ValueError(f"label_nc must be >= 0, got {label_nc}")
    if label_nc == 0:
        label = jnp.asarray(label_ids, jnp.float32)
        if label.ndim != 4:
            raise ValueError(f"with label_nc 0 the label map is an image [N, H, W, C], got shape {label.shape}")
    else:
        if np.ndim(label_ids) != 3:
            raise ValueError(f"label ids must be [N, H, W], got shape {np.shape(label_ids)}")
        if _is_concrete(label_ids):
            ids = np.asarray(label_ids)
            if ids.size and (ids.min() < 0 or ids.max() >= label_nc):
                bad = int(ids.max()) if ids.max() >= label_nc else int(ids.min())
                raise ValueError(f"label id {bad} is outside [0, {label_nc}) (label_nc {label_nc})")
        label = one_hot_labels(label_ids, label_nc)
    parts = [label]
    if not no_instance:
        if inst_ids is None:
            raise ValueError("instance ids are needed for the edge channel (or pass no_instance=True)")
        if np.shape(inst_ids) != label.shape[:3]:
            raise ValueError(f"instance ids have shape {np.shape(inst_ids)}, the label map {label.shape[:3]}")
        parts.append(get_edges(inst_ids)[..., None])
    if feat is not None:
        feat = jnp.asarray(feat, jnp.float32)
        if feat.ndim != 4 or feat.shape[:3] != label.shape[:3]:
            raise ValueError(f"feat must be [N, H, W, feat_num] matching the label map, got shape {feat.shape}")
        parts.append(feat)
    return jnp.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]


# ----------------------------------------------------------------------------------------------------------------
# The pure, functional API


def _module_class(cfg):
    cls = _MODULES.get(type(cfg))
    if cls is None:
        raise TypeError(f"not a pix2pixHD config: {type(cfg).__name__}")
    return cls


def _init(cfg, key) -> SplitModel:
    abstract = abstract_model(cfg)
    return dataclasses.replace(abstract, params=torch_style_params(abstract.params, key, weight_std=INIT_STD))


def init_generator(cfg: Pix2PixHDGeneratorConfig, key) -> SplitModel:
    """A randomly initialised generator: the official weights_init (conv weights ~ N(0, 0.02)), torch's default
    bias init. Drawn in one compiled call (jaxgan.nn.torch_init), not layer by layer."""
    return _init(cfg, key)


def init_discriminator(cfg: Pix2PixHDDiscriminatorConfig, key) -> SplitModel:
    return _init(cfg, key)


def init_encoder(cfg: Pix2PixHDEncoderConfig, key) -> SplitModel:
    return _init(cfg, key)


def abstract_model(cfg) -> SplitModel:
    """Shapes and dtypes only (no random init), the target for converters and checkpoint restores."""
    cls = _module_class(cfg)
    return split(nnx.eval_shape(lambda: cls(cfg, rngs=nnx.Rngs(0))))


def _check_size(shape, multiple: int, what: str):
    h, w = shape
    if h % multiple or w % multiple:
        raise ValueError(f"{what} needs height and width that are multiples of {multiple}, got {h}x{w} "
                         f"(the official loader resizes to such a size first)")


def generate(G: SplitModel, encoded):
    """encoded input [N, H, W, input_nc] (`encode_input`) -> images [N, H, W, output_nc] in [-1, 1] (tanh).

    H and W must be multiples of 2**(n_downsample_global + n_local_enhancers)."""
    cfg = G.config
    encoded = jnp.asarray(encoded, jnp.float32)
    if encoded.ndim != 4 or encoded.shape[-1] != cfg.input_nc:
        raise ValueError(f"the generator takes [N, H, W, {cfg.input_nc}] inputs, got shape {encoded.shape}")
    _check_size(encoded.shape[1:3], cfg.size_multiple, "the generator")
    return G.module()(encoded)


def discriminate(D: SplitModel, x) -> list[list]:
    """x [N, H, W, input_nc] (cat(encoded input, image)) -> per pass i (input average-pooled i times), the NHWC
    outputs of every layer group (get_interm_feat) or just the final [N, h, w, 1] prediction."""
    cfg = D.config
    x = jnp.asarray(x, jnp.float32)
    if x.ndim != 4 or x.shape[-1] != cfg.input_nc:
        raise ValueError(f"the discriminator takes [N, H, W, {cfg.input_nc}] inputs, got shape {x.shape}")
    return D.module()(x)


def encode_features(E: SplitModel, image, inst):
    """image [N, H, W, input_nc] in [-1, 1], inst [N, H, W] ids -> [N, H, W, output_nc] instance-wise mean features."""
    cfg = E.config
    image = jnp.asarray(image, jnp.float32)
    if image.ndim != 4 or image.shape[-1] != cfg.input_nc:
        raise ValueError(f"the encoder takes [N, H, W, {cfg.input_nc}] images, got shape {image.shape}")
    if np.shape(inst) != image.shape[:3]:
        raise ValueError(f"instance ids have shape {np.shape(inst)}, the image {image.shape[:3]}")
    _check_size(image.shape[1:3], cfg.size_multiple, "the encoder")
    return E.module()(image, jnp.asarray(inst))


def with_encoding(cfg: Pix2PixHDGeneratorConfig, label_nc: int | None = None,
                  no_instance: bool = False) -> Pix2PixHDGeneratorConfig:
    """The generator config with the input encoding given (or the stored one), checked against its input_nc and
    against what `synthesize` builds (labels and instance edges, no feature channels)."""
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


@functools.cache
def _synthesis_program(mesh, label_nc: int, no_instance: bool):
    """encode_input + generate, sharded over `mesh`; built once per mesh and encoding."""
    def per_device(G, batch):
        return generate(G, encode_input(batch["label"], batch.get("inst"), label_nc, no_instance))
    return parallel.shard_problems(per_device, mesh)


def synthesize(G: SplitModel, labels, insts=None, *, label_nc: int, no_instance: bool, batch_size: int = 1,
               mesh=None, on_chunk=None, count: int | None = None) -> np.ndarray:
    """Images [N, H, W, 3] (float32, tanh range) from N label maps of one size, as the official test.py builds the
    input (`encode_input`): labels [N, H, W] ids (or [N, H, W, 3] pictures for label_nc 0), insts [N, H, W]
    instance ids unless no_instance. `batch_size` maps per device per call over `mesh` (default: as many devices
    as maps); `on_chunk(n)` after each call. count: in a job of several processes, the job's map count when the
    maps given are this process's (`parallel.owned_problems(count, batch_size, mesh)`), whose images it gets."""
    batch = {"label": np.asarray(labels)}
    if insts is not None:
        batch["inst"] = np.asarray(insts)
    mesh = parallel.mesh_for(len(batch["label"]) if count is None else count) if mesh is None else mesh
    return parallel.map_chunks(_synthesis_program(mesh, label_nc, no_instance), G, batch, batch_size=batch_size,
                               mesh=mesh, on_chunk=on_chunk, count=count)
