"""jaxgan StyleGAN2 G and D against outputs of the official stylegan2-ada-pytorch code (../shared/fixtures).

Weights come straight from the fixture's state dict (`param/<key>`), so these tests check the model maths alone;
the converters are tested in tests/checkpoints_convert. Tolerances: 1e-4 max abs on latents, images, features and
logits; 1e-3 relative on gradients (FIXTURES.md).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.models import stylegan2
from tests.helpers import GENERATORS, discriminator_fixture, generator_fixture, nchw_to_nhwc

ATOL = 1e-4
DISCRIMINATORS = ["sg2ada_D_res64.npz", "sg2ada_D_res32_cond.npz"]


def max_err(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


@pytest.mark.parametrize("name", GENERATORS)
@pytest.mark.parametrize("out_key,kwargs", [("ws_psi1", {}), ("ws_psi07", {"truncation_psi": 0.7}),
                                            ("ws_psi05_cut2", {"truncation_psi": 0.5, "truncation_cutoff": 2})])
def test_mapping_matches_official(name, out_key, kwargs):
    G, data, _ = generator_fixture(name)
    ws = jax.jit(functools.partial(stylegan2.mapping, **kwargs))(G, data["in/z"], data["in/c"])
    assert ws.shape == data[f"out/{out_key}"].shape
    assert max_err(ws, data[f"out/{out_key}"]) <= ATOL


@pytest.mark.parametrize("name", GENERATORS)
@pytest.mark.parametrize("noise_mode,out_key", [("const", "img_const"), ("none", "img_none")])
@pytest.mark.parametrize("fused", [False, True])
def test_synthesis_matches_official(name, noise_mode, out_key, fused):
    G, data, _ = generator_fixture(name)
    synth = jax.jit(functools.partial(stylegan2.synthesis, noise_mode=noise_mode, fused_modconv=fused))
    img = synth(G, jnp.asarray(data["out/ws_psi1"]))
    assert max_err(img, nchw_to_nhwc(data[f"out/{out_key}"])) <= ATOL


@pytest.mark.parametrize("name", GENERATORS)
def test_fused_and_unfused_modconv_agree_with_official_unfused(name):
    G, data, _ = generator_fixture(name)
    ws = jnp.asarray(data["out/ws_psi1"])
    fused = stylegan2.synthesis(G, ws, fused_modconv=True)
    unfused = stylegan2.synthesis(G, ws, fused_modconv=False)
    assert max_err(unfused, nchw_to_nhwc(data["out/img_const_unfused"])) <= ATOL
    assert max_err(fused, unfused) <= ATOL


@pytest.mark.parametrize("name", GENERATORS)
def test_block_features_match_official(name):
    G, data, meta = generator_fixture(name)
    _, features = jax.jit(functools.partial(stylegan2.synthesis, return_features=True))(
        G, jnp.asarray(data["out/ws_psi1"]))
    assert len(features) == len(meta["block_resolutions"])
    for res, feature in zip(meta["block_resolutions"], features):
        assert max_err(feature, nchw_to_nhwc(data[f"out/feat_b{res}_const"])) <= ATOL, res


@pytest.mark.parametrize("name", GENERATORS)
def test_gradient_wrt_ws_matches_official(name):
    G, data, _ = generator_fixture(name)
    projection = jnp.asarray(nchw_to_nhwc(data["in/grad_projection"]))
    grad = jax.jit(jax.grad(lambda ws: jnp.sum(stylegan2.synthesis(G, ws) * projection)))(
        jnp.asarray(data["out/ws_psi1"]))
    ref = data["out/grad_ws"]
    assert max_err(grad, ref) / float(np.max(np.abs(ref))) <= 1e-3


@pytest.mark.parametrize("name", DISCRIMINATORS)
def test_discriminator_logits_match_official(name):
    D, data, _ = discriminator_fixture(name)
    logits = jax.jit(stylegan2.discriminate)(D, jnp.asarray(nchw_to_nhwc(data["in/img"])), data["in/c"])
    assert logits.shape == data["out/logits"].shape
    assert max_err(logits, data["out/logits"]) <= ATOL


def test_generation_is_vmappable_over_single_problems():
    # One problem at a time, vmapped, equals the batched call: the shape DragGAN and inversion rely on.
    G, data, _ = generator_fixture(GENERATORS[0])
    ws = jnp.asarray(data["out/ws_psi1"])
    one = jax.jit(jax.vmap(lambda w: stylegan2.synthesis(G, w[None])[0]))(ws)
    assert max_err(one, nchw_to_nhwc(data["out/img_const"])) <= ATOL
