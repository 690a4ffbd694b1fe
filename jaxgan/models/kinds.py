"""The registry of model kinds: every kind of network a jaxgan checkpoint can hold, by the name stored in it.

A kind names a config class (the frozen dataclass the model is built from), the function that builds the model's
abstract structure (shapes and dtypes, the restore target of `jaxgan.checkpoint`), a description for messages and a
one-line summary of a config for `jaxgan convert`. Checkpoint saving and loading, the converters and the CLI all
read this table; a new family registers here and nowhere else (the pattern of levanter's `register_subclass` and
big_vision's `models.{name}`: a registry keyed by name, not a chain of isinstance tests).

A kind that was renamed keeps its old name in `LEGACY_KIND_NAMES`, so checkpoints written before the rename still
load: `canonical_kind` maps an old name to the current one, `kind_named` accepts both, and
`jaxgan.checkpoint.read_sidecar` rewrites the names it reads.
"""

import dataclasses
from typing import Any, Callable

from jaxgan.models import encoder, lpips, pix2pixhd, segbranch, stylegan2, stylegan3, vgg19
from jaxgan.nn.split import SplitModel


@dataclasses.dataclass(frozen=True)
class ModelKind:
    name: str                                   # stored in jaxgan.json: models.<name>.kind
    config_class: type
    abstract_model: Callable[[Any], SplitModel]
    description: str                            # "StyleGAN2 generator", for messages
    summary: Callable[[Any], str]               # one line about a config, after "NAME: KIND"


def _stylegan2_summary(cfg) -> str:
    return (f"{cfg.img_resolution}x{cfg.img_resolution}, c_dim {cfg.c_dim}, architecture {cfg.architecture}")


def _pix2pixhd_generator_summary(cfg) -> str:
    parts = [f"label_nc {cfg.label_nc}"] + ([] if cfg.no_instance else ["instance edges"])
    parts += [f"{cfg.feat_num} feature channels"] if cfg.feat_num else []
    return f"({cfg.netG}, ngf {cfg.ngf}, input {cfg.input_nc} channels: {' + '.join(parts)})"


_KINDS = (
    ModelKind("stylegan2-generator", stylegan2.GeneratorConfig, stylegan2.abstract_model, "StyleGAN2 generator",
              _stylegan2_summary),
    ModelKind("stylegan3-generator", stylegan3.StyleGAN3Config, stylegan3.abstract_model, "StyleGAN3 generator",
              lambda cfg: f"{cfg.img_resolution}x{cfg.img_resolution}, c_dim {cfg.c_dim}, "
                          f"config {'R' if cfg.use_radial_filters else 'T'} "
                          f"({cfg.conv_kernel}x{cfg.conv_kernel} convs, {cfg.num_layers} layers)"),
    ModelKind("stylegan2-discriminator", stylegan2.DiscriminatorConfig, stylegan2.abstract_model,
              "StyleGAN2 discriminator", _stylegan2_summary),
    ModelKind("lpips", lpips.LPIPSConfig, lpips.abstract_model, "LPIPS model",
              lambda cfg: f"(LPIPS v{cfg.version}, {cfg.net} trunk)"),
    ModelKind("segbranch", segbranch.SegBranchConfig, segbranch.abstract_model, "segmentation branch",
              lambda cfg: f"({cfg.num_models} classifiers, {cfg.num_classes} classes, {cfg.feature_dim} feature "
                          "channels)"),
    ModelKind("pix2pixhd-generator", pix2pixhd.Pix2PixHDGeneratorConfig, pix2pixhd.abstract_model,
              "pix2pixHD generator", _pix2pixhd_generator_summary),
    ModelKind("pix2pixhd-discriminator", pix2pixhd.Pix2PixHDDiscriminatorConfig, pix2pixhd.abstract_model,
              "pix2pixHD discriminator", lambda cfg: f"(num_D {cfg.num_D}, n_layers {cfg.n_layers})"),
    ModelKind("pix2pixhd-encoder", pix2pixhd.Pix2PixHDEncoderConfig, pix2pixhd.abstract_model,
              "pix2pixHD feature encoder", lambda cfg: f"(ngf {cfg.ngf})"),
    ModelKind("editgan-encoder", encoder.EncoderConfig, encoder.abstract_model, "EditGAN encoder",
              lambda cfg: f"(FPNEncoder: W+ {cfg.num_ws} x {cfg.w_dim}, base width {cfg.base_width}, pyramid "
                          f"{cfg.fpn_dim}, heads {cfg.head_dim})"),
    ModelKind("vgg19-features", vgg19.VGG19Config, vgg19.abstract_model, "VGG19 feature trunk",
              lambda cfg: "(relu1_1 .. relu5_1)"),
)

MODEL_KINDS: dict[str, ModelKind] = {kind.name: kind for kind in _KINDS}
# The image generators (mapping + synthesis, `jaxgan.models.generators`): what generate, drag, invert and serve take.
GENERATOR_KINDS = ("stylegan2-generator", "stylegan3-generator")
_BY_CONFIG_CLASS = {kind.config_class: kind for kind in _KINDS}
# Old stored name -> current name. "lpips-vgg": LPIPS had only the VGG16 trunk; the config now names the trunk.
LEGACY_KIND_NAMES = {"lpips-vgg": "lpips"}


def canonical_kind(name: str) -> str:
    """The current name of kind `name` (itself unless it is a legacy name); unknown names pass through."""
    return LEGACY_KIND_NAMES.get(name, name)


def kind_named(name: str) -> ModelKind:
    """The kind stored as `name` (a current or legacy name); KeyError naming the known kinds otherwise."""
    try:
        return MODEL_KINDS[canonical_kind(name)]
    except KeyError:
        raise KeyError(f"unknown model kind {name!r}; known kinds: {', '.join(MODEL_KINDS)}") from None


def kind_of(cfg) -> ModelKind:
    """The kind of a model config (by its exact class); TypeError for a class no kind registers."""
    try:
        return _BY_CONFIG_CLASS[type(cfg)]
    except KeyError:
        raise TypeError(f"no model kind for config type {type(cfg).__name__}") from None


def describe(name: str, cfg) -> str:
    """'NAME: KIND SUMMARY', the line `jaxgan convert` prints for each converted model."""
    kind = kind_of(cfg)
    return f"{name}: {kind.name} {kind.summary(cfg)}"
