"""The StyleGAN2 architectures the default parity tests do not reach, against the official stylegan2-ada-pytorch
outputs (../shared/fixtures): generator 'orig' and 'resnet' (the default fixtures are 'skip'), discriminator
'orig' and 'skip' (the default fixtures are 'resnet').

Weights come straight from each fixture's state dict (`param/<key>`). Each network is compiled once per file: one
jitted call returns every output a fixture holds (mapping at three truncations, images fused and unfused, with
and without noise, block features, the gradient). Tolerances as test_stylegan2_parity.py (FIXTURES.md): 1e-4 max
abs on latents, images, features and logits; 1e-3 relative (max abs error / max abs value) on gradients.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.models import stylegan2
from tests.helpers import discriminator_fixture, generator_fixture, nchw_to_nhwc

ATOL = 1e-4
GRAD_RTOL = 1e-3
ARCH_GENERATORS = ["sg2ada_G_res32_orig.npz", "sg2ada_G_res32_resnet.npz"]
ARCH_DISCRIMINATORS = ["sg2ada_D_res32_orig.npz", "sg2ada_D_res32_skip.npz"]
TRUNCATIONS = {"ws_psi1": {}, "ws_psi07": {"truncation_psi": 0.7},
               "ws_psi05_cut2": {"truncation_psi": 0.5, "truncation_cutoff": 2}}


def max_err(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


def assert_grad_close(got, want):
    assert np.shape(got) == np.shape(want)
    assert max_err(got, want) / float(np.max(np.abs(want))) <= GRAD_RTOL


@functools.cache
def generator_outputs(name):
    """Every output of fixture `name`'s generator, from one compiled call: (outputs dict, arrays, meta)."""
    G, data, meta = generator_fixture(name)
    projection = jnp.asarray(nchw_to_nhwc(data["in/grad_projection"]))

    @jax.jit
    def run(G, z, c, ws):
        out = {key: stylegan2.mapping(G, z, c, **kwargs) for key, kwargs in TRUNCATIONS.items()}

        out["img_const"], out["features"] = stylegan2.synthesis(G, ws, fused_modconv=True, return_features=True)
        out["img_none"] = stylegan2.synthesis(G, ws, noise_mode="none", fused_modconv=True)

        def loss(ws):  # unfused: its gradient compiles faster than the fused one's, and equals it to 1e-5
            img = stylegan2.synthesis(G, ws, fused_modconv=False)
            return jnp.sum(img * projection), img

        (_, out["img_const_unfused"]), out["grad_ws"] = jax.value_and_grad(loss, has_aux=True)(ws)
        return out

    out = run(G, jnp.asarray(data["in/z"]), jnp.asarray(data["in/c"]), jnp.asarray(data["out/ws_psi1"]))
    return jax.tree.map(np.asarray, out), data, meta


@pytest.mark.parametrize("name", ARCH_GENERATORS)
def test_generator_layout_is_the_official_one(name):
    G, _, meta = generator_fixture(name)
    cfg = G.module().synthesis.cfg
    assert cfg.architecture == meta["architecture"]
    assert cfg.num_ws == meta["num_ws"]
    for res, block in meta["blocks"].items():
        ours = getattr(G.module().synthesis, f"b{res}")
        assert (ours.num_conv, ours.num_torgb) == (block["num_conv"], block["num_torgb"]), res
        assert hasattr(ours, "skip") == block["has_skip"], res


@pytest.mark.parametrize("name", ARCH_GENERATORS)
@pytest.mark.parametrize("key", list(TRUNCATIONS))
def test_generator_mapping_matches_official(name, key):
    out, data, _ = generator_outputs(name)
    assert out[key].shape == data[f"out/{key}"].shape
    assert max_err(out[key], data[f"out/{key}"]) <= ATOL


@pytest.mark.parametrize("name", ARCH_GENERATORS)
@pytest.mark.parametrize("key", ["img_const", "img_none", "img_const_unfused", "img_b32_const"])
def test_generator_images_match_official(name, key):
    out, data, _ = generator_outputs(name)
    ours = out["img_const" if key == "img_b32_const" else key]  # b32 is the only block that returns an image
    want = nchw_to_nhwc(data[f"out/{key}"])
    assert ours.shape == want.shape
    assert max_err(ours, want) <= ATOL


@pytest.mark.parametrize("name", ARCH_GENERATORS)
def test_generator_block_features_match_official(name):
    out, data, meta = generator_outputs(name)
    assert len(out["features"]) == len(meta["block_resolutions"])
    for res, feature in zip(meta["block_resolutions"], out["features"]):
        want = nchw_to_nhwc(data[f"out/feat_b{res}_const"])
        assert feature.shape == want.shape, res
        assert max_err(feature, want) <= ATOL, res


@pytest.mark.parametrize("name", ARCH_GENERATORS)
def test_generator_gradient_wrt_ws_matches_official(name):
    out, data, _ = generator_outputs(name)
    assert_grad_close(out["grad_ws"], data["out/grad_ws"])


@functools.cache
def discriminator_outputs(name):
    """Logits, d/d img of their sum, and each block's x (and img) of fixture `name`'s discriminator, from one
    compiled call: (outputs dict, arrays, meta)."""
    D, data, meta = discriminator_fixture(name)
    resolutions = D.module().cfg.block_resolutions

    @jax.jit
    def run(D, img):
        out = {}
        (_, out["logits"]), out["grad_img"] = jax.value_and_grad(
            lambda im: (lambda logits: (jnp.sum(logits), logits))(stylegan2.discriminate(D, im)), has_aux=True)(img)
        module, x, y = D.module(), None, img
        for res in resolutions:  # the blocks one by one, as Discriminator.__call__ runs them
            x, y = getattr(module, f"b{res}")(x, y)
            out[f"feat_b{res}"] = x
            if y is not None:
                out[f"img_b{res}"] = y
        return out

    out = run(D, jnp.asarray(nchw_to_nhwc(data["in/img"])))
    return jax.tree.map(np.asarray, out), data, meta


@pytest.mark.parametrize("name", ARCH_DISCRIMINATORS)
def test_discriminator_layout_is_the_official_one(name):
    D, _, meta = discriminator_fixture(name)
    module = D.module()
    assert module.cfg.architecture == meta["architecture"]
    assert list(module.cfg.block_resolutions) == meta["block_resolutions"]
    for res, block in meta["blocks"].items():
        assert hasattr(getattr(module, f"b{res}"), "fromrgb") == block["has_fromrgb"], res
        assert hasattr(getattr(module, f"b{res}"), "skip") == block.get("has_skip", False), res


@pytest.mark.parametrize("name", ARCH_DISCRIMINATORS)
def test_discriminator_logits_match_official(name):
    out, data, _ = discriminator_outputs(name)
    assert out["logits"].shape == data["out/logits"].shape
    assert max_err(out["logits"], data["out/logits"]) <= ATOL


@pytest.mark.parametrize("name", ARCH_DISCRIMINATORS)
def test_discriminator_gradient_wrt_img_matches_official(name):
    out, data, _ = discriminator_outputs(name)
    assert_grad_close(out["grad_img"], nchw_to_nhwc(data["out/grad_img"]))


@pytest.mark.parametrize("name", ARCH_DISCRIMINATORS)
def test_discriminator_block_outputs_match_official(name):
    # x out of every block and, for 'skip', the downsampled image each block passes on ('orig' passes none).
    out, data, _ = discriminator_outputs(name)
    want_keys = sorted(k[len("out/"):] for k in data.files if k.startswith(("out/feat_b", "out/img_b")))
    assert sorted(out.keys() - {"logits", "grad_img"}) == want_keys
    for key in want_keys:
        want = nchw_to_nhwc(data[f"out/{key}"])
        assert out[key].shape == want.shape, key
        assert max_err(out[key], want) <= ATOL, key
