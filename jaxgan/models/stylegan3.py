"""StyleGAN3 (alias-free) generators: the config and the synthesis network's layer schedule so far (issue 19).

Follows NVlabs/stylegan3@c233a91 `training/networks_stylegan3.py`: `SynthesisNetwork.__init__` (:430-470) lays out
num_layers + 1 layers whose cutoffs and minimum stopbands grow geometrically from `first_cutoff` /
`first_stopband` to img_resolution / 2 and that times `last_stopband_rel`, reaching the end `num_critical` layers
before the last (those are critically sampled); each layer's sampling rate is the power of two at or above twice
its stopband (at most img_resolution), its size that plus 2 * `margin_size` (the last two: img_resolution), its
width min((channel_base / 2) / cutoff, channel_max) rounded (the last: img_channels); `SynthesisLayer.__init__`
(:272-320) then gives each layer its up / down factors (the temporary rate is the larger of its in / out rates,
times `lrelu_upsampling` except for ToRGB), its filter taps (`filter_size` x factor, 1 without resampling or for
ToRGB), radial down filters (`use_radial_filters`, not on critically sampled layers) and its padding (the
symmetric interpretation of Appendix C.3). The filters themselves are buffers of the checkpoint, so nothing here
designs one (no scipy).

`synthesis_layer` is one layer's forward for one image (`SynthesisLayer.forward`, :322-350, and SG3's
`modulated_conv2d`, :24-64): styles = affine(w) (FullyConnectedLayer, weight gain 1/sqrt(w_dim), bias init 1; for
ToRGB times 1/sqrt(in_channels * k^2)); the weight pre-normalised by its RMS per output channel, the styles by
their RMS, modulated, demodulated (not for ToRGB), times input_gain = magnitude_ema^-1/2; a convolution with "full"
padding k - 1; then `filtered_lrelu` with the layer's filters, factors and padding (gain sqrt 2 and slope 0.2, or
1 and 1 for ToRGB), clamped to conv_clamp. The official code normalises the styles by the RMS over the whole
batch; demodulation divides every output channel by the norm of its modulated weights, which removes any scale
of the styles, so per-image normalisation is the same function (and the non-demodulated ToRGB is not
pre-normalised): an image does not depend on the others of its batch.

Still to come: the whole synthesis network and the mapping network (StyleGAN2's with StyleGAN3's defaults) as a
model, the magnitude EMA update (training), the converter and the functional API; `jaxgan.nn.synthesis_input`
is the input layer and `jaxgan.ops.filtered_lrelu` the nonlinearity.
"""

import dataclasses

import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxgan.nn.fully_connected import equalized_linear
from jaxgan.ops.filtered_lrelu import filtered_lrelu


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

    @property
    def num_ws(self) -> int:
        return self.num_layers + 2


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
    """One SynthesisLayer on one image: x [in_size, in_size, in_channels] (HWC), w [w_dim] -> [out_size, out_size,
    out_channels]. params by their state-dict suffixes: 'weight' [O, I, k, k], 'bias' [O], 'affine.weight'
    [I, w_dim], 'affine.bias' [I], 'magnitude_ema' [], and 'up_filter' / 'down_filter' where the layer has them."""
    weight = jnp.asarray(params["weight"], jnp.float32)
    styles = equalized_linear(w, params["affine.weight"], params["affine.bias"])
    if spec.is_torgb:
        styles = styles * np.float32(1 / np.sqrt(spec.in_channels * spec.conv_kernel ** 2))
    demodulate = not spec.is_torgb
    if demodulate:
        weight = weight * lax.rsqrt(jnp.mean(jnp.square(weight), axis=(1, 2, 3), keepdims=True))
        styles = styles * lax.rsqrt(jnp.mean(jnp.square(styles)))
    weight = weight * styles[None, :, None, None]                               # [O, I, k, k]
    if demodulate:
        weight = weight * lax.rsqrt(jnp.sum(jnp.square(weight), axis=(1, 2, 3), keepdims=True) + np.float32(1e-8))
    weight = weight * lax.rsqrt(jnp.asarray(params["magnitude_ema"], jnp.float32))  # input_gain
    k = spec.conv_kernel
    y = lax.conv_general_dilated(x[None], jnp.transpose(weight, (2, 3, 1, 0)), (1, 1), [(k - 1, k - 1)] * 2,
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=lax.Precision.HIGHEST)
    y = filtered_lrelu(y, params.get("up_filter"), params.get("down_filter"), params["bias"], spec.up_factor,
                       spec.down_factor, spec.padding, gain=1.0 if spec.is_torgb else float(np.sqrt(2)),
                       slope=1.0 if spec.is_torgb else 0.2, clamp=conv_clamp)
    return y[0]
