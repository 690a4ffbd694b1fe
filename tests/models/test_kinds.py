"""jaxgan.models.kinds: every model family is registered once, by name and by config class."""

import dataclasses

import pytest

from jaxgan.models import encoder, kinds, lpips, pix2pixhd, segbranch, stylegan2, stylegan3, vgg19


def test_every_config_class_has_exactly_one_kind():
    config_classes = [stylegan2.GeneratorConfig, stylegan3.StyleGAN3Config, stylegan2.DiscriminatorConfig,
                      lpips.LPIPSConfig, segbranch.SegBranchConfig, *pix2pixhd.CONFIGS, vgg19.VGG19Config,
                      encoder.EncoderConfig]
    assert sorted(k.config_class.__name__ for k in kinds.MODEL_KINDS.values()) == sorted(
        c.__name__ for c in config_classes)
    assert len({k.name for k in kinds.MODEL_KINDS.values()}) == len(config_classes)


def test_lookup_by_name_and_by_config():
    cfg = segbranch.SegBranchConfig(feature_dim=16, num_classes=3, num_models=2)
    assert kinds.kind_of(cfg).name == "segbranch"
    assert kinds.kind_named("segbranch").config_class is segbranch.SegBranchConfig
    assert kinds.describe("S", cfg) == "S: segbranch (2 classifiers, 3 classes, 16 feature channels)"
    with pytest.raises(KeyError, match="unknown model kind 'stylegan9'"):
        kinds.kind_named("stylegan9")

    @dataclasses.dataclass(frozen=True)
    class Other:
        x: int = 0
    with pytest.raises(TypeError, match="no model kind for config type Other"):
        kinds.kind_of(Other())


def test_abstract_models_build_for_every_kind():
    for kind, cfg in [("lpips", lpips.LPIPSConfig()), ("lpips", lpips.LPIPSConfig(net="alex")),
                      ("vgg19-features", vgg19.VGG19Config()),
                      ("pix2pixhd-encoder", pix2pixhd.Pix2PixHDEncoderConfig()),
                      ("editgan-encoder", encoder.EncoderConfig())]:
        model = kinds.kind_named(kind).abstract_model(cfg)
        assert model.config == cfg


def test_renamed_kinds_are_found_by_their_old_name():
    # "lpips-vgg" was the LPIPS kind's name while VGG16 was its only trunk; checkpoints still carry it
    assert kinds.kind_of(lpips.LPIPSConfig(net="alex")).name == "lpips"
    assert kinds.kind_named("lpips-vgg") is kinds.kind_named("lpips")
    assert kinds.canonical_kind("lpips-vgg") == "lpips" and kinds.canonical_kind("segbranch") == "segbranch"
    assert not set(kinds.LEGACY_KIND_NAMES) & set(kinds.MODEL_KINDS)  # an old name never shadows a current one
