"""stylegan2-ada network pickles -> jaxgan (parity with the official outputs, config parsing, refusals) and the
convert_file front end (format detection, checkpoint directory, atomicity).

Expected numbers come from ../shared/fixtures (outputs of the official stylegan2-ada-pytorch code); arrays NCHW.
"""

import hashlib
import json

import jax
import numpy as np
import pytest
from flax import nnx

import checkpoints_convert.stylegan2_pkl as stylegan2_pkl
from checkpoints_convert.convert import CONVERTER_VERSION, convert_file, detect_kind
from checkpoints_convert.keymap import ConversionError
from checkpoints_convert.stylegan2_pkl import convert_pickle, discriminator_config, generator_config
from checkpoints_convert.torch_reader import CheckpointError, PersistentObject, load_network_pickle
from jaxgan.checkpoint import load_checkpoint
from jaxgan.models import stylegan2
from jaxgan.models.stylegan2 import DiscriminatorConfig, GeneratorConfig
from tests.helpers import fixture_path, load_fixture, nchw_to_nhwc

ATOL = 1e-4
RESOLUTIONS = (4, 8, 16, 32, 64)


def _official_channels(channel_base, channel_max):
    return tuple(min(channel_base // res, channel_max) for res in RESOLUTIONS)


@pytest.fixture(scope="module")
def g_ref():
    arrays, meta = load_fixture("sg2ada_G_res64.npz")
    return {k: arrays[k] for k in arrays.files if k != "meta"}, meta


@pytest.fixture(scope="module")
def d_ref():
    arrays, meta = load_fixture("sg2ada_D_res64.npz")
    return {k: arrays[k] for k in arrays.files if k != "meta"}, meta


@pytest.fixture(scope="module")
def converted():
    return convert_pickle(fixture_path("sg2ada_res64.pkl"))


@pytest.fixture(scope="module")
def snapshot():
    return load_network_pickle(fixture_path("sg2ada_res64.pkl"))


def _convert_data(monkeypatch, data):
    monkeypatch.setattr(stylegan2_pkl, "load_network_pickle", lambda path: data)
    return convert_pickle("in-memory.pkl")


def _flatten(tree, prefix=""):
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = np.asarray(value)
    return flat


# ----------------------------------------------------------------------------------------------------------------
# Parity


def test_sg2ada_pkl_converts_g_ema_and_d(converted):
    models, notes = converted
    assert set(models) == {"G", "D"}
    assert notes["converted"] == {"G": "G_ema", "D": "D"}
    assert notes["networks"]["G_ema"]["class_name"] == "Generator"


@pytest.mark.parametrize("name, psi, cutoff", [("ws_psi1", 1.0, None), ("ws_psi07", 0.7, None),
                                               ("ws_psi05_cut2", 0.5, 2)])
def test_sg2ada_pkl_ws_match_official(converted, g_ref, name, psi, cutoff):
    arrays, _ = g_ref
    G = converted[0]["G"]
    ws = np.asarray(stylegan2.mapping(G, arrays["in/z"], truncation_psi=psi, truncation_cutoff=cutoff))
    assert ws.shape == arrays[f"out/{name}"].shape
    np.testing.assert_allclose(ws, arrays[f"out/{name}"], rtol=0, atol=ATOL)


def test_sg2ada_pkl_image_matches_official(converted, g_ref):
    arrays, _ = g_ref
    G = converted[0]["G"]
    synth = jax.jit(lambda model, ws: stylegan2.synthesis(model, ws, noise_mode="const"))
    img = np.asarray(synth(G, arrays["out/ws_psi1"]))
    want = nchw_to_nhwc(arrays["out/img_const"])
    assert img.shape == want.shape
    np.testing.assert_allclose(img, want, rtol=0, atol=ATOL)


def test_sg2ada_pkl_discriminator_logits_match_official(converted, d_ref):
    arrays, _ = d_ref
    D = converted[0]["D"]
    logits = np.asarray(jax.jit(stylegan2.discriminate)(D, nchw_to_nhwc(arrays["in/img"])))
    assert logits.shape == arrays["out/logits"].shape
    np.testing.assert_allclose(logits, arrays["out/logits"], rtol=0, atol=ATOL)


def test_sg2ada_pkl_configs_follow_init_kwargs(converted, g_ref, d_ref):
    g_kw = g_ref[1]["init_kwargs"]
    d_kw = d_ref[1]["init_kwargs"]
    syn = g_kw["synthesis_kwargs"]
    assert converted[0]["G"].config == GeneratorConfig(
        z_dim=g_kw["z_dim"], c_dim=g_kw["c_dim"], w_dim=g_kw["w_dim"], img_resolution=g_kw["img_resolution"],
        img_channels=g_kw["img_channels"], channels=_official_channels(syn["channel_base"], syn["channel_max"]),
        mapping_layers=g_kw["mapping_kwargs"]["num_layers"], conv_clamp=syn["conv_clamp"])
    assert converted[0]["G"].config.channels == (64, 64, 64, 64, 32)
    assert converted[0]["G"].config.conv_clamp == 256 and converted[0]["G"].config.mapping_layers == 8
    assert converted[0]["D"].config == DiscriminatorConfig(
        c_dim=d_kw["c_dim"], img_resolution=d_kw["img_resolution"], img_channels=d_kw["img_channels"],
        channels=_official_channels(d_kw["channel_base"], d_kw["channel_max"]), conv_clamp=d_kw["conv_clamp"],
        mbstd_group_size=d_kw["epilogue_kwargs"]["mbstd_group_size"])
    assert converted[0]["D"].config.conv_clamp == 256


def test_sg2ada_pkl_weights_are_the_state_dict(converted, g_ref):
    # Every official tensor except the constant FIR buffers lands unchanged under the same name.
    arrays, _ = g_ref
    G = converted[0]["G"]
    got = {**_flatten(nnx.to_pure_dict(G.params)), **_flatten(nnx.to_pure_dict(G.buffers))}
    want = {k[len("param/"):]: v for k, v in arrays.items()
            if k.startswith("param/") and not k.endswith("resample_filter")}
    assert set(got) == set(want)
    for key, value in want.items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)


def _as_persistent(class_name, flat: dict, init_kwargs=None) -> PersistentObject:
    """A pickled-network stand-in holding the flat state dict `flat` as nested torch-style submodules."""
    parameters, children = {}, {}
    for key, value in flat.items():
        head, _, rest = key.partition(".")
        if rest:
            children.setdefault(head, {})[rest] = value
        else:
            parameters[head] = value
    modules = {name: _as_persistent("Module", sub) for name, sub in children.items()}
    return _module(class_name, parameters=parameters, modules=modules, init_kwargs=init_kwargs)


def test_sg2ada_conditional_networks_match_official(monkeypatch):
    # The res32 conditional fixtures (c_dim 5, 2 mapping layers, no clamp, mbstd group 2) have no pickle; wrap their
    # state dicts and init_kwargs as the pickle's persistent objects would hold them.
    g_arrays, g_meta = load_fixture("sg2ada_G_res32_cond.npz")
    d_arrays, d_meta = load_fixture("sg2ada_D_res32_cond.npz")

    def params(arrays):
        return {k[len("param/"):]: arrays[k] for k in arrays.files if k.startswith("param/")}

    data = {"G_ema": _as_persistent("Generator", params(g_arrays), g_meta["init_kwargs"]),
            "D": _as_persistent("Discriminator", params(d_arrays), d_meta["init_kwargs"])}
    assert set(data["G_ema"].state_dict()) == set(params(g_arrays))
    models, _ = _convert_data(monkeypatch, data)
    G, D = models["G"], models["D"]
    assert G.config.c_dim == 5 and G.config.mapping_layers == 2 and G.config.conv_clamp is None
    assert D.config.c_dim == 5 and D.config.mbstd_group_size == 2
    c = g_arrays["in/c"]
    ws = stylegan2.mapping(G, g_arrays["in/z"], c)
    np.testing.assert_allclose(np.asarray(ws), g_arrays["out/ws_psi1"], rtol=0, atol=ATOL)
    ws07 = stylegan2.mapping(G, g_arrays["in/z"], c, truncation_psi=0.7)
    np.testing.assert_allclose(np.asarray(ws07), g_arrays["out/ws_psi07"], rtol=0, atol=ATOL)
    img = jax.jit(lambda model, w: stylegan2.synthesis(model, w, noise_mode="const"))(G, g_arrays["out/ws_psi1"])
    np.testing.assert_allclose(np.asarray(img), nchw_to_nhwc(g_arrays["out/img_const"]), rtol=0, atol=ATOL)
    logits = jax.jit(stylegan2.discriminate)(D, nchw_to_nhwc(d_arrays["in/img"]), d_arrays["in/c"])
    np.testing.assert_allclose(np.asarray(logits), d_arrays["out/logits"], rtol=0, atol=ATOL)


# ----------------------------------------------------------------------------------------------------------------
# Constructor arguments


def _flat_kwargs(init_kwargs):
    """The stylegan3-repo form: synthesis kwargs at the top level, no `synthesis_kwargs`."""
    flat = {k: v for k, v in init_kwargs.items() if k != "synthesis_kwargs"}
    flat.update(init_kwargs["synthesis_kwargs"])
    return flat


def test_generator_config_flat_kwargs_equal_nested(g_ref):
    nested = g_ref[1]["init_kwargs"]
    flat = _flat_kwargs(nested)
    assert "channel_base" in flat and "synthesis_kwargs" not in flat
    assert generator_config(flat) == generator_config(nested)
    # The stylegan3 repo's networks_stylegan2 also passes this execution-only argument.
    assert generator_config({**flat, "fused_modconv_default": "inference_only"}) == generator_config(nested)


@pytest.mark.parametrize("edit, needle", [
    (lambda kw: kw["synthesis_kwargs"].update(foo=1), "foo"),
    (lambda kw: kw["mapping_kwargs"].update(bar=2), "bar"),
    (lambda kw: kw.update(baz=3), "baz"),  # unknown top-level arguments are refused too
])
def test_generator_config_refuses_unknown_kwargs(g_ref, edit, needle):
    kw = json.loads(json.dumps(g_ref[1]["init_kwargs"]))
    edit(kw)
    with pytest.raises(ConversionError, match=needle):
        generator_config(kw)


def test_generator_config_refuses_kernel_size_5(g_ref):
    kw = json.loads(json.dumps(g_ref[1]["init_kwargs"]))
    kw["synthesis_kwargs"]["kernel_size"] = 5
    with pytest.raises(ConversionError, match="kernel_size"):
        generator_config(kw)
    with pytest.raises(ConversionError, match="kernel_size"):
        generator_config(_flat_kwargs(kw))


def test_discriminator_config_refuses_unknown_kwargs(d_ref):
    kw = json.loads(json.dumps(d_ref[1]["init_kwargs"]))
    assert discriminator_config(kw).channels == _official_channels(2048, 64)
    kw["epilogue_kwargs"]["foo"] = 1
    with pytest.raises(ConversionError, match="foo"):
        discriminator_config(kw)


# ----------------------------------------------------------------------------------------------------------------
# Refusals


def _module(class_name, parameters=None, buffers=None, modules=None, init_kwargs=None):
    state = {"_parameters": parameters or {}, "_buffers": buffers or {}, "_modules": modules or {}}
    if init_kwargs is not None:
        state["_init_kwargs"] = init_kwargs
    return PersistentObject(class_name=class_name, module_src_sha256="0" * 64, state=state)


def _stylegan3_generator():
    """A tiny hand-built networks_stylegan3 Generator (names and init_kwargs as in spec §2.6)."""
    c, w = 8, 8
    f32 = np.float32
    mapping = _module("MappingNetwork",
                      modules={f"fc{i}": _module("FullyConnectedLayer", {"weight": np.ones((w, w), f32),
                                                                          "bias": np.zeros(w, f32)})
                               for i in range(2)},
                      buffers={"w_avg": np.zeros(w, f32)})
    synthesis_input = _module("SynthesisInput",
                              parameters={"weight": np.eye(c, dtype=f32)},
                              buffers={"transform": np.eye(3, dtype=f32), "freqs": np.ones((c, 2), f32),
                                       "phases": np.zeros(c, f32)},
                              modules={"affine": _module("FullyConnectedLayer", {"weight": np.zeros((4, w), f32),
                                                                                 "bias": np.array([1, 0, 0, 0], f32)})})
    layer = _module("SynthesisLayer", parameters={"weight": np.ones((c, c, 3, 3), f32), "bias": np.zeros(c, f32)},
                    buffers={"magnitude_ema": np.ones((), f32), "up_filter": np.ones(12, f32)})
    synthesis = _module("SynthesisNetwork", modules={"input": synthesis_input, "L0_36_8": layer})
    init_kwargs = {"z_dim": w, "c_dim": 0, "w_dim": w, "img_resolution": 16, "img_channels": 3,
                   "mapping_kwargs": {"num_layers": 2}, "channel_base": 32768, "channel_max": 512,
                   "magnitude_ema_beta": 0.999, "num_fp16_res": 0, "conv_kernel": 3, "use_radial_filters": False}
    return _module("Generator", modules={"mapping": mapping, "synthesis": synthesis}, init_kwargs=init_kwargs)


def _with_stylegan3_input(g_ema: PersistentObject) -> PersistentObject:
    """The fixture G_ema with a SynthesisInput added under synthesis (copies; the loaded pickle stays intact)."""
    synthesis = g_ema.state["_modules"]["synthesis"]
    fake_input = _module("SynthesisInput", buffers={"freqs": np.ones((64, 2), np.float32)})
    new_synthesis = PersistentObject(synthesis.class_name, synthesis.module_src_sha256,
                                     {**synthesis.state, "_modules": {"input": fake_input,
                                                                      **synthesis.state["_modules"]}})
    return PersistentObject(g_ema.class_name, g_ema.module_src_sha256,
                            {**g_ema.state, "_modules": {**g_ema.state["_modules"], "synthesis": new_synthesis}})


@pytest.mark.parametrize("build", ["hand_built", "fixture_with_input"])
def test_incomplete_stylegan3_generator_is_refused(monkeypatch, snapshot, build):
    """A generator with a StyleGAN3 input goes to the StyleGAN3 converter, which refuses one whose tensors do not
    fill its layers (the hand-built one has a single layer), naming them, or whose constructor arguments are not
    StyleGAN3's (the other: a StyleGAN2 generator's, with a StyleGAN3 input grafted on)."""
    g = _stylegan3_generator() if build == "hand_built" else _with_stylegan3_input(snapshot["G_ema"])
    assert "synthesis.input.freqs" in g.state_dict()
    with pytest.raises(ConversionError) as excinfo:
        _convert_data(monkeypatch, {"G_ema": g, "D": snapshot["D"]})
    message = str(excinfo.value)
    expected = "missing" if build == "hand_built" else "unsupported constructor arguments ['synthesis_kwargs']"
    assert "StyleGAN3 generator" in message and expected in message, message


def test_pickle_without_g_ema_is_refused(monkeypatch, snapshot):
    with pytest.raises(ConversionError, match="G_ema"):
        _convert_data(monkeypatch, {"G": snapshot["G"], "D": snapshot["D"]})


def test_pickle_that_is_not_a_dict_is_refused(monkeypatch, snapshot):
    with pytest.raises(ConversionError, match="G_ema"):
        _convert_data(monkeypatch, [snapshot["G_ema"]])


@pytest.mark.parametrize("d_entry", ["absent", "None"])
def test_pickle_without_d_converts_generator_only(monkeypatch, snapshot, g_ref, d_entry):
    data = {"G_ema": snapshot["G_ema"]} if d_entry == "absent" else {"G_ema": snapshot["G_ema"], "D": None}
    models, notes = _convert_data(monkeypatch, data)
    assert set(models) == {"G"}
    assert notes["converted"] == {"G": "G_ema"}
    arrays, _ = g_ref
    np.testing.assert_allclose(np.asarray(stylegan2.mapping(models["G"], arrays["in/z"])), arrays["out/ws_psi1"],
                               rtol=0, atol=ATOL)


def test_pickle_with_non_network_g_ema_is_refused(monkeypatch):
    with pytest.raises(ConversionError, match="G_ema"):
        _convert_data(monkeypatch, {"G_ema": {"mapping.fc0.weight": np.ones((2, 2))}})


# ----------------------------------------------------------------------------------------------------------------
# convert_file / detect_kind


@pytest.mark.parametrize("name, kind", [
    ("sg2ada_res64.pkl", "stylegan2-ada"),
    ("rosinality_G_res64.pt", "rosinality"),  # torch.save zip archive
    ("pix2pixhd_small_latest_net_G.pth", "rosinality"),  # legacy torch.save stream
    ("lpips_v0.1_vgg_lin.pth", "rosinality"),  # legacy torch.save stream
])
def test_detect_kind_reads_magic_bytes(name, kind):
    assert detect_kind(fixture_path(name)) == kind


def test_detect_kind_ignores_file_names(tmp_path):
    # The detection looks at content: a .pkl copy of a torch zip file is still a torch file, and vice versa.
    pt_named_pkl = tmp_path / "actually_zip.pkl"
    pt_named_pkl.write_bytes(fixture_path("rosinality_G_res64.pt").read_bytes()[:64])
    pkl_named_pt = tmp_path / "actually_pickle.pt"
    pkl_named_pt.write_bytes(fixture_path("sg2ada_res64.pkl").read_bytes()[:64])
    assert detect_kind(pt_named_pkl) == "rosinality"
    assert detect_kind(pkl_named_pt) == "stylegan2-ada"


def test_detect_kind_refuses_other_files():
    with pytest.raises(CheckpointError):
        detect_kind(fixture_path("pix2pixhd_small_label.png"))


def test_convert_file_writes_checkpoint_directory(tmp_path, g_ref, d_ref):
    src = fixture_path("sg2ada_res64.pkl")
    dst = tmp_path / "ckpt"
    out = convert_file(src, dst)
    assert out == dst.resolve() and dst.is_dir()
    sidecar = json.loads((dst / "jaxgan.json").read_text())
    assert sidecar["source"]["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert sidecar["source"]["file"] == src.name
    assert sidecar["source"]["kind"] == "stylegan2-ada"
    assert sidecar["converter"]["version"] == CONVERTER_VERSION
    assert set(sidecar["models"]) == {"G", "D"}
    # The saved weights are the official ones (compared with the fixture, not with the converter's output).
    models, _ = load_checkpoint(dst)
    for name, (arrays, _) in (("G", g_ref), ("D", d_ref)):
        model = models[name]
        got = {**_flatten(nnx.to_pure_dict(model.params)), **_flatten(nnx.to_pure_dict(model.buffers))}
        want = {k[len("param/"):]: v for k, v in arrays.items()
                if k.startswith("param/") and not k.endswith("resample_filter")}
        assert set(got) == set(want), name
        for key, value in want.items():
            np.testing.assert_array_equal(got[key], value, err_msg=f"{name}: {key}")
    # Converting again onto the same destination is refused and leaves it as it was.
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(FileExistsError):
        convert_file(src, dst)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_convert_file_rosinality_pt_writes_generator(tmp_path):
    src = fixture_path("rosinality_G_res64.pt")
    dst = convert_file(src, tmp_path / "ros")
    sidecar = json.loads((dst / "jaxgan.json").read_text())
    assert sidecar["source"]["kind"] == "rosinality"
    assert sidecar["source"]["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert set(sidecar["models"]) == {"G"}


def test_convert_file_refuses_missing_source_and_unknown_kind(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        convert_file(tmp_path / "absent.pkl", tmp_path / "out")
    with pytest.raises(ValueError, match="kind"):
        convert_file(fixture_path("sg2ada_res64.pkl"), tmp_path / "out", kind="stylegan3")
    assert list(tmp_path.iterdir()) == []


def test_convert_file_corrupt_source_leaves_nothing(tmp_path):
    data = fixture_path("sg2ada_res64.pkl").read_bytes()
    src = tmp_path / "truncated.pkl"
    src.write_bytes(data[: len(data) // 2])
    dst = tmp_path / "out"
    with pytest.raises(CheckpointError):
        convert_file(src, dst)
    assert not dst.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["truncated.pkl"]  # no partial / temporary directories


def test_convert_file_unconvertible_source_leaves_nothing(tmp_path, monkeypatch, snapshot):
    # A readable pickle whose networks do not map (a StyleGAN3 generator): ConversionError, nothing written.
    monkeypatch.setattr(stylegan2_pkl, "load_network_pickle", lambda path: {"G_ema": _stylegan3_generator()})
    dst = tmp_path / "out"
    with pytest.raises(ConversionError, match="StyleGAN3"):
        convert_file(fixture_path("sg2ada_res64.pkl"), dst)
    assert list(tmp_path.iterdir()) == []
