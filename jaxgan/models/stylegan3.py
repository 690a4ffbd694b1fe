"""StyleGAN3 (alias-free) generators, configs T and R: the config, the layer schedule, the layers and the model.

Follows NVlabs/stylegan3@c233a91 `training/networks_stylegan3.py`: `SynthesisNetwork.__init__` (:430-470) lays out
num_layers + 1 layers whose cutoffs and minimum stopbands grow geometrically from `first_cutoff` /
`first_stopband` to img_resolution / 2 and that times `last_stopband_rel`, reaching the end `num_critical` layers
before the last (those are critically sampled); each layer's sampling rate is the power of two at or above twice
its stopband (at most img_resolution), its size that plus 2 * `margin_size` (the last two: img_resolution), its
width min((channel_base / 2) / cutoff, channel_max) rounded (the last: img_channels); `SynthesisLayer.__init__`
(:272-320) then gives each layer its up / down factors (the temporary rate is the larger of its in / out rates,
times `lrelu_upsampling` except for ToRGB), its filter taps (`filter_size` x factor, 1 without resampling or for
ToRGB), radial down filters (`use_radial_filters`, not on critically sampled layers) and its padding (the
symmetric interpretation of Appendix C.3). The filters themselves are buffers of the checkpoint; only a network
built from scratch (`init_generator`) designs them, in numpy (`jaxgan.models.stylegan3_filters`, no scipy).

`synthesis_layer` is one layer's forward for a batch (`SynthesisLayer.forward`, :322-350, and SG3's
`modulated_conv2d`, :24-64): styles = affine(w) (FullyConnectedLayer, weight gain 1/sqrt(w_dim), bias init 1; for
ToRGB times 1/sqrt(in_channels * k^2)); the weight pre-normalised by its RMS per output channel, the styles by
their RMS, modulated, demodulated (not for ToRGB), times input_gain = magnitude_ema^-1/2; a convolution with "full"
padding k - 1; then `filtered_lrelu` with the layer's filters, factors and padding (gain sqrt 2 and slope 0.2, or
1 and 1 for ToRGB), clamped to conv_clamp. The styles scale the activations rather than the weights (the same
sums; one convolution serves the batch). The official code normalises the styles by the RMS over the whole
batch; demodulation divides every output channel by the norm of its modulated weights, which removes any scale
of the styles, so per-image normalisation is the same function (and the non-demodulated ToRGB is not
pre-normalised): an image does not depend on the others of its batch.

The model: `Generator` = StyleGAN2's `MappingNetwork` with StyleGAN3's defaults (2 layers, w_avg always kept, beta
0.998) + `SynthesisNetwork` (the Fourier input `jaxgan.nn.synthesis_input` from ws row 0, layer i from row i + 1,
the output times output_scale), named as the official state dict so converters map it by the identity; filters
and magnitude EMAs are buffers. The pure API over its `SplitModel` is StyleGAN2's (`mapping`, `synthesis` with
`return_features`: every layer's output, DragGAN's feature list; `generate`), plus `with_input_transform` and
`make_transform` (gen_images.py's --translate / --rotate). Everything runs in float32 (the official fp16 layers as
`force_fp32=True`). Not here: the magnitude-EMA update of training (`update_emas`).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import lax

from jaxgan.models.stylegan2 import MappingConfig, MappingNetwork, mapping  # the mapping API is StyleGAN2's
from jaxgan.models.stylegan3_filters import design_lowpass_filter
from jaxgan.nn.fully_connected import FullyConnected, equalized_linear
from jaxgan.nn.leaves import replace_selected
from jaxgan.nn.modulated_layers import NOISE_MODES
from jaxgan.nn.split import SplitModel, split
from jaxgan.nn.synthesis_input import fourier_features
from jaxgan.nn.variables import Buffer
from jaxgan.ops.filtered_lrelu import filtered_lrelu

# return_features of `synthesis`: none, or every synthesis layer's output (True, as DragGAN's renderer; "layers")
FEATURE_KINDS = (False, True, "layers")
INPUT_TRANSFORM = ("synthesis", "input", "transform")  # the user transform buffer's name parts


@dataclasses.dataclass(frozen=True)
class StyleGAN3Config:
    """`Generator(**init_kwargs)` of networks_stylegan3.py with its defaults (config T: conv_kernel 3, no radial
    filters; config R: conv_kernel 1, use_radial_filters, and train.py doubles channel_base / channel_max)."""

    z_dim: int = 512
    c_dim: int = 0
    w_dim: int = 512
    img_resolution: int = 1024
    img_channels: int = 3
    mapping_layers: int = 2             # mapping_kwargs num_layers (train.py --map-depth, 2 for T and R)
    mapping_lr_multiplier: float = 0.01
    w_avg_beta: float = 0.998
    channel_base: int = 32768
    channel_max: int = 512
    num_layers: int = 14
    num_critical: int = 2
    first_cutoff: float = 2.0
    first_stopband: float = 2 ** 2.1
    last_stopband_rel: float = 2 ** 0.3
    margin_size: int = 10
    output_scale: float = 0.25
    num_fp16_res: int = 4
    conv_kernel: int = 3
    filter_size: int = 6
    lrelu_upsampling: int = 2
    use_radial_filters: bool = False
    conv_clamp: float | None = 256
    magnitude_ema_beta: float = 0.999

    def __post_init__(self):
        if self.num_layers <= self.num_critical:
            raise ValueError(f"num_layers ({self.num_layers}) must exceed num_critical ({self.num_critical})")

    @property
    def num_ws(self) -> int:
        return self.num_layers + 2

    @property
    def mapping(self) -> MappingConfig:
        """StyleGAN3's MappingNetwork is StyleGAN2's with embed and hidden widths w_dim and w_avg always kept."""
        return MappingConfig(z_dim=self.z_dim, c_dim=self.c_dim, w_dim=self.w_dim, num_ws=self.num_ws,
                             num_layers=self.mapping_layers, lr_multiplier=self.mapping_lr_multiplier,
                             w_avg_beta=self.w_avg_beta)

    @property
    def feature_shapes(self) -> tuple[tuple[int, int], ...]:
        """(size, channels) of each map `synthesis(..., return_features=True)` returns: every layer's output."""
        return tuple((spec.out_size, spec.out_channels) for spec in layer_specs(self))


@dataclasses.dataclass(frozen=True)
class LayerSpec:
    """One SynthesisLayer's static shape: what `SynthesisLayer.__init__` computes from the network's schedule."""

    name: str                      # L{idx}_{out_size}_{out_channels}, the state-dict prefix
    in_size: int
    out_size: int
    in_channels: int
    out_channels: int
    in_sampling_rate: int
    out_sampling_rate: int
    tmp_sampling_rate: int
    in_cutoff: float
    out_cutoff: float
    in_half_width: float
    out_half_width: float
    up_factor: int
    down_factor: int
    up_taps: int
    down_taps: int
    down_radial: bool
    padding: tuple[int, int, int, int]  # (x0, x1, y0, y1) of the up-FIR
    conv_kernel: int
    is_torgb: bool
    is_critically_sampled: bool
    use_fp16: bool


def schedule(cfg: StyleGAN3Config) -> dict:
    """The network's per-layer arrays (index 0 ... num_layers): cutoffs, stopbands, sampling_rates, half_widths,
    sizes, channels, as `SynthesisNetwork.__init__` computes them (float64 numpy, as the official code)."""
    n = cfg.num_layers
    last_cutoff = cfg.img_resolution / 2
    last_stopband = last_cutoff * cfg.last_stopband_rel
    exponents = np.minimum(np.arange(n + 1) / (n - cfg.num_critical), 1)
    cutoffs = cfg.first_cutoff * (last_cutoff / cfg.first_cutoff) ** exponents
    stopbands = cfg.first_stopband * (last_stopband / cfg.first_stopband) ** exponents
    sampling_rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, cfg.img_resolution))))
    half_widths = np.maximum(stopbands, sampling_rates / 2) - cutoffs
    sizes = sampling_rates + cfg.margin_size * 2
    sizes[-2:] = cfg.img_resolution
    channels = np.rint(np.minimum((cfg.channel_base / 2) / cutoffs, cfg.channel_max))
    channels[-1] = cfg.img_channels
    return {"cutoffs": cutoffs, "stopbands": stopbands, "sampling_rates": sampling_rates,
            "half_widths": half_widths, "sizes": sizes, "channels": channels}


def layer_specs(cfg: StyleGAN3Config) -> list[LayerSpec]:
    """The num_layers + 1 synthesis layers (the last is ToRGB), in order."""
    s = schedule(cfg)
    specs = []
    for idx in range(cfg.num_layers + 1):
        prev = max(idx - 1, 0)
        is_torgb = idx == cfg.num_layers
        critical = idx >= cfg.num_layers - cfg.num_critical
        in_rate, out_rate = int(s["sampling_rates"][prev]), int(s["sampling_rates"][idx])
        tmp_rate = max(in_rate, out_rate) * (1 if is_torgb else cfg.lrelu_upsampling)
        in_size, out_size = int(s["sizes"][prev]), int(s["sizes"][idx])
        kernel = 1 if is_torgb else cfg.conv_kernel
        up = int(np.rint(tmp_rate / in_rate))
        down = int(np.rint(tmp_rate / out_rate))
        up_taps = cfg.filter_size * up if up > 1 and not is_torgb else 1
        down_taps = cfg.filter_size * down if down > 1 and not is_torgb else 1
        pad_total = (out_size - 1) * down + 1 - (in_size + kernel - 1) * up + up_taps + down_taps - 2
        pad_lo = (pad_total + up) // 2
        pad_hi = pad_total - pad_lo
        out_channels = int(s["channels"][idx])
        specs.append(LayerSpec(
            name=f"L{idx}_{out_size}_{out_channels}", in_size=in_size, out_size=out_size,
            in_channels=int(s["channels"][prev]), out_channels=out_channels, in_sampling_rate=in_rate,
            out_sampling_rate=out_rate, tmp_sampling_rate=tmp_rate, in_cutoff=float(s["cutoffs"][prev]),
            out_cutoff=float(s["cutoffs"][idx]), in_half_width=float(s["half_widths"][prev]),
            out_half_width=float(s["half_widths"][idx]), up_factor=up, down_factor=down, up_taps=up_taps,
            down_taps=down_taps, down_radial=cfg.use_radial_filters and not critical,
            padding=(pad_lo, pad_hi, pad_lo, pad_hi), conv_kernel=kernel, is_torgb=is_torgb,
            is_critically_sampled=critical,
            use_fp16=bool(out_rate * 2 ** cfg.num_fp16_res > cfg.img_resolution)))
    return specs


def input_layout(cfg: StyleGAN3Config) -> dict:
    """The synthesis input's size, sampling rate, bandwidth and channels (for `jaxgan.nn.synthesis_input`)."""
    s = schedule(cfg)
    size = int(s["sizes"][0])
    return {"size": (size, size), "sampling_rate": float(s["sampling_rates"][0]), "bandwidth": float(s["cutoffs"][0]),
            "channels": int(s["channels"][0])}


def synthesis_layer(params: dict, spec: LayerSpec, x, w, *, conv_clamp: float | None = 256):
    """One SynthesisLayer: x [N, in_size, in_size, in_channels] (NHWC), w [N, w_dim] -> [N, out_size, out_size,
    out_channels]. params by their state-dict suffixes: 'weight' [O, I, k, k], 'bias' [O], 'affine.weight'
    [I, w_dim], 'affine.bias' [I], 'magnitude_ema' [], and 'up_filter' / 'down_filter' where the layer has them.

    The styles modulate the activations, not the weights (conv(x * s, W) = conv(x, W * s)), so one convolution
    with the shared weight serves the batch; the demodulation coefficients then scale the output channels."""
    weight = jnp.asarray(params["weight"], jnp.float32)
    styles = equalized_linear(jnp.asarray(w, jnp.float32), params["affine.weight"], params["affine.bias"])
    if spec.is_torgb:
        styles = styles * np.float32(1 / np.sqrt(spec.in_channels * spec.conv_kernel ** 2))
    demodulate = not spec.is_torgb
    if demodulate:
        weight = weight * lax.rsqrt(jnp.mean(jnp.square(weight), axis=(1, 2, 3), keepdims=True))
        styles = styles * lax.rsqrt(jnp.mean(jnp.square(styles), axis=1, keepdims=True))
    k = spec.conv_kernel
    y = lax.conv_general_dilated(x * styles[:, None, None, :], jnp.transpose(weight, (2, 3, 1, 0)), (1, 1),
                                 [(k - 1, k - 1)] * 2, dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                 precision=lax.Precision.HIGHEST)
    gain = lax.rsqrt(jnp.asarray(params["magnitude_ema"], jnp.float32))  # input_gain, after the demodulation
    if demodulate:  # 1 / |W_o * s| per image and output channel
        squares = jnp.sum(jnp.square(weight), axis=(2, 3))                           # [O, I]
        gain = gain * lax.rsqrt(jnp.square(styles) @ squares.T + np.float32(1e-8))[:, None, None, :]
    y = y * gain
    return filtered_lrelu(y, params.get("up_filter"), params.get("down_filter"), params["bias"], spec.up_factor,
                          spec.down_factor, spec.padding, gain=1.0 if spec.is_torgb else float(np.sqrt(2)),
                          slope=1.0 if spec.is_torgb else 0.2, clamp=conv_clamp)


# ----------------------------------------------------------------------------------------------------------------
# Modules: named as the official state dict (synthesis.input.*, synthesis.L{idx}_{size}_{channels}.*, mapping.*)


class SynthesisInput(nnx.Module):
    def __init__(self, cfg: StyleGAN3Config, *, rngs: nnx.Rngs):
        layout = input_layout(cfg)
        self.size, self.sampling_rate, self.bandwidth = layout["size"], layout["sampling_rate"], layout["bandwidth"]
        channels = layout["channels"]
        # The official construction: frequencies drawn from a disc of radius `bandwidth`, phases in [-0.5, 0.5).
        freqs = jax.random.normal(rngs.params(), (channels, 2))
        radii = jnp.sqrt(jnp.sum(jnp.square(freqs), axis=1, keepdims=True))
        freqs = freqs / (radii * jnp.exp(jnp.square(radii)) ** 0.25) * self.bandwidth
        self.weight = nnx.Param(jax.random.normal(rngs.params(), (channels, channels)))
        self.affine = FullyConnected(cfg.w_dim, 4, rngs=rngs)
        self.affine.weight = nnx.Param(jnp.zeros((4, cfg.w_dim), jnp.float32))       # weight_init=0
        self.affine.bias = nnx.Param(jnp.asarray([1.0, 0.0, 0.0, 0.0], jnp.float32))  # bias_init=[1,0,0,0]
        self.transform = Buffer(jnp.eye(3, dtype=jnp.float32))
        self.freqs = Buffer(freqs)
        self.phases = Buffer(jax.random.uniform(rngs.params(), (channels,)) - 0.5)

    def __call__(self, w):
        params = {"weight": self.weight[...], "affine.weight": self.affine.weight[...],
                  "affine.bias": self.affine.bias[...], "transform": self.transform[...], "freqs": self.freqs[...],
                  "phases": self.phases[...]}
        return fourier_features(params, w, size=self.size, sampling_rate=self.sampling_rate,
                                bandwidth=self.bandwidth)


class SynthesisLayer(nnx.Module):
    def __init__(self, cfg: StyleGAN3Config, spec: LayerSpec, *, rngs: nnx.Rngs):
        self.spec = spec
        self.conv_clamp = cfg.conv_clamp
        k = spec.conv_kernel
        self.affine = FullyConnected(cfg.w_dim, spec.in_channels, bias_init=1.0, rngs=rngs)
        self.weight = nnx.Param(jax.random.normal(rngs.params(), (spec.out_channels, spec.in_channels, k, k)))
        self.bias = nnx.Param(jnp.zeros((spec.out_channels,), jnp.float32))
        self.magnitude_ema = Buffer(jnp.ones((), jnp.float32))
        up = design_lowpass_filter(spec.up_taps, spec.in_cutoff, spec.in_half_width * 2, spec.tmp_sampling_rate)
        down = design_lowpass_filter(spec.down_taps, spec.out_cutoff, spec.out_half_width * 2,
                                     spec.tmp_sampling_rate, radial=spec.down_radial)
        if up is not None:
            self.up_filter = Buffer(jnp.asarray(up))
        if down is not None:
            self.down_filter = Buffer(jnp.asarray(down))

    def __call__(self, x, w):
        params = {"weight": self.weight[...], "bias": self.bias[...], "affine.weight": self.affine.weight[...],
                  "affine.bias": self.affine.bias[...], "magnitude_ema": self.magnitude_ema[...]}
        for name in ("up_filter", "down_filter"):
            if hasattr(self, name):
                params[name] = getattr(self, name)[...]
        return synthesis_layer(params, self.spec, x, w, conv_clamp=self.conv_clamp)


class SynthesisNetwork(nnx.Module):
    def __init__(self, cfg: StyleGAN3Config, *, rngs: nnx.Rngs):
        self.cfg = cfg
        self.input = SynthesisInput(cfg, rngs=rngs)
        self.layer_names = tuple(spec.name for spec in layer_specs(cfg))
        for spec in layer_specs(cfg):
            setattr(self, spec.name, SynthesisLayer(cfg, spec, rngs=rngs))

    def __call__(self, ws, *, noise_mode="const", noise_key=None, return_features=False):
        """ws [N, num_ws, w_dim] -> img [N, R, R, img_channels] (times output_scale), and with return_features
        every layer's output, the last (ToRGB) before output_scale (DragGAN's renderer's feature list)."""
        del noise_key  # no noise inputs
        if return_features not in FEATURE_KINDS:
            raise ValueError(f"return_features must be one of {FEATURE_KINDS}, got {return_features!r}")
        ws = self._checked(ws, noise_mode)
        x, features = self.run_layers(ws, self.input(ws[:, 0]), 0, len(self.layer_names))
        img = self._scaled(x)
        return (img, tuple(features)) if return_features else img

    def until_layer(self, ws, index: int, *, noise_mode="const"):
        """The input and layers 0 .. index: (layer `index`'s output, the carry that `from_layer` continues from)."""
        ws = self._checked(ws, noise_mode)
        x, _ = self.run_layers(ws, self.input(ws[:, 0]), 0, index + 1)
        return x, x

    def from_layer(self, ws, index: int, carry, *, noise_mode="const"):
        """The layers after `index` and the output scale, from `until_layer`'s carry: the image."""
        ws = self._checked(ws, noise_mode)
        x, _ = self.run_layers(ws, carry, index + 1, len(self.layer_names))
        return self._scaled(x)

    def _checked(self, ws, noise_mode):
        # StyleGAN3 has no noise inputs; noise_mode is accepted and unused, as the official layers do.
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        cfg = self.cfg
        if ws.ndim != 3 or ws.shape[1:] != (cfg.num_ws, cfg.w_dim):
            raise ValueError(f"ws must have shape [N, {cfg.num_ws}, {cfg.w_dim}], got {tuple(ws.shape)}")
        return jnp.asarray(ws, jnp.float32)

    def run_layers(self, ws, x, start: int, stop: int):
        """Layers start .. stop - 1 from their input x: (x, every one of those layers' outputs)."""
        features = []
        for idx in range(start, stop):
            x = getattr(self, self.layer_names[idx])(x, ws[:, idx + 1])
            features.append(x)
        return x, features

    def _scaled(self, x):
        return x * np.float32(self.cfg.output_scale) if self.cfg.output_scale != 1 else x


class Generator(nnx.Module):
    def __init__(self, cfg: StyleGAN3Config, *, rngs: nnx.Rngs):
        self.cfg = cfg
        self.mapping = MappingNetwork(cfg.mapping, rngs=rngs)
        self.synthesis = SynthesisNetwork(cfg, rngs=rngs)


# ----------------------------------------------------------------------------------------------------------------
# The pure, functional API (the same as jaxgan.models.stylegan2's generator API; `mapping` is that module's)


def init_generator(cfg: StyleGAN3Config, key) -> SplitModel:
    """A generator initialised as the official constructor does (filters designed, magnitude EMAs 1)."""
    return split(Generator(cfg, rngs=nnx.Rngs(params=key)))


def abstract_model(cfg: StyleGAN3Config) -> SplitModel:
    """Shapes and dtypes only (no random init), the target for converters and checkpoint restores."""
    return split(nnx.eval_shape(lambda: Generator(cfg, rngs=nnx.Rngs(0))))


def synthesis(G: SplitModel, ws, *, noise_mode: str = "const", noise_key=None, return_features: bool | str = False):
    """ws [N, num_ws, w_dim] -> images [N, R, R, C], float32, nominally in [-1, 1] (unclipped). With
    return_features (True or "layers"), also every synthesis layer's output (NHWC, margins included)."""
    return G.module().synthesis(ws, noise_mode=noise_mode, noise_key=noise_key, return_features=return_features)


def synthesis_until(G: SplitModel, ws, index: int, *, noise_mode: str = "const", noise_key=None):
    """The synthesis up to feature `index` of `synthesis(..., return_features=True)` (layer `index`'s output):
    (that feature, a carry for `synthesis_after`). As jaxgan.models.stylegan2.synthesis_until."""
    del noise_key
    return G.module().synthesis.until_layer(ws, index, noise_mode=noise_mode)


def synthesis_after(G: SplitModel, ws, index: int, carry, *, noise_mode: str = "const", noise_key=None):
    """The rest of the synthesis after `synthesis_until(G, ws, index)`: images [N, R, R, C]."""
    del noise_key
    return G.module().synthesis.from_layer(ws, index, carry, noise_mode=noise_mode)


def generate(G: SplitModel, z, c=None, *, truncation_psi=1.0, truncation_cutoff: int | None = None,
             noise_mode: str = "const", noise_key=None):
    """Mapping then synthesis: z [N, z_dim] -> images [N, R, R, C]."""
    ws = mapping(G, z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
    return synthesis(G, ws, noise_mode=noise_mode, noise_key=noise_key)


def make_transform(translate: tuple[float, float] = (0.0, 0.0), angle: float = 0.0) -> np.ndarray:
    """The user transform of gen_images.py's `make_transform` (float64 [3, 3]): rotate by `angle` degrees,
    translate by (x, y) in units of the input grid. The network's `transform` buffer holds its inverse."""
    s, c = np.sin(angle / 360.0 * np.pi * 2), np.cos(angle / 360.0 * np.pi * 2)
    return np.array([[c, s, translate[0]], [-s, c, translate[1]], [0, 0, 1]], np.float64)


def with_input_transform(G: SplitModel, user_transform=None) -> SplitModel:
    """G with its input `transform` buffer set as gen_images.py sets it: inv(user_transform), float32; None: the
    identity (what DragGAN's renderer sets when it loads a network)."""
    m = np.eye(3) if user_transform is None else np.linalg.inv(np.asarray(user_transform, np.float64))
    buffers = replace_selected(G.buffers, lambda name: name == INPUT_TRANSFORM, [jnp.asarray(m, jnp.float32)])
    return dataclasses.replace(G, buffers=buffers)
