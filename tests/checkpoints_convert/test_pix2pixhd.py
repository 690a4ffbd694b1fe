"""pix2pixHD state dicts -> jaxgan models: structure inferred from keys and shapes, strict key maps, running-stat
keys of InstanceNorm layers ignored, netG./netD./netE. prefixes, the input-encoding check, checkpoint round trip.

Input: the fixture's latest_net_G.pth (legacy torch.save, as save_network writes it) and the D / E / G_global
weights of pix2pixhd_small.npz, fed as state dicts through a patched reader (there is no torch here to write .pth
files). Expected values are the file contents, read by the torch-free reader.
"""

import functools

import numpy as np
import pytest
from flax import nnx

import checkpoints_convert.pix2pixhd as conv
from checkpoints_convert.convert import convert_file
from checkpoints_convert.keymap import ConversionError
from checkpoints_convert.torch_reader import load_torch_file
from jaxgan import checkpoint
from jaxgan.models import pix2pixhd as p2p
from tests.helpers import fixture_path, load_fixture

PTH = "pix2pixhd_small_latest_net_G.pth"
LOCAL = p2p.Pix2PixHDGeneratorConfig(input_nc=36, output_nc=3, netG="local", ngf=2, n_downsample_global=4,
                                     n_blocks_global=9, n_local_enhancers=1, n_blocks_local=3, label_nc=35)


@functools.cache
def file_state() -> dict:
    return load_torch_file(fixture_path(PTH))


@functools.cache
def npz_weights(prefix: str) -> dict:
    data, _ = load_fixture("pix2pixhd_small.npz")
    return {k[len(prefix) + 1:]: data[k] for k in data.files if k.startswith(prefix + "/")}


def convert_dict(monkeypatch, state: dict, **kwargs):
    monkeypatch.setattr(conv, "load_torch_file", lambda path: state)
    return conv.convert_pix2pixhd("latest_net_X.pth", **kwargs)


def flat(state) -> dict:
    return {".".join(map(str, p)): np.asarray(v[...]) for p, v in nnx.to_flat_state(state)}


def test_released_layout_file_converts_with_inferred_structure_and_exact_values():
    models, notes = conv.convert_pix2pixhd(fixture_path(PTH))
    assert set(models) == {"G"} and models["G"].config == LOCAL
    params = flat(models["G"].params)
    assert set(params) == set(file_state()) and len(params) == 74
    for key, value in file_state().items():
        np.testing.assert_array_equal(params[key], value, err_msg=key)
        np.testing.assert_array_equal(params[key], npz_weights("G")[key], err_msg=key)
    assert notes["nets"] == ["G"] and notes["ignored_keys"] == [] and not notes["prefixed"]


def test_global_generator_discriminator_and_encoder_are_inferred():
    cases = {"G_global": p2p.Pix2PixHDGeneratorConfig(input_nc=36, ngf=4, n_downsample_global=3, n_blocks_global=4),
             "D": p2p.Pix2PixHDDiscriminatorConfig(input_nc=39, ndf=4, n_layers=3, num_D=2),
             "E": p2p.Pix2PixHDEncoderConfig(input_nc=3, output_nc=3, ngf=4, n_downsampling=4)}
    for prefix, expected in cases.items():
        state = npz_weights(prefix)
        net = conv.infer_net(state)
        assert net == prefix[0]
        model, ignored = conv.convert_state_dict(state, net)
        assert model.config == expected and ignored == []
        assert set(flat(model.params)) == set(state)


def test_prefixed_whole_model_state_dict_gives_G_D_and_E(monkeypatch):
    state = {f"net{p[0]}.{k}": v for p in ("G", "D", "E") for k, v in npz_weights(p).items()}
    models, notes = convert_dict(monkeypatch, state)
    assert set(models) == {"G", "D", "E"} and notes["prefixed"]
    assert models["G"].config == LOCAL
    models, _ = convert_dict(monkeypatch, {f"netG.{k}": v for k, v in file_state().items()})
    assert set(models) == {"G"} and models["G"].config == LOCAL


def test_instance_norm_running_stats_are_ignored_and_recorded(monkeypatch):
    # PyTorch < 0.4 registered running statistics on InstanceNorm2d: model.2 (front norm), a residual block's norm
    stats = {"model.2.running_mean": np.zeros(4, np.float32), "model.2.running_var": np.ones(4, np.float32),
             "model1_2.0.conv_block.2.running_mean": np.zeros(4, np.float32),
             "model1_2.0.conv_block.2.num_batches_tracked": np.array(5, np.int64)}
    models, notes = convert_dict(monkeypatch, {**file_state(), **stats})
    assert notes["ignored_keys"] == sorted(stats)
    assert set(flat(models["G"].params)) == set(file_state())


def test_running_stats_of_a_layer_that_is_not_a_norm_are_refused(monkeypatch):
    state = {**file_state(), "model.1.running_mean": np.zeros(4, np.float32)}
    with pytest.raises(ConversionError, match=r"unknown source keys: model\.1\.running_mean"):
        convert_dict(monkeypatch, state)


@pytest.mark.parametrize("extra,message", [
    ("model.99.weight", r"tensors with no place in the model: model\.99\.weight"),
    ("model1_1.1.scale", r"unknown source keys: model1_1\.1\.scale"),
])
def test_unknown_key_is_named(monkeypatch, extra, message):
    with pytest.raises(ConversionError, match=message):
        convert_dict(monkeypatch, {**file_state(), extra: np.zeros((3,), np.float32)})


def test_missing_key_is_named(monkeypatch):
    state = {k: v for k, v in file_state().items() if k != "model1_2.3.bias"}
    with pytest.raises(ConversionError, match=r"missing model1_2\.3\.bias"):
        convert_dict(monkeypatch, state)


def test_wrong_shape_is_named(monkeypatch):
    state = {**file_state(), "model.16.conv_block.5.bias": np.zeros(5, np.float32)}
    with pytest.raises(ConversionError, match=r"model\.16\.conv_block\.5\.bias has shape \(5,\)"):
        convert_dict(monkeypatch, state)


def test_batch_norm_checkpoint_is_refused(monkeypatch):
    bn = {"model.2.weight": np.ones(4, np.float32), "model.2.bias": np.zeros(4, np.float32),
          "model.2.running_mean": np.zeros(4, np.float32), "model.2.running_var": np.ones(4, np.float32)}
    with pytest.raises(ConversionError, match="model.2 is a BatchNorm layer: norm 'batch' is not supported"):
        convert_dict(monkeypatch, {**file_state(), **bn})


@pytest.mark.parametrize("encoding,message", [
    ({"label_nc": 34}, r"input_nc 36 does not match the input encoding: label_nc 34 \+ 1 instance-edge channel \+ "
                       r"feat_num 0 = 35 \(give the encoding with --label-nc"),
    ({"no_instance": True}, "label_nc 35 \\+ 0 instance-edge channels"),
])
def test_input_encoding_must_match_the_weights(monkeypatch, encoding, message):
    with pytest.raises(ConversionError, match=message):
        convert_dict(monkeypatch, dict(file_state()), **encoding)


def test_encoding_options_need_a_generator_and_overrides_known_fields(monkeypatch):
    with pytest.raises(ConversionError, match="label_nc describe a generator's input, but this file holds netD"):
        convert_dict(monkeypatch, dict(npz_weights("D")), label_nc=35)
    with pytest.raises(ConversionError, match="unknown Pix2PixHDGeneratorConfig fields in the overrides: width"):
        convert_dict(monkeypatch, dict(file_state()), overrides={"G": {"width": 3}})
    models, _ = convert_dict(monkeypatch, dict(npz_weights("D")), overrides={"D": {"use_sigmoid": True}})
    assert models["D"].config.use_sigmoid


def test_not_a_pix2pixhd_state_dict(monkeypatch):
    with pytest.raises(ConversionError, match="not a pix2pixHD generator, discriminator or encoder"):
        convert_dict(monkeypatch, {"features.0.weight": np.zeros((2, 3, 3, 3), np.float32)})


def test_convert_file_round_trip_keeps_weights_and_encoding(tmp_path):
    out = convert_file(fixture_path(PTH), tmp_path / "ck", kind="pix2pixhd", label_nc=35)
    models, sidecar = checkpoint.load_checkpoint(out)
    assert sidecar["models"]["G"]["kind"] == "pix2pixhd-generator"
    assert sidecar["source"]["kind"] == "pix2pixhd" and sidecar["source"]["file"] == PTH
    G = models["G"]
    assert G.config == LOCAL
    params = flat(G.params)
    for key, value in file_state().items():
        np.testing.assert_array_equal(params[key], value, err_msg=key)
    with pytest.raises(ValueError, match="only go with kind 'pix2pixhd'"):
        convert_file(fixture_path(PTH), tmp_path / "other", kind="rosinality", label_nc=35)
    assert not (tmp_path / "other").exists()
