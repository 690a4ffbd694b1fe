"""`checkpoints_convert.export`: jaxgan generators written back in the official layouts, checked against the official
state dicts of the fixtures (sg2ada_G_res64.npz `param/*`, rosinality_G_res64.npz `g_ema/*` + `latent_avg`: names,
order, shapes, values), and round trips convert -> export -> convert (bit-identical leaves, the same config where the
format holds it) for both formats and both layouts, on the fixtures and the bundled demo model."""

import dataclasses

import jax
import numpy as np
import pytest
from flax import nnx

from checkpoints_convert.convert import detect_kind
from checkpoints_convert.export import export_generator
from checkpoints_convert.keymap import ConversionError
from checkpoints_convert.rosinality import convert_rosinality
from checkpoints_convert.safetensors_file import convert_safetensors, read_safetensors
from checkpoints_convert.stylegan2_pkl import convert_generator_file, convert_pickle
from checkpoints_convert.torch_reader import CheckpointError, load_torch_file
from jaxgan.checkpoint import load_model
from jaxgan.demo import bundled_checkpoint
from jaxgan.models.stylegan2 import GeneratorConfig, init_generator
from tests.helpers import fixture_path, load_fixture

READ_BACK = {"stylegan2-ada-pt": convert_generator_file, "rosinality": convert_rosinality,
             "safetensors": convert_safetensors}


def leaves(G) -> dict:
    return {".".join(map(str, path)): np.asarray(v[...]) for part in (G.params, G.buffers)
            for path, v in nnx.to_flat_state(part)}


def assert_same_leaves(got, want):
    a, b = leaves(got), leaves(want)
    assert list(sorted(a)) == list(sorted(b))
    for key in b:
        assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.fixture(scope="module")
def sg2ada():
    return convert_pickle(fixture_path("sg2ada_res64.pkl"))[0]["G"]


@pytest.fixture(scope="module")
def rosinality():
    return convert_rosinality(fixture_path("rosinality_G_res64.pt"))[0]["G"]


def round_trip(G, tmp_path, fmt, layout):
    out, notes = export_generator(G, tmp_path / f"G.{fmt}", fmt=fmt, layout=layout)
    kind = detect_kind(out)
    assert kind == ("safetensors" if fmt == "safetensors" else
                    "rosinality" if layout == "rosinality" else "stylegan2-ada-pt")
    return READ_BACK[kind](out)[0]["G"], notes


def test_sg2ada_export_is_the_official_state_dict(sg2ada, tmp_path):
    arrays, _ = load_fixture("sg2ada_G_res64.npz")
    want = {k[len("param/"):]: arrays[k] for k in arrays.files if k.startswith("param/")}
    out, _ = export_generator(sg2ada, tmp_path / "G.pt", fmt="pt", layout="stylegan2-ada")
    for got in (load_torch_file(out), read_safetensors(
            export_generator(sg2ada, tmp_path / "G.safetensors", fmt="safetensors", layout="stylegan2-ada")[0])[0]):
        assert set(got) == set(want)  # resample_filter, noise_const and w_avg buffers included
        for key, value in want.items():
            assert got[key].shape == value.shape and got[key].dtype == np.float32, key
            np.testing.assert_array_equal(got[key], value, err_msg=key)
    assert list(load_torch_file(out)) == list(want)  # the official state_dict() order


def test_rosinality_export_is_the_official_checkpoint(rosinality, tmp_path):
    arrays, _ = load_fixture("rosinality_G_res64.npz")
    want = {k[len("g_ema/"):]: arrays[k] for k in arrays.files if k.startswith("g_ema/")}
    out, _ = export_generator(rosinality, tmp_path / "G.pt", fmt="pt", layout="rosinality")
    got = load_torch_file(out)
    assert sorted(got) == ["g_ema", "latent_avg"] and list(got["g_ema"]) == list(want)
    for key, value in want.items():
        assert got["g_ema"][key].shape == value.shape, key
        np.testing.assert_array_equal(got["g_ema"][key], value, err_msg=key)
    original = load_torch_file(fixture_path("rosinality_G_res64.pt"))
    assert got["latent_avg"].shape == original["latent_avg"].shape
    np.testing.assert_array_equal(got["latent_avg"], arrays["latent_avg"])


@pytest.mark.parametrize("fmt", ["pt", "safetensors"])
def test_sg2ada_round_trip(sg2ada, tmp_path, fmt):
    back, notes = round_trip(sg2ada, tmp_path, fmt, "stylegan2-ada")
    assert_same_leaves(back, sg2ada)
    if fmt == "safetensors":
        assert back.config == sg2ada.config and notes == []
    else:  # conv_clamp (256 in the fixture) is in no tensor shape: the official default comes back, and a note says so
        assert sg2ada.config.conv_clamp == 256
        assert back.config == dataclasses.replace(sg2ada.config, conv_clamp=None)
        assert len(notes) == 1 and "conv_clamp=256" in notes[0]


@pytest.mark.parametrize("fmt, layout", [("pt", "rosinality"), ("safetensors", "rosinality"),
                                         ("pt", "stylegan2-ada"), ("safetensors", "stylegan2-ada")])
def test_rosinality_round_trip(rosinality, tmp_path, fmt, layout):
    back, _ = round_trip(rosinality, tmp_path, fmt, layout)
    assert_same_leaves(back, rosinality)
    assert back.config == rosinality.config


@pytest.mark.parametrize("fmt, layout", [("pt", "stylegan2-ada"), ("safetensors", "rosinality")])
def test_demo_round_trip(tmp_path, fmt, layout):
    G = load_model(bundled_checkpoint())
    back, notes = round_trip(G, tmp_path, fmt, layout)
    assert_same_leaves(back, G)
    assert back.config == G.config and notes == []


def test_conditional_sg2ada_round_trip(tmp_path):
    arrays, meta = load_fixture("sg2ada_G_res32_cond.npz")
    from checkpoints_convert.stylegan2_pkl import convert_state_dict
    G = convert_state_dict("Generator", meta["init_kwargs"],
                           {k[len("param/"):]: arrays[k] for k in arrays.files if k.startswith("param/")})
    back, _ = round_trip(G, tmp_path, "pt", "stylegan2-ada")
    assert back.config.c_dim == 5
    assert_same_leaves(back, G)
    with pytest.raises(ConversionError, match="c_dim=5"):
        export_generator(G, tmp_path / "R.pt", fmt="pt", layout="rosinality")
    assert not (tmp_path / "R.pt").exists()


def test_rosinality_refuses_what_it_cannot_represent(tmp_path):
    cfg = GeneratorConfig(z_dim=8, c_dim=0, w_dim=8, img_resolution=8, img_channels=3, channels=(8, 8),
                          mapping_layers=2, architecture="resnet", mapping_lr_multiplier=0.1, conv_clamp=256)
    G = init_generator(cfg, jax.random.key(0))
    with pytest.raises(ConversionError, match="architecture='resnet'.*mapping_lr_multiplier=0.1") as excinfo:
        export_generator(G, tmp_path / "R.safetensors", fmt="safetensors", layout="rosinality")
    assert "\n" not in str(excinfo.value) and "conv_clamp=256" in str(excinfo.value)
    assert list(tmp_path.iterdir()) == []


def test_existing_out_and_unknown_layout_are_refused(sg2ada, tmp_path):
    out = tmp_path / "G.pt"
    out.write_bytes(b"mine")
    with pytest.raises(FileExistsError):
        export_generator(sg2ada, out, fmt="pt", layout="stylegan2-ada")
    assert out.read_bytes() == b"mine"
    with pytest.raises(ValueError, match="layout"):
        export_generator(sg2ada, tmp_path / "x.pt", fmt="pt", layout="tf")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["G.pt"]


def test_plain_safetensors_state_dict_is_read(sg2ada, tmp_path):
    # A safetensors file without jaxgan metadata (the official state dict of the fixture, saved by anyone): the layout
    # from its keys, the config from its shapes.
    from safetensors.numpy import save_file
    arrays, _ = load_fixture("sg2ada_G_res64.npz")
    path = tmp_path / "official.safetensors"
    save_file({k[len("param/"):]: arrays[k] for k in arrays.files if k.startswith("param/")}, str(path))
    assert detect_kind(path) == "safetensors"
    G, notes = convert_safetensors(path)
    assert notes["layout"] == "stylegan2-ada" and "shapes" in notes["config"]
    assert_same_leaves(G["G"], sg2ada)
    path.write_bytes(path.read_bytes()[:200])  # truncated
    with pytest.raises(CheckpointError, match="official.safetensors") as excinfo:
        convert_safetensors(path)
    assert "\n" not in str(excinfo.value)
