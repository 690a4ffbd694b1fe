"""torchvision VGG16 + LPIPS lin weights -> jaxgan LPIPS: strict key maps, fp16 input, checkpoint round trip.

Inputs are the fixture files (vgg16_random_trunk_fp16.pth: float16 `features.*` in the legacy torch.save format;
lpips_v0.1_vgg_lin.pth: the released lin weights). Edited state dicts are fed in through a patched reader, since
there is no torch here to write files; the expected values are the file contents, read by the torch-free reader.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import checkpoints_convert.lpips_vgg as lpips_vgg
from checkpoints_convert.convert import convert_file
from checkpoints_convert.keymap import ConversionError
from checkpoints_convert.torch_reader import load_torch_file
from jaxgan import checkpoint
from jaxgan.models import lpips
from tests.helpers import fixture_path, load_fixture, nchw_to_nhwc

VGG = "vgg16_random_trunk_fp16.pth"
LIN = "lpips_v0.1_vgg_lin.pth"
# Shapes of torchvision vgg16's classifier head, present in the real vgg16-397923af.pth.
CLASSIFIER = {"classifier.0.weight": (4096, 25088), "classifier.0.bias": (4096,),
              "classifier.3.weight": (4096, 4096), "classifier.3.bias": (4096,),
              "classifier.6.weight": (1000, 4096), "classifier.6.bias": (1000,)}


@pytest.fixture(scope="module")
def files():
    return {"vgg": load_torch_file(fixture_path(VGG)), "lin": load_torch_file(fixture_path(LIN))}


@pytest.fixture(scope="module")
def converted():
    return lpips_vgg.convert_lpips_vgg(fixture_path(VGG), fixture_path(LIN))


def _convert_dicts(monkeypatch, vgg: dict, lin: dict):
    """convert_lpips_vgg on in-memory state dicts (the paths only name them)."""
    contents = {"vgg.pth": vgg, "lin.pth": lin}
    monkeypatch.setattr(lpips_vgg, "load_torch_file", lambda path: contents[str(path)])
    monkeypatch.setattr(lpips_vgg, "sha256_of", lambda path: "0" * 64)
    return lpips_vgg.convert_lpips_vgg("vgg.pth", "lin.pth")


def nnx_pure(state) -> dict:
    """{dotted path: numpy array} of an nnx State."""
    return {".".join(map(str, path)): np.asarray(value[...]) for path, value in nnx.to_flat_state(state)}


def test_fp16_trunk_is_converted_to_float32_with_its_exact_values(converted, files):
    assert files["vgg"]["features.0.weight"].dtype == np.float16  # the fixture really is float16
    models, notes = converted
    assert set(models) == {"LPIPS"} and models["LPIPS"].config == lpips.LPIPSConfig()
    params = nnx_pure(models["LPIPS"].params)
    expected = {k: v.astype(np.float32) for k, v in files["vgg"].items()}
    expected.update({f"lin{k}.weight": files["lin"][f"lin{k}.model.1.weight"] for k in range(5)})
    assert set(params) == set(expected)
    for key, value in expected.items():
        assert params[key].dtype == np.float32
        np.testing.assert_array_equal(params[key], value, err_msg=key)
    assert notes["vgg_dtypes"] == ["float16"] and notes["ignored_keys"] == []
    assert notes["lin"]["released_v0.1_vgg"] is True  # the fixture lin file is the released one (spec §3.3 hash)
    assert notes["vgg_is_torchvision_vgg16_397923af"] is False  # a random trunk, not the ImageNet weights


def test_classifier_head_of_the_real_vgg16_file_is_explicitly_ignored(monkeypatch, files):
    vgg = dict(files["vgg"])
    vgg.update({k: np.zeros(shape, np.float32) for k, shape in CLASSIFIER.items()})
    models, notes = _convert_dicts(monkeypatch, vgg, files["lin"])
    assert notes["ignored_keys"] == sorted(CLASSIFIER)
    assert "classifier.0.weight" not in nnx_pure(models["LPIPS"].params)


@pytest.mark.parametrize("extra", ["features.30.weight", "classifier.9.bias", "features.1.weight"])
def test_unknown_vgg_key_is_refused_by_name(monkeypatch, files, extra):
    vgg = {**files["vgg"], extra: np.zeros((4,), np.float16)}
    with pytest.raises(ConversionError, match=rf"vgg\.pth: unknown source keys: {extra}"):
        _convert_dicts(monkeypatch, vgg, files["lin"])


def test_missing_vgg_key_is_named(monkeypatch, files):
    vgg = {k: v for k, v in files["vgg"].items() if k != "features.14.bias"}
    with pytest.raises(ConversionError, match=r"missing features\.14\.bias"):
        _convert_dicts(monkeypatch, vgg, files["lin"])


def test_missing_lin_layer_is_named(monkeypatch, files):
    lin = {k: v for k, v in files["lin"].items() if k != "lin3.model.1.weight"}
    with pytest.raises(ConversionError, match=r"missing lin3\.weight"):
        _convert_dicts(monkeypatch, files["vgg"], lin)


def test_lin_weights_saved_without_dropout_are_refused_not_left_random(monkeypatch, files):
    # LPIPS(use_dropout=False) names them lin{k}.model.0.weight; the official strict=False load then silently keeps
    # random lin layers (spec §3.3). Here the key is refused by name.
    lin = {k.replace("model.1", "model.0"): v for k, v in files["lin"].items()}
    with pytest.raises(ConversionError, match=r"lin\.pth: unknown source keys: lin0\.model\.0\.weight"):
        _convert_dicts(monkeypatch, files["vgg"], lin)


def test_wrong_shape_is_reported(monkeypatch, files):
    vgg = {**files["vgg"], "features.28.bias": np.zeros((256,), np.float16)}
    with pytest.raises(ConversionError, match=r"features\.28\.bias has shape \(256,\), the model expects \(512,\)"):
        _convert_dicts(monkeypatch, vgg, files["lin"])


def test_non_float_weights_are_refused_by_name(monkeypatch, files):
    vgg = {**files["vgg"], "features.0.bias": files["vgg"]["features.0.bias"].astype(np.float64)}
    with pytest.raises(ConversionError, match=r"features\.0\.bias \(float64\)"):
        _convert_dicts(monkeypatch, vgg, files["lin"])


def test_convert_file_round_trip_through_the_checkpoint_keeps_weights_and_distances(tmp_path, converted):
    out = convert_file(fixture_path(VGG), tmp_path / "lpips", kind="lpips-vgg", lin=fixture_path(LIN))
    models, sidecar = checkpoint.load_checkpoint(out)
    assert sidecar["models"] == {"LPIPS": {"kind": "lpips", "config": {"net": "vgg", "version": "0.1"}}}
    assert sidecar["source"]["kind"] == "lpips-vgg" and sidecar["source"]["file"] == VGG
    assert sidecar["source"]["lin"]["file"] == LIN
    loaded, original = models["LPIPS"], converted[0]["LPIPS"]
    assert loaded.config == lpips.LPIPSConfig()
    a, b = nnx_pure(original.params), nnx_pure(loaded.params)
    assert set(a) == set(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    # And the restored model computes the official distance (the fixture's, not one computed by this code).
    data, _ = load_fixture("lpips_vgg_fixture.npz")
    dist = jax.jit(lpips.lpips_distance)(loaded, nchw_to_nhwc(data["in/x2"]), nchw_to_nhwc(data["in/x3"]))
    assert float(jnp.max(jnp.abs(dist - data["out/dist_23"].reshape(-1)))) <= 1e-5


def test_convert_file_requires_lin_exactly_for_lpips(tmp_path):
    with pytest.raises(ValueError, match="lin-weight file"):
        convert_file(fixture_path(VGG), tmp_path / "a", kind="lpips-vgg")
    with pytest.raises(ValueError, match="only goes with kind 'lpips-vgg'"):
        convert_file(fixture_path(VGG), tmp_path / "b", kind="auto", lin=fixture_path(LIN))
    assert list(tmp_path.iterdir()) == []
