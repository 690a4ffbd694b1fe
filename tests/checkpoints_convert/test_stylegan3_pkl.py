"""checkpoints_convert.stylegan3_pkl: the StyleGAN3 snapshot pickle (sg3_t_res64.pkl) and a G_ema-only export of it,
the constructor arguments read as train.py writes them, and refusals (unknown arguments, a bare state dict)."""

import numpy as np
import pytest

from checkpoints_convert import stylegan2_pkl
from checkpoints_convert.keymap import ConversionError
from checkpoints_convert.stylegan3_pkl import generator_config
from checkpoints_convert.torch_reader import load_network_pickle
from tests.helpers import fixture_path, load_fixture


@pytest.fixture(scope="module")
def snapshot():
    return load_network_pickle(fixture_path("sg3_t_res64.pkl"))


def test_a_g_ema_only_export_converts_to_the_snapshots_generator(monkeypatch, snapshot):
    monkeypatch.setattr(stylegan2_pkl, "load_network_pickle", lambda path: {"G_ema": snapshot["G_ema"]})
    models, notes = stylegan2_pkl.convert_pickle("g_ema_only.pkl")
    assert list(models) == ["G"] and notes["repository"] == "stylegan3"
    data, _ = load_fixture("sg3_t_res64.npz")
    tensors = snapshot["G_ema"].state_dict()
    assert len(tensors) == len([k for k in data.files if k.startswith("param/")])
    for key, value in tensors.items():
        np.testing.assert_array_equal(value, data[f"param/{key}"], err_msg=key)


def test_constructor_arguments_as_train_py_writes_them():
    # stylegan3-r from train.py: conv_kernel 1, radial filters, doubled widths, magnitude_ema_beta from the batch
    cfg = generator_config({"z_dim": 512, "w_dim": 512, "mapping_kwargs": {"num_layers": 2}, "channel_base": 65536,
                            "channel_max": 1024, "magnitude_ema_beta": np.float64(0.5 ** (32 / 20000)), "c_dim": 0,
                            "img_resolution": np.int64(1024), "img_channels": 3, "conv_kernel": 1,
                            "use_radial_filters": True})
    assert (cfg.img_resolution, cfg.conv_kernel, cfg.use_radial_filters, cfg.channel_max) == (1024, 1, True, 1024)
    assert type(cfg.img_resolution) is int and cfg.conv_clamp == 256 and cfg.num_fp16_res == 4
    assert cfg.num_ws == 16 and cfg.mapping.num_layers == 2 and cfg.mapping.w_avg_beta == 0.998


@pytest.mark.parametrize("kwargs,message", [
    ({"synthesis_kwargs": {}}, "unsupported constructor arguments ['synthesis_kwargs']"),
    ({"mapping_kwargs": {"embed_features": 8}}, "mapping_kwargs.embed_features"),
    ({"img_channels": None}, "lack ['img_channels']"),
])
def test_unknown_or_missing_arguments_are_refused(kwargs, message):
    base = {"z_dim": 8, "w_dim": 8, "c_dim": 0, "img_resolution": 64, "img_channels": 3}
    base.update(kwargs)
    base = {k: v for k, v in base.items() if v is not None}
    with pytest.raises(ConversionError, match=message.replace("[", r"\[").replace("]", r"\]")):
        generator_config(base)


def test_a_bare_stylegan3_state_dict_is_refused(snapshot):
    with pytest.raises(ConversionError, match="convert the network pickle"):
        stylegan2_pkl.convert_generator_state_dict(snapshot["G_ema"].state_dict())
