"""StyleGAN3 (`networks_stylegan3`) generators from network pickles -> jaxgan StyleGAN3 models.

Follows NVlabs/stylegan3@c233a91: `training/networks_stylegan3.py` `Generator(z_dim, c_dim, w_dim,
img_resolution, img_channels, mapping_kwargs, **synthesis_kwargs)`, whose synthesis and layer arguments sit flat at
the top level of the pickled `init_kwargs` (train.py sets channel_base, channel_max, magnitude_ema_beta and, for
stylegan3-r, conv_kernel 1 and use_radial_filters; the rest keep the constructor defaults, which
`jaxgan.models.stylegan3.StyleGAN3Config` holds). Unknown arguments are refused by name. The state dict maps by
the identity (jaxgan names its modules after the official ones: `mapping.fc0.weight`, `synthesis.input.freqs`,
`synthesis.L3_36_512.up_filter`): every key must fill a leaf of the same shape and every leaf must be filled, so
a checkpoint whose filters (buffers, used as stored, as the official `load_state_dict` does) or layer names do not
match the constructor arguments is refused with the leftovers named. The pickle reader is
`checkpoints_convert.torch_reader` (nothing stored in the file runs); `checkpoints_convert.stylegan2_pkl` reads the
pickle and hands StyleGAN3 generators here (the discriminator of a StyleGAN3 snapshot is StyleGAN2's).
"""

import dataclasses

from checkpoints_convert.keymap import ConversionError, fill_model
from jaxgan.models.stylegan3 import StyleGAN3Config, abstract_model
from jaxgan.nn.split import SplitModel

_TOP = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")
_MAPPING = {"num_layers": "mapping_layers", "lr_multiplier": "mapping_lr_multiplier", "w_avg_beta": "w_avg_beta"}
# SynthesisNetwork and SynthesisLayer arguments: StyleGAN3Config's field of the same name.
_SYNTHESIS = ("channel_base", "channel_max", "num_layers", "num_critical", "first_cutoff", "first_stopband",
              "last_stopband_rel", "margin_size", "output_scale", "num_fp16_res", "conv_kernel", "filter_size",
              "lrelu_upsampling", "use_radial_filters", "conv_clamp", "magnitude_ema_beta")


def is_stylegan3_state_dict(tensors) -> bool:
    """A networks_stylegan3 generator has a Fourier-feature input layer, `synthesis.input.*` (StyleGAN2 has none)."""
    return any(key.startswith("synthesis.input.") for key in tensors)


def generator_config(init_kwargs: dict) -> StyleGAN3Config:
    """StyleGAN3Config from a networks_stylegan3 Generator's init_kwargs; ConversionError naming unknown ones."""
    kw = dict(init_kwargs)
    mapping = dict(kw.pop("mapping_kwargs", None) or {})
    missing = [k for k in _TOP if k not in kw]
    if missing:
        raise ConversionError(f"StyleGAN3 generator init_kwargs lack {missing}")
    unknown = sorted(set(kw) - set(_TOP) - set(_SYNTHESIS)) + sorted(f"mapping_kwargs.{k}" for k in
                                                                     set(mapping) - set(_MAPPING))
    if unknown:
        raise ConversionError(f"StyleGAN3 generator: unsupported constructor arguments {unknown}")
    # Pickled values may be numpy scalars, or ints where a float is declared: cast to the field's type.
    types = {f.name: float if f.name == "conv_clamp" else f.type for f in dataclasses.fields(StyleGAN3Config)}
    values = {key: kw[key] for key in (*_TOP, *_SYNTHESIS) if key in kw}
    values.update({_MAPPING[key]: value for key, value in mapping.items()})
    values = {key: None if value is None else types[key](value) for key, value in values.items()}
    try:
        return StyleGAN3Config(**values)
    except ValueError as e:
        raise ConversionError(f"StyleGAN3 generator: {e}") from None


def convert_generator(init_kwargs: dict, tensors: dict) -> SplitModel:
    """A networks_stylegan3 Generator (constructor arguments + state dict of numpy arrays) -> SplitModel."""
    cfg = generator_config(init_kwargs)
    try:
        return fill_model(abstract_model(cfg), tensors)
    except ConversionError as e:
        raise ConversionError(f"StyleGAN3 generator ({cfg.img_resolution} px, {cfg.num_layers} layers): {e}") from None
