"""torchvision VGG16 / AlexNet + LPIPS lin weights -> jaxgan LPIPS: strict key maps, fp16 input, checkpoint round
trip, for both nets.

Inputs are the fixture files (vgg16_random_trunk_fp16.pth: float16 `features.*` in the legacy torch.save format;
alexnet_random_trunk.pth: float32 `features.{0,3,6,8,10}.*` in the zip format; lpips_v0.1_{vgg,alex}_lin.pth: the
released lin weights). Edited state dicts are fed in through a patched reader, since there is no torch here to
write files; the expected values are the file contents, read by the torch-free reader.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import checkpoints_convert.lpips as lpips_convert
from checkpoints_convert.convert import convert_file
from checkpoints_convert.keymap import ConversionError
from checkpoints_convert.torch_reader import load_torch_file, sniff_format
from jaxgan import checkpoint
from jaxgan.models import lpips
from tests.helpers import fixture_path, load_fixture, nchw_to_nhwc

VGG = "vgg16_random_trunk_fp16.pth"
LIN = "lpips_v0.1_vgg_lin.pth"
ALEX = "alexnet_random_trunk.pth"
ALEX_LIN = "lpips_v0.1_alex_lin.pth"
# Shapes of torchvision vgg16's classifier head, present in the real vgg16-397923af.pth.
CLASSIFIER = {"classifier.0.weight": (4096, 25088), "classifier.0.bias": (4096,),
              "classifier.3.weight": (4096, 4096), "classifier.3.bias": (4096,),
              "classifier.6.weight": (1000, 4096), "classifier.6.bias": (1000,)}
# torchvision alexnet's classifier (Dropout, Linear, ReLU, Dropout, Linear, ReLU, Linear): its Linear layers, in
# the real alexnet-owt-7be5be79.pth.
ALEX_CLASSIFIER = {"classifier.1.weight": (4096, 9216), "classifier.1.bias": (4096,),
                   "classifier.4.weight": (4096, 4096), "classifier.4.bias": (4096,),
                   "classifier.6.weight": (1000, 4096), "classifier.6.bias": (1000,)}


@pytest.fixture(scope="module")
def files():
    return {"vgg": load_torch_file(fixture_path(VGG)), "lin": load_torch_file(fixture_path(LIN)),
            "alex": load_torch_file(fixture_path(ALEX)), "alex_lin": load_torch_file(fixture_path(ALEX_LIN))}


@pytest.fixture(scope="module")
def converted():
    return lpips_convert.convert_lpips(fixture_path(VGG), fixture_path(LIN))


@pytest.fixture(scope="module")
def converted_alex():
    return lpips_convert.convert_lpips(fixture_path(ALEX), fixture_path(ALEX_LIN), net="alex")


def _convert_dicts(monkeypatch, trunk: dict, lin: dict, net: str = "vgg"):
    """convert_lpips on in-memory state dicts (the paths only name them)."""
    contents = {f"{net}.pth": trunk, "lin.pth": lin}
    monkeypatch.setattr(lpips_convert, "load_torch_file", lambda path: contents[str(path)])
    monkeypatch.setattr(lpips_convert, "sha256_of", lambda path: "0" * 64)
    return lpips_convert.convert_lpips(f"{net}.pth", "lin.pth", net)


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


def test_alexnet_trunk_from_a_zip_file_keeps_its_exact_values(converted_alex, files):
    assert sniff_format(fixture_path(ALEX)) == "torch-zip"  # the zip reader, where the vgg fixture is legacy
    models, notes = converted_alex
    assert set(models) == {"LPIPS"} and models["LPIPS"].config == lpips.LPIPSConfig(net="alex")
    params = nnx_pure(models["LPIPS"].params)
    expected = dict(files["alex"])
    expected.update({f"lin{k}.weight": files["alex_lin"][f"lin{k}.model.1.weight"] for k in range(5)})
    assert set(params) == set(expected)
    assert sorted(k for k in params if k.startswith("features.")) == sorted(
        f"features.{i}.{p}" for i in (0, 3, 6, 8, 10) for p in ("weight", "bias"))
    for key, value in expected.items():
        assert params[key].dtype == np.float32
        np.testing.assert_array_equal(params[key], value, err_msg=key)
    assert notes["format"] == "torchvision-alexnet + lpips-v0.1-lin"
    assert notes["alex_dtypes"] == ["float32"] and notes["ignored_keys"] == []
    # FIXTURES.md: a byte copy of the released lpips/weights/v0.1/alex.pth (spec §3.3 SHA-256 df73285e...)
    assert notes["lin"]["released_v0.1_alex"] is True
    assert notes["lin"]["sha256"] == "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0"
    assert notes["alex_is_torchvision_alexnet_owt_7be5be79"] is False  # a random trunk


@pytest.mark.parametrize("net,trunk,head", [("vgg", "vgg", CLASSIFIER), ("alex", "alex", ALEX_CLASSIFIER)])
def test_classifier_head_of_the_real_torchvision_file_is_explicitly_ignored(monkeypatch, files, net, trunk, head):
    state = dict(files[trunk])
    state.update({k: np.zeros(shape, np.float32) for k, shape in head.items()})
    lin = files["lin" if net == "vgg" else "alex_lin"]
    models, notes = _convert_dicts(monkeypatch, state, lin, net)
    assert notes["ignored_keys"] == sorted(head)
    assert not any(k.startswith("classifier.") for k in nnx_pure(models["LPIPS"].params))


@pytest.mark.parametrize("extra", ["features.30.weight", "classifier.9.bias", "features.1.weight"])
def test_unknown_vgg_key_is_refused_by_name(monkeypatch, files, extra):
    vgg = {**files["vgg"], extra: np.zeros((4,), np.float16)}
    with pytest.raises(ConversionError, match=rf"vgg\.pth: unknown source keys: {extra}"):
        _convert_dicts(monkeypatch, vgg, files["lin"])


# features.12 is alexnet's last pool (no weights), classifier.0 / .3 its Dropouts, classifier.3 a vgg head index;
# features.2 a vgg conv index that is alexnet's first pool.
@pytest.mark.parametrize("extra", ["features.12.weight", "classifier.0.weight", "classifier.3.bias",
                                   "features.2.weight"])
def test_unknown_alexnet_key_is_refused_by_name(monkeypatch, files, extra):
    alex = {**files["alex"], extra: np.zeros((4,), np.float32)}
    with pytest.raises(ConversionError, match=rf"alex\.pth: unknown source keys: {extra}"):
        _convert_dicts(monkeypatch, alex, files["alex_lin"], "alex")


def test_missing_vgg_key_is_named(monkeypatch, files):
    vgg = {k: v for k, v in files["vgg"].items() if k != "features.14.bias"}
    with pytest.raises(ConversionError, match=r"missing features\.14\.bias"):
        _convert_dicts(monkeypatch, vgg, files["lin"])


def test_missing_alexnet_key_is_named(monkeypatch, files):
    alex = {k: v for k, v in files["alex"].items() if k != "features.8.bias"}
    with pytest.raises(ConversionError, match=r"missing features\.8\.bias"):
        _convert_dicts(monkeypatch, alex, files["alex_lin"], "alex")


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


def test_the_other_nets_files_are_refused(files):
    # an alexnet trunk as vgg's: its convs 3, 6 and 8 are ReLU / pool positions of vgg16().features
    with pytest.raises(ConversionError, match=r"alexnet_random_trunk\.pth: unknown source keys: features\.3\.bias, "
                                              r"features\.3\.weight, features\.6\.bias, features\.6\.weight, "
                                              r"features\.8\.bias, features\.8\.weight$"):
        lpips_convert.convert_lpips(fixture_path(ALEX), fixture_path(LIN), net="vgg")
    # the vgg lin weights with an alexnet trunk: the widths are vgg's
    with pytest.raises(ConversionError, match=r"lin1\.weight has shape \(1, 128, 1, 1\), the model expects "
                                              r"\(1, 192, 1, 1\)"):
        lpips_convert.convert_lpips(fixture_path(ALEX), fixture_path(LIN), net="alex")
    with pytest.raises(ValueError, match="net must be one of"):
        lpips_convert.convert_lpips(fixture_path(ALEX), fixture_path(ALEX_LIN), net="squeeze")


def test_non_float_weights_are_refused_by_name(monkeypatch, files):
    vgg = {**files["vgg"], "features.0.bias": files["vgg"]["features.0.bias"].astype(np.float64)}
    with pytest.raises(ConversionError, match=r"features\.0\.bias \(float64\)"):
        _convert_dicts(monkeypatch, vgg, files["lin"])


@pytest.mark.parametrize("kind,trunk,lin,net,fixture", [("lpips-vgg", VGG, LIN, "vgg", "lpips_vgg_fixture.npz"),
                                                        ("lpips-alex", ALEX, ALEX_LIN, "alex",
                                                         "lpips_alex_fixture.npz")])
def test_convert_file_round_trip_through_the_checkpoint_keeps_weights_and_distances(tmp_path, converted,
                                                                                    converted_alex, kind, trunk, lin,
                                                                                    net, fixture):
    out = convert_file(fixture_path(trunk), tmp_path / "lpips", kind=kind, lin=fixture_path(lin))
    models, sidecar = checkpoint.load_checkpoint(out)
    assert sidecar["models"] == {"LPIPS": {"kind": "lpips", "config": {"net": net, "version": "0.1"}}}
    assert sidecar["source"]["kind"] == kind and sidecar["source"]["file"] == trunk
    assert sidecar["source"]["lin"]["file"] == lin
    loaded, original = models["LPIPS"], (converted if net == "vgg" else converted_alex)[0]["LPIPS"]
    assert loaded.config == lpips.LPIPSConfig(net=net)
    a, b = nnx_pure(original.params), nnx_pure(loaded.params)
    assert set(a) == set(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    # And the restored model computes the official distance (the fixture's, not one computed by this code).
    data, _ = load_fixture(fixture)
    dist = jax.jit(lpips.lpips_distance)(loaded, nchw_to_nhwc(data["in/x2"]), nchw_to_nhwc(data["in/x3"]))
    assert float(jnp.max(jnp.abs(dist - data["out/dist_23"].reshape(-1)))) <= 1e-5


def test_convert_file_requires_lin_exactly_for_lpips(tmp_path):
    with pytest.raises(ValueError, match="lin-weight file"):
        convert_file(fixture_path(VGG), tmp_path / "a", kind="lpips-vgg")
    with pytest.raises(ValueError, match="kind 'lpips-alex' needs the LPIPS lin-weight file"):
        convert_file(fixture_path(ALEX), tmp_path / "a", kind="lpips-alex")
    with pytest.raises(ValueError, match="only goes with kind 'lpips-vgg' or 'lpips-alex', not 'auto'"):
        convert_file(fixture_path(VGG), tmp_path / "b", kind="auto", lin=fixture_path(LIN))
    with pytest.raises(ValueError, match="only goes with kind 'lpips-vgg' or 'lpips-alex', not 'segbranch'"):
        convert_file(fixture_path(VGG), tmp_path / "c", kind="segbranch", lin=fixture_path(LIN))
    assert list(tmp_path.iterdir()) == []
