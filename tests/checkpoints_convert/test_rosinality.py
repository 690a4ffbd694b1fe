"""rosinality/stylegan2-pytorch `.pt` -> jaxgan: parity with the official outputs and strictness of the key maps.

Expected numbers come from ../shared/fixtures (rosinality_G_res64.npz: outputs of rosinality's own Generator;
sg2ada_D_res64.npz: outputs of the official stylegan2-ada Discriminator). Fixture arrays are NCHW.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import checkpoints_convert.rosinality as rosinality
from checkpoints_convert.keymap import ConversionError
from checkpoints_convert.rosinality import convert_rosinality
from checkpoints_convert.torch_reader import load_torch_file
from jaxgan.models import stylegan2
from jaxgan.models.stylegan2 import DiscriminatorConfig
from jaxgan.nn.split import SplitModel
from tests.helpers import fixture_path, load_fixture, nchw_to_nhwc

ATOL = 1e-4


@pytest.fixture(scope="module")
def reference():
    arrays, meta = load_fixture("rosinality_G_res64.npz")
    return {k: arrays[k] for k in arrays.files if k != "meta"}, meta


@pytest.fixture(scope="module")
def pt_contents():
    """The .pt as the torch-free reader returns it (read once; tests copy before editing)."""
    return load_torch_file(fixture_path("rosinality_G_res64.pt"))


@pytest.fixture(scope="module")
def converted():
    return convert_rosinality(fixture_path("rosinality_G_res64.pt"))


@pytest.fixture(scope="module")
def G(converted):
    return converted[0]["G"]


def _convert_dict(monkeypatch, data):
    """convert_rosinality on an in-memory checkpoint dict (no torch.save available to write one)."""
    monkeypatch.setattr(rosinality, "load_torch_file", lambda path: data)
    return convert_rosinality("in-memory.pt")


def _g_ema_copy(pt_contents):
    return dict(pt_contents["g_ema"])


# ----------------------------------------------------------------------------------------------------------------
# Generator parity


def test_rosinality_pt_converts_generator_only(converted):
    models, notes = converted
    assert set(models) == {"G"}
    assert notes["w_avg"] == "latent_avg"
    assert notes["ignored_entries"] == []


def test_rosinality_pt_config_read_from_shapes(G, reference):
    arrays, meta = reference
    cfg = G.config
    # Independently from the fixture: size 64, style_dim 64, n_mlp 8; channels from tensor shapes (the meta note:
    # low-resolution channels reduced to 64, while res 64 keeps channel_multiplier=1's 256).
    assert cfg.img_resolution == meta["size"] == 64
    assert cfg.z_dim == cfg.w_dim == meta["style_dim"] == arrays["g_ema/style.1.weight"].shape[1]
    assert cfg.mapping_layers == meta["n_mlp"] == 8
    assert cfg.c_dim == 0 and cfg.img_channels == 3
    expected_channels = (arrays["g_ema/input.input"].shape[1],) + tuple(
        arrays[f"g_ema/convs.{2 * i}.activate.bias"].shape[0] for i in range(4))
    assert expected_channels == (64, 64, 64, 64, 256)
    assert cfg.channels == expected_channels
    assert cfg.architecture == "skip" and cfg.conv_clamp is None
    assert cfg.mapping_lr_multiplier == 0.01
    assert cfg.num_ws == arrays["out/latents_psi1"].shape[1] == 10


def test_rosinality_latent_avg_becomes_w_avg_exactly(G, reference):
    arrays, _ = reference
    w_avg = np.asarray(G.module().mapping.w_avg[...])
    assert w_avg.dtype == np.float32
    np.testing.assert_array_equal(w_avg, arrays["latent_avg"])


def test_rosinality_pt_latents_match_official(G, reference):
    arrays, _ = reference
    ws = np.asarray(stylegan2.mapping(G, arrays["in/z"]))
    assert ws.shape == arrays["out/latents_psi1"].shape
    np.testing.assert_allclose(ws, arrays["out/latents_psi1"], rtol=0, atol=ATOL)


def test_rosinality_style_mixing_latents_match_official(G, reference):
    arrays, _ = reference
    ws = stylegan2.mix_styles(stylegan2.mapping(G, arrays["in/z"]), stylegan2.mapping(G, arrays["in/z2"]), 3)
    np.testing.assert_allclose(np.asarray(ws), arrays["out/latents_mix3"], rtol=0, atol=ATOL)


@pytest.fixture(scope="module")
def images(G, reference):
    """All four official image outputs from one jitted call (compiled once)."""
    arrays, _ = reference
    n = arrays["in/z"].shape[0]

    def run(model, z, z2, w):
        ws_psi1 = stylegan2.mapping(model, z)
        ws_from_w = jnp.broadcast_to(w[:, None, :], (n, model.config.num_ws, model.config.w_dim))
        ws_mix3 = stylegan2.mix_styles(ws_psi1, stylegan2.mapping(model, z2), 3)
        imgs = stylegan2.synthesis(model, jnp.concatenate([ws_psi1, ws_from_w, ws_mix3]), noise_mode="const")
        # rosinality: latent_avg + 0.7 * (style - latent_avg) on every layer; jaxgan: psi towards mapping.w_avg.
        img_psi07 = stylegan2.generate(model, z, truncation_psi=0.7, noise_mode="const")
        return imgs[:n], img_psi07, imgs[n:2 * n], imgs[2 * n:]

    out = jax.jit(run)(G, arrays["in/z"], arrays["in/z2"], arrays["in/w"])
    return dict(zip(("img_psi1", "img_psi07", "img_from_w", "img_mix3"), map(np.asarray, out)))


@pytest.mark.parametrize("name", ["img_psi1", "img_psi07", "img_from_w", "img_mix3"])
def test_rosinality_pt_images_match_official(images, reference, name):
    arrays, _ = reference
    want = nchw_to_nhwc(arrays[f"out/{name}"])
    assert images[name].shape == want.shape
    np.testing.assert_allclose(images[name], want, rtol=0, atol=ATOL)


# ----------------------------------------------------------------------------------------------------------------
# Discriminator: no rosinality D fixture exists, so the official stylegan2-ada D weights are written into
# rosinality's layout (inverse of spec §2.3, written here from the spec's table) and must reproduce the official
# logits.


def _rosinality_blur():
    k = np.array([1, 3, 3, 1], np.float32)
    k = np.outer(k, k)
    return k / k.sum()  # rosinality make_kernel: normalised outer product (no x4 on the downsampling paths)


def ada_d_to_rosinality(ada: dict[str, np.ndarray], img_resolution: int) -> dict[str, np.ndarray]:
    """stylegan2-ada D state dict -> rosinality `Discriminator.state_dict()` (spec §2.3 D rows)."""
    blur = _rosinality_blur()
    R = img_resolution
    d = {"convs.0.0.weight": ada[f"b{R}.fromrgb.weight"], "convs.0.1.bias": ada[f"b{R}.fromrgb.bias"]}
    used = {f"b{R}.fromrgb.weight", f"b{R}.fromrgb.bias"}
    i, res = 1, R
    while res > 4:  # ResBlock convs.{i} works at resolution R / 2**(i-1)
        pairs = {
            f"convs.{i}.conv1.0.weight": f"b{res}.conv0.weight",
            f"convs.{i}.conv1.1.bias": f"b{res}.conv0.bias",
            f"convs.{i}.conv2.1.weight": f"b{res}.conv1.weight",
            f"convs.{i}.conv2.2.bias": f"b{res}.conv1.bias",
            f"convs.{i}.skip.1.weight": f"b{res}.skip.weight",
        }
        d.update({ros: ada[src] for ros, src in pairs.items()})
        used.update(pairs.values())
        d[f"convs.{i}.conv2.0.kernel"] = blur
        d[f"convs.{i}.skip.0.kernel"] = blur
        i, res = i + 1, res // 2
    pairs = {"final_conv.0.weight": "b4.conv.weight", "final_conv.1.bias": "b4.conv.bias",
             "final_linear.0.weight": "b4.fc.weight", "final_linear.0.bias": "b4.fc.bias",
             "final_linear.1.weight": "b4.out.weight", "final_linear.1.bias": "b4.out.bias"}
    d.update({ros: ada[src] for ros, src in pairs.items()})
    used.update(pairs.values())
    # The inverse map itself must be complete: every ADA tensor but the constant FIR buffers went somewhere.
    assert used == {k for k in ada if not k.endswith("resample_filter")}
    return d


@pytest.fixture(scope="module")
def sg2ada_d():
    arrays, meta = load_fixture("sg2ada_D_res64.npz")
    params = {k[len("param/"):]: arrays[k] for k in arrays.files if k.startswith("param/")}
    return params, {k: arrays[k] for k in ("in/img", "out/logits")}, meta


def test_rosinality_discriminator_logits_match_official(monkeypatch, pt_contents, sg2ada_d):
    params, io, meta = sg2ada_d
    data = {"g_ema": _g_ema_copy(pt_contents), "latent_avg": pt_contents["latent_avg"],
            "d": ada_d_to_rosinality(params, 64)}
    models, _ = _convert_dict(monkeypatch, data)
    assert set(models) == {"G", "D"}
    D = models["D"]
    kw = meta["init_kwargs"]
    expected_channels = tuple(min(kw["channel_base"] // r, kw["channel_max"]) for r in (4, 8, 16, 32, 64))
    assert D.config == DiscriminatorConfig(c_dim=0, img_resolution=64, img_channels=3, channels=expected_channels,
                                           architecture="resnet", conv_clamp=None, mbstd_group_size=4,
                                           mbstd_num_channels=1)
    img = nchw_to_nhwc(io["in/img"])
    discriminate = jax.jit(stylegan2.discriminate)
    logits = np.asarray(discriminate(D, img))
    np.testing.assert_allclose(logits, io["out/logits"], rtol=0, atol=ATOL)
    # rosinality's D has no conv clamp, the official logits were computed with conv_clamp=256. That comparison is
    # valid because no activation in this network comes near the clamp: measured, a clamp as low as 10 still
    # leaves the logits bit-identical (activations are O(1)). Assert the premise: clamp 256 vs none, same numbers.
    clamped_cfg = dataclasses.replace(D.config, conv_clamp=256)
    D_clamped = SplitModel(stylegan2.abstract_model(clamped_cfg).graphdef, D.params, D.buffers)
    np.testing.assert_array_equal(np.asarray(discriminate(D_clamped, img)), logits)


def test_rosinality_discriminator_refuses_altered_blur(monkeypatch, pt_contents, sg2ada_d):
    params, _, _ = sg2ada_d
    d = ada_d_to_rosinality(params, 64)
    d["convs.2.skip.0.kernel"] = d["convs.2.skip.0.kernel"] * 4  # an upsampling kernel where a blur belongs
    data = {"g_ema": _g_ema_copy(pt_contents), "latent_avg": pt_contents["latent_avg"], "d": d}
    with pytest.raises(ConversionError, match=r"convs\.2\.skip\.0\.kernel"):
        _convert_dict(monkeypatch, data)


# ----------------------------------------------------------------------------------------------------------------
# Training checkpoints without latent_avg


def test_rosinality_without_latent_avg_estimates_w_avg(monkeypatch, pt_contents, reference):
    arrays, _ = reference
    models, notes = _convert_dict(monkeypatch, {"g_ema": _g_ema_copy(pt_contents)})
    assert notes["w_avg"].startswith("estimated")
    G = models["G"]
    w_avg = np.asarray(G.module().mapping.w_avg[...])
    # Independent estimate: numpy-seeded z through the mapping network, more samples than the converter uses.
    z = np.random.RandomState(123).randn(20_000, G.config.z_dim).astype(np.float32)
    w = np.asarray(stylegan2.mapping(G, z)[:, 0])
    mean, std = w.mean(axis=0), w.std(axis=0)
    # Standard error of the difference of two independent sample means (10k and 20k samples), 6 sigma per entry.
    tol = 6 * std * np.sqrt(1 / rosinality.W_AVG_SAMPLES + 1 / len(z))
    assert np.all(np.abs(w_avg - mean) <= tol), np.max(np.abs(w_avg - mean) / tol)
    # Non-vacuous: the zero placeholder and the checkpoint's (perturbed) latent_avg are both far from the mean.
    assert not np.all(np.abs(mean) <= tol)
    assert not np.allclose(w_avg, arrays["latent_avg"])
    # The rest of the network is the same as with latent_avg.
    ws = stylegan2.mapping(G, arrays["in/z"])
    np.testing.assert_allclose(np.asarray(ws), arrays["out/latents_psi1"], rtol=0, atol=ATOL)


# ----------------------------------------------------------------------------------------------------------------
# Strictness


def test_rosinality_unknown_generator_key_is_refused(monkeypatch, pt_contents):
    g = _g_ema_copy(pt_contents)
    g["convs.3.conv.extra_scale"] = np.ones((64,), np.float32)
    with pytest.raises(ConversionError, match=r"convs\.3\.conv\.extra_scale"):
        _convert_dict(monkeypatch, {"g_ema": g, "latent_avg": pt_contents["latent_avg"]})


def test_rosinality_missing_generator_tensor_is_refused(monkeypatch, pt_contents):
    g = _g_ema_copy(pt_contents)
    del g["convs.3.activate.bias"]  # convs.3 = second conv of the 16x16 block
    with pytest.raises(ConversionError, match=r"missing source keys: convs\.3\.activate\.bias"):
        _convert_dict(monkeypatch, {"g_ema": g, "latent_avg": pt_contents["latent_avg"]})


@pytest.mark.parametrize("key", ["convs.2.conv.blur.kernel", "to_rgbs.1.upsample.kernel"])
def test_rosinality_altered_fir_buffer_is_refused(monkeypatch, pt_contents, key):
    g = _g_ema_copy(pt_contents)
    g[key] = g[key] / 4  # a normalised kernel without the x4 upsampling gain
    with pytest.raises(ConversionError, match="unsupported constant buffers") as excinfo:
        _convert_dict(monkeypatch, {"g_ema": g, "latent_avg": pt_contents["latent_avg"]})
    assert key in str(excinfo.value)


def test_rosinality_checkpoint_without_g_ema_is_refused(monkeypatch, pt_contents):
    with pytest.raises(ConversionError, match="g_ema"):
        _convert_dict(monkeypatch, {"g": _g_ema_copy(pt_contents)})
