"""StyleGAN2 generator and discriminator as Flax NNX modules used functionally.

Follows stylegan2-ada-pytorch `training/networks.py` (NVlabs/stylegan2-ada-pytorch@d72cc7d): `MappingNetwork`
(mapping, truncation), `SynthesisNetwork` and `SynthesisBlock` (synthesis blocks, w indexing, noise, skip / orig /
resnet architectures) and `Discriminator`, `DiscriminatorBlock`, `MinibatchStdLayer` and `DiscriminatorEpilogue`
(discriminator, minibatch std, conditioning). Module and attribute names are the PyTorch state-dict names
(`mapping.fc0.weight`, `synthesis.b8.conv0.affine.bias`, `b4.fc.weight`), and weights keep the PyTorch layout,
so the stylegan2-ada key map is the identity. Activations are NHWC; everything runs in float32 (the official
fp16 blocks are matched through `force_fp32=True` of `SynthesisBlock.forward`).

Models take a frozen config and nothing else. `split()` turns a module into a `SplitModel` pytree of
(graphdef, params, buffers) once; the public compute API (`mapping`, `synthesis`, `generate`, `discriminate`)
is pure functions of it, to be transformed with `jax.jit`, `jax.vmap`, `jax.grad` and `jax.shard_map`.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxgan.nn import Buffer, Conv2dLayer, FullyConnected, SynthesisLayer, ToRGBLayer
from jaxgan.nn.split import SplitModel, split
from jaxgan.ops.bias_act import activation_spec
from jaxgan.ops.upfirdn2d import downsample2d, setup_filter, upsample2d

ARCHITECTURES = ("orig", "skip", "resnet")
# return_features of `synthesis`: none, each block's output (DragGAN), or every layer's output (EditGAN / DatasetGAN)
FEATURE_KINDS = (False, True, "blocks", "layers")


def normalize_2nd_moment(x, axis: int = 1, eps: float = 1e-8):
    return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=axis, keepdims=True) + eps)


def torch_lerp(start, end, weight):
    """`torch.lerp`: exact at weight 1 (and 0), which keeps psi=1 bit-identical to no truncation."""
    diff = end - start
    return jnp.where(weight < 0.5, start + weight * diff, end - diff * (1 - weight))


def resolutions_up_to(img_resolution: int) -> tuple[int, ...]:
    """4, 8, ..., img_resolution: the synthesis blocks, and the discriminator's blocks plus its 4x4 epilogue."""
    return tuple(2 ** i for i in range(2, _log2_resolution(img_resolution) + 1))


def channels_by_resolution(img_resolution: int, channel_base: int, channel_max: int) -> tuple[int, ...]:
    """Official channel rule `min(channel_base // res, channel_max)` for res = 4, 8, ..., img_resolution."""
    return tuple(min(channel_base // res, channel_max) for res in resolutions_up_to(img_resolution))


def _log2_resolution(resolution: int) -> int:
    log2 = int(np.log2(resolution)) if resolution > 0 else 0
    if resolution < 4 or 2 ** log2 != resolution:
        raise ValueError(f"resolution must be a power of two >= 4, got {resolution}")
    return log2


# ----------------------------------------------------------------------------------------------------------------
# Configs


@dataclasses.dataclass(frozen=True)
class MappingConfig:
    z_dim: int
    c_dim: int
    w_dim: int
    num_ws: int | None  # None: return [N, w_dim] without broadcasting (the discriminator's label mapping)
    num_layers: int = 8
    embed_features: int | None = None  # default w_dim (0 when c_dim == 0)
    layer_features: int | None = None  # default w_dim
    activation: str = "lrelu"
    lr_multiplier: float = 0.01
    w_avg_beta: float | None = 0.995  # None: no `w_avg` buffer, so no truncation


@dataclasses.dataclass(frozen=True)
class GeneratorConfig:
    z_dim: int
    c_dim: int
    w_dim: int
    img_resolution: int
    img_channels: int
    channels: tuple[int, ...]  # per synthesis block, resolutions 4, 8, ..., img_resolution
    mapping_layers: int = 8
    mapping_lr_multiplier: float = 0.01
    embed_features: int | None = None
    layer_features: int | None = None
    w_avg_beta: float | None = 0.995
    architecture: str = "skip"
    conv_clamp: float | None = None
    resample_filter: tuple[float, ...] = (1, 3, 3, 1)
    use_noise: bool = True
    activation: str = "lrelu"

    def __post_init__(self):
        _log2_resolution(self.img_resolution)
        if len(self.channels) != len(self.block_resolutions):
            raise ValueError(f"channels needs one entry per block resolution {self.block_resolutions}, "
                             f"got {self.channels}")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}")
        activation_spec(self.activation)

    @property
    def block_resolutions(self) -> tuple[int, ...]:
        return resolutions_up_to(self.img_resolution)

    @property
    def num_ws(self) -> int:
        return 2 * len(self.block_resolutions)

    def channels_at(self, res: int) -> int:
        return self.channels[self.block_resolutions.index(res)]

    @property
    def feature_shapes(self) -> tuple[tuple[int, int], ...]:
        """(size, channels) of each map `synthesis(..., return_features=True)` returns: every block's output."""
        return tuple((res, self.channels_at(res)) for res in self.block_resolutions)

    @property
    def mapping(self) -> MappingConfig:
        return MappingConfig(z_dim=self.z_dim, c_dim=self.c_dim, w_dim=self.w_dim, num_ws=self.num_ws,
                             num_layers=self.mapping_layers, embed_features=self.embed_features,
                             layer_features=self.layer_features, lr_multiplier=self.mapping_lr_multiplier,
                             w_avg_beta=self.w_avg_beta)


@dataclasses.dataclass(frozen=True)
class DiscriminatorConfig:
    c_dim: int
    img_resolution: int
    img_channels: int
    channels: tuple[int, ...]  # per resolution 4, 8, ..., img_resolution (same indexing as the generator)
    architecture: str = "resnet"
    conv_clamp: float | None = None
    cmap_dim: int | None = None  # default: channels at 4x4
    mbstd_group_size: int | None = 4  # None: the whole minibatch
    mbstd_num_channels: int = 1
    mapping_layers: int = 8
    mapping_lr_multiplier: float = 0.01
    mapping_embed_features: int | None = None
    mapping_layer_features: int | None = None
    resample_filter: tuple[float, ...] = (1, 3, 3, 1)
    activation: str = "lrelu"

    def __post_init__(self):
        if len(self.channels) != len(resolutions_up_to(self.img_resolution)):
            raise ValueError(f"channels needs one entry per resolution 4..{self.img_resolution}, got {self.channels}")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}")
        activation_spec(self.activation)

    @property
    def block_resolutions(self) -> tuple[int, ...]:
        """Blocks from the image resolution down to 8 (the 4x4 epilogue is `b4`)."""
        return tuple(2 ** i for i in range(_log2_resolution(self.img_resolution), 2, -1))

    def channels_at(self, res: int) -> int:
        return self.channels[_log2_resolution(res) - 2]

    @property
    def effective_cmap_dim(self) -> int:
        if self.c_dim == 0:
            return 0
        return self.channels_at(4) if self.cmap_dim is None else self.cmap_dim

    @property
    def mapping(self) -> MappingConfig:
        return MappingConfig(z_dim=0, c_dim=self.c_dim, w_dim=self.effective_cmap_dim, num_ws=None,
                             num_layers=self.mapping_layers, embed_features=self.mapping_embed_features,
                             layer_features=self.mapping_layer_features, lr_multiplier=self.mapping_lr_multiplier,
                             w_avg_beta=None)


# ----------------------------------------------------------------------------------------------------------------
# Mapping network


class MappingNetwork(nnx.Module):
    def __init__(self, cfg: MappingConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        embed_features = (cfg.w_dim if cfg.embed_features is None else cfg.embed_features) if cfg.c_dim else 0
        layer_features = cfg.w_dim if cfg.layer_features is None else cfg.layer_features
        features = [cfg.z_dim + embed_features] + [layer_features] * (cfg.num_layers - 1) + [cfg.w_dim]
        if cfg.c_dim > 0:
            self.embed = FullyConnected(cfg.c_dim, embed_features, rngs=rngs)  # lr multiplier 1, as official
        for idx in range(cfg.num_layers):
            setattr(self, f"fc{idx}", FullyConnected(features[idx], features[idx + 1], activation=cfg.activation,
                                                     lr_multiplier=cfg.lr_multiplier, rngs=rngs))
        if cfg.num_ws is not None and cfg.w_avg_beta is not None:
            self.w_avg = Buffer(jnp.zeros((cfg.w_dim,), jnp.float32))

    def __call__(self, z, c=None, truncation_psi=1.0, truncation_cutoff: int | None = None):
        """z: [N, z_dim], c: [N, c_dim] -> ws [N, num_ws, w_dim] (or [N, w_dim] when num_ws is None)."""
        cfg = self.cfg
        x = None
        if cfg.z_dim > 0:
            x = normalize_2nd_moment(jnp.asarray(z, jnp.float32))
        if cfg.c_dim > 0:
            if c is None:
                raise ValueError(f"this network is conditional: pass c of shape [N, {cfg.c_dim}]")
            y = normalize_2nd_moment(self.embed(jnp.asarray(c, jnp.float32)))
            x = y if x is None else jnp.concatenate([x, y], axis=1)
        for idx in range(cfg.num_layers):
            x = getattr(self, f"fc{idx}")(x)
        if cfg.num_ws is not None:
            x = jnp.broadcast_to(x[:, None, :], (x.shape[0], cfg.num_ws, x.shape[1]))
        if not (isinstance(truncation_psi, (int, float)) and truncation_psi == 1):
            if not hasattr(self, "w_avg"):
                raise ValueError("truncation needs w_avg, which this mapping network does not have")
            w_avg = self.w_avg[...]
            if cfg.num_ws is None or truncation_cutoff is None:
                x = torch_lerp(w_avg, x, truncation_psi)
            else:
                head = torch_lerp(w_avg, x[:, :truncation_cutoff], truncation_psi)
                x = jnp.concatenate([head, x[:, truncation_cutoff:]], axis=1)
        return x


# ----------------------------------------------------------------------------------------------------------------
# Synthesis network


class SynthesisBlock(nnx.Module):
    def __init__(self, cfg: GeneratorConfig, resolution: int, *, rngs: nnx.Rngs):
        self.resolution = resolution
        self.architecture = cfg.architecture
        self.resample_filter = tuple(cfg.resample_filter)
        self.is_first = resolution == 4
        self.is_last = resolution == cfg.img_resolution
        out_channels = cfg.channels_at(resolution)
        layer_kwargs = dict(use_noise=cfg.use_noise, activation=cfg.activation, resample_filter=cfg.resample_filter,
                            conv_clamp=cfg.conv_clamp, rngs=rngs)
        if self.is_first:
            self.const = nnx.Param(jax.random.normal(rngs.params(), (out_channels, 4, 4)))  # PyTorch [C, H, W]
        else:
            in_channels = cfg.channels_at(resolution // 2)
            self.conv0 = SynthesisLayer(in_channels, out_channels, cfg.w_dim, resolution, up=2, **layer_kwargs)
        self.conv1 = SynthesisLayer(out_channels, out_channels, cfg.w_dim, resolution, **layer_kwargs)
        self.num_conv = 1 if self.is_first else 2
        self.num_torgb = 1 if (self.is_last or cfg.architecture == "skip") else 0
        if self.num_torgb:
            self.torgb = ToRGBLayer(out_channels, cfg.img_channels, cfg.w_dim, conv_clamp=cfg.conv_clamp, rngs=rngs)
        if not self.is_first and cfg.architecture == "resnet":
            self.skip = Conv2dLayer(in_channels, out_channels, 1, bias=False, up=2,
                                    resample_filter=cfg.resample_filter, rngs=rngs)

    def __call__(self, x, img, ws, *, noise_mode="const", noise_key=None, fused=False):
        """ws: [N, num_conv + num_torgb, w_dim]; returns (x [N, res, res, C], img [N, res, res, img_channels],
        layer outputs): the layer outputs are (const, conv1) in the 4x4 block and (conv0, conv1) elsewhere, each
        after noise and activation (for resnet blocks before the skip is added)."""
        keys = [None, None] if noise_key is None else list(jax.random.split(noise_key))
        layer = dict(noise_mode=noise_mode, fused=fused)
        if self.is_first:
            const = jnp.transpose(self.const[...], (1, 2, 0))[None]
            x0 = jnp.broadcast_to(const, (ws.shape[0], *const.shape[1:]))
            x = self.conv1(x0, ws[:, 0], noise_key=keys[1], **layer)
            layer_outputs = (x0, x)
        elif self.architecture == "resnet":
            y = self.skip(x, gain=np.sqrt(0.5))
            x0 = self.conv0(x, ws[:, 0], noise_key=keys[0], **layer)
            x1 = self.conv1(x0, ws[:, 1], noise_key=keys[1], gain=np.sqrt(0.5), **layer)
            x = y + x1
            layer_outputs = (x0, x1)
        else:
            x0 = self.conv0(x, ws[:, 0], noise_key=keys[0], **layer)
            x = self.conv1(x0, ws[:, 1], noise_key=keys[1], **layer)
            layer_outputs = (x0, x)
        if img is not None:
            img = upsample2d(img, setup_filter(self.resample_filter))
        if self.num_torgb:
            y = self.torgb(x, ws[:, self.num_conv], fused=fused)
            img = y if img is None else img + y
        return x, img, layer_outputs


class SynthesisNetwork(nnx.Module):
    def __init__(self, cfg: GeneratorConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        for res in cfg.block_resolutions:
            setattr(self, f"b{res}", SynthesisBlock(cfg, res, rngs=rngs))

    def __call__(self, ws, *, noise_mode="const", noise_key=None, fused=False, return_features=False):
        """ws: [N, num_ws, w_dim] -> img [N, R, R, img_channels], and with return_features also the features:
        each block's output x (return_features=True or "blocks") or every layer's output ("layers")."""
        if return_features not in FEATURE_KINDS:
            raise ValueError(f"return_features must be one of {FEATURE_KINDS}, got {return_features!r}")
        ws = self._checked(ws)
        _, img, features = self.run_blocks(ws, None, None, 0, len(self.cfg.block_resolutions), noise_mode=noise_mode,
                                           noise_key=noise_key, fused=fused, return_features=return_features)
        return (img, tuple(features)) if return_features else img

    def until_block(self, ws, index: int, *, noise_mode="const", noise_key=None, fused=False):
        """Blocks 0 .. index: (block `index`'s output x, the carry (x, img) that `from_block` continues from)."""
        ws = self._checked(ws)
        x, img, _ = self.run_blocks(ws, None, None, 0, index + 1, noise_mode=noise_mode, noise_key=noise_key,
                                    fused=fused)
        return x, (x, img)

    def from_block(self, ws, index: int, carry, *, noise_mode="const", noise_key=None, fused=False):
        """The blocks after `index`, from `until_block`'s carry: the image, as `__call__` computes it."""
        ws = self._checked(ws)
        x, img = carry
        _, img, _ = self.run_blocks(ws, x, img, index + 1, len(self.cfg.block_resolutions), noise_mode=noise_mode,
                                    noise_key=noise_key, fused=fused)
        return img

    def _checked(self, ws):
        cfg = self.cfg
        if ws.ndim != 3 or ws.shape[1:] != (cfg.num_ws, cfg.w_dim):
            raise ValueError(f"ws must have shape [N, {cfg.num_ws}, {cfg.w_dim}], got {tuple(ws.shape)}")
        return jnp.asarray(ws, jnp.float32)

    def run_blocks(self, ws, x, img, start: int, stop: int, *, noise_mode, noise_key, fused, return_features=False):
        """Blocks start .. stop - 1 from their input (x, img): (x, img, the features of those blocks)."""
        features = []
        w_idx = 0
        for index, res in enumerate(self.cfg.block_resolutions[:stop]):
            block = getattr(self, f"b{res}")
            # Each block's torgb shares its w with the next block's conv0 (`SynthesisNetwork.forward`).
            block_ws = ws[:, w_idx: w_idx + block.num_conv + block.num_torgb]
            w_idx += block.num_conv
            if index < start:
                continue
            key = None if noise_key is None else jax.random.fold_in(noise_key, res)
            x, img, layer_outputs = block(x, img, block_ws, noise_mode=noise_mode, noise_key=key, fused=fused)
            features.extend(layer_outputs if return_features == "layers" else (x,))
        return x, img, features


class Generator(nnx.Module):
    def __init__(self, cfg: GeneratorConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        self.mapping = MappingNetwork(cfg.mapping, rngs=rngs)
        self.synthesis = SynthesisNetwork(cfg, rngs=rngs)


# ----------------------------------------------------------------------------------------------------------------
# Discriminator


def minibatch_std(x, group_size: int | None, num_channels: int):
    """Append the per-group feature standard deviation as `num_channels` channels (`MinibatchStdLayer.forward`).

    Samples are grouped by index modulo N / G, as the official reshape(G, -1, ...) does.
    """
    n, h, w, c = x.shape
    g = n if group_size is None else min(group_size, n)
    if n % g:
        raise ValueError(f"minibatch std: batch {n} is not divisible by the group size {g}")
    f = num_channels
    y = x.reshape(g, n // g, h, w, f, c // f)
    y = y - jnp.mean(y, axis=0)
    y = jnp.mean(jnp.square(y), axis=0)
    y = jnp.sqrt(y + 1e-8)
    y = jnp.mean(y, axis=(1, 2, 4))  # [n/G, F]
    y = jnp.tile(y, (g, 1))[:, None, None, :]  # sample i gets group i mod n/G
    y = jnp.broadcast_to(y, (n, h, w, f))
    return jnp.concatenate([x, y], axis=-1)


class DiscriminatorBlock(nnx.Module):
    def __init__(self, cfg: DiscriminatorConfig, resolution: int, *, rngs: nnx.Rngs):
        self.architecture = cfg.architecture
        self.resample_filter = tuple(cfg.resample_filter)
        self.is_first = resolution == cfg.img_resolution
        tmp_channels = cfg.channels_at(resolution)
        out_channels = cfg.channels_at(resolution // 2)
        common = dict(activation=cfg.activation, conv_clamp=cfg.conv_clamp, rngs=rngs)
        if self.is_first or cfg.architecture == "skip":
            self.fromrgb = Conv2dLayer(cfg.img_channels, tmp_channels, 1, **common)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, 3, **common)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, 3, down=2, resample_filter=cfg.resample_filter, **common)
        if cfg.architecture == "resnet":
            self.skip = Conv2dLayer(tmp_channels, out_channels, 1, bias=False, down=2,
                                    resample_filter=cfg.resample_filter, rngs=rngs)

    def __call__(self, x, img):
        if self.is_first or self.architecture == "skip":
            y = self.fromrgb(img)
            x = y if x is None else x + y
            img = downsample2d(img, setup_filter(self.resample_filter)) if self.architecture == "skip" else None
        if self.architecture == "resnet":
            y = self.skip(x, gain=np.sqrt(0.5))
            x = self.conv0(x)
            x = self.conv1(x, gain=np.sqrt(0.5))
            x = y + x
        else:
            x = self.conv1(self.conv0(x))
        return x, img


class DiscriminatorEpilogue(nnx.Module):
    def __init__(self, cfg: DiscriminatorConfig, *, rngs: nnx.Rngs):
        self.architecture = cfg.architecture
        self.cmap_dim = cfg.effective_cmap_dim
        self.mbstd_group_size = cfg.mbstd_group_size
        self.mbstd_num_channels = cfg.mbstd_num_channels
        channels = cfg.channels_at(4)
        if cfg.architecture == "skip":
            self.fromrgb = Conv2dLayer(cfg.img_channels, channels, 1, activation=cfg.activation, rngs=rngs)
        self.conv = Conv2dLayer(channels + cfg.mbstd_num_channels, channels, 3, activation=cfg.activation,
                                conv_clamp=cfg.conv_clamp, rngs=rngs)
        self.fc = FullyConnected(channels * 4 * 4, channels, activation=cfg.activation, rngs=rngs)
        self.out = FullyConnected(channels, self.cmap_dim or 1, rngs=rngs)

    def __call__(self, x, img, cmap):
        if self.architecture == "skip":
            x = x + self.fromrgb(img)
        if self.mbstd_num_channels > 0:
            x = minibatch_std(x, self.mbstd_group_size, self.mbstd_num_channels)
        x = self.conv(x)
        x = jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)  # `fc` expects PyTorch's NCHW flatten order
        x = self.out(self.fc(x))
        if self.cmap_dim > 0:
            x = jnp.sum(x * cmap, axis=1, keepdims=True) * (1 / np.sqrt(self.cmap_dim))
        return x


class Discriminator(nnx.Module):
    def __init__(self, cfg: DiscriminatorConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        for res in cfg.block_resolutions:
            setattr(self, f"b{res}", DiscriminatorBlock(cfg, res, rngs=rngs))
        if cfg.c_dim > 0:
            self.mapping = MappingNetwork(cfg.mapping, rngs=rngs)
        self.b4 = DiscriminatorEpilogue(cfg, rngs=rngs)

    def __call__(self, img, c=None):
        """img: [N, R, R, img_channels] in [-1, 1]; c: [N, c_dim] -> logits [N, 1]."""
        cfg = self.cfg
        expected = (cfg.img_resolution, cfg.img_resolution, cfg.img_channels)
        if img.ndim != 4 or tuple(img.shape[1:]) != expected:
            raise ValueError(f"img must have shape [N, {', '.join(map(str, expected))}], got {tuple(img.shape)}")
        img = jnp.asarray(img, jnp.float32)
        x = None
        for res in cfg.block_resolutions:
            x, img = getattr(self, f"b{res}")(x, img)
        cmap = self.mapping(None, c) if cfg.c_dim > 0 else None
        return self.b4(x, img, cmap)


# ----------------------------------------------------------------------------------------------------------------
# The pure, functional API


def init_generator(cfg: GeneratorConfig, key) -> SplitModel:
    """A randomly initialised generator (weights ~ N(0, 1) as the official init; for tests and training)."""
    return split(Generator(cfg, rngs=nnx.Rngs(params=key)))


def init_discriminator(cfg: DiscriminatorConfig, key) -> SplitModel:
    return split(Discriminator(cfg, rngs=nnx.Rngs(params=key)))


def abstract_model(cfg: GeneratorConfig | DiscriminatorConfig) -> SplitModel:
    """Shapes and dtypes only (no random init), the target for converters and checkpoint restores."""
    cls = Generator if isinstance(cfg, GeneratorConfig) else Discriminator
    return split(nnx.eval_shape(lambda: cls(cfg, rngs=nnx.Rngs(0))))


def mapping(G: SplitModel, z, c=None, *, truncation_psi=1.0, truncation_cutoff: int | None = None):
    """z [N, z_dim] (and c [N, c_dim]) -> ws [N, num_ws, w_dim], truncated towards w_avg by psi."""
    return G.module().mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)


def synthesis(G: SplitModel, ws, *, noise_mode: str = "const", noise_key=None, fused_modconv: bool = False,
              return_features: bool | str = False):
    """ws [N, num_ws, w_dim] -> images [N, R, R, C], float32, nominally in [-1, 1] (unclipped).

    noise_mode: 'const' (the stored noise buffers), 'random' (needs `noise_key`; fresh noise per sample and
    layer), 'none'. With return_features=True (or "blocks"), also every block's output x (NHWC), for DragGAN; with
    "layers", the const input and every synthesis layer's output after noise and activation (the EditGAN feature
    list: const, b4.conv1, b8.conv0, b8.conv1, ...), for the segmentation branch.
    """
    return G.module().synthesis(ws, noise_mode=noise_mode, noise_key=noise_key, fused=fused_modconv,
                                return_features=return_features)


def synthesis_until(G: SplitModel, ws, index: int, *, noise_mode: str = "const", noise_key=None,
                    fused_modconv: bool = False):
    """The synthesis up to feature `index` of `synthesis(..., return_features=True)` (block `index`'s output):
    (that feature, a carry). `synthesis_after(G, ws, index, carry)` then renders the image, the same as
    `synthesis` does, so that a caller can differentiate the feature alone and render the image afterwards."""
    return G.module().synthesis.until_block(ws, index, noise_mode=noise_mode, noise_key=noise_key, fused=fused_modconv)


def synthesis_after(G: SplitModel, ws, index: int, carry, *, noise_mode: str = "const", noise_key=None,
                    fused_modconv: bool = False):
    """The rest of the synthesis after `synthesis_until(G, ws, index)`: images [N, R, R, C]."""
    return G.module().synthesis.from_block(ws, index, carry, noise_mode=noise_mode, noise_key=noise_key,
                                           fused=fused_modconv)


def generate(G: SplitModel, z, c=None, *, truncation_psi=1.0, truncation_cutoff: int | None = None,
             noise_mode: str = "const", noise_key=None, fused_modconv: bool = False):
    """Mapping then synthesis: z [N, z_dim] -> images [N, R, R, C]."""
    ws = mapping(G, z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
    return synthesis(G, ws, noise_mode=noise_mode, noise_key=noise_key, fused_modconv=fused_modconv)


def mix_styles(ws_a, ws_b, inject_index: int):
    """Style mixing: layers [0, inject_index) from ws_a, the rest from ws_b (rosinality `inject_index`)."""
    return jnp.concatenate([ws_a[:, :inject_index], ws_b[:, inject_index:]], axis=1)


def discriminate(D: SplitModel, img, c=None):
    """img [N, R, R, C] -> logits [N, 1]. Not per-sample: minibatch std mixes samples within each group."""
    return D.module()(img, c)
