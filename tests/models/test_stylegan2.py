"""StyleGAN2 behaviour the official fixtures do not pin down: random noise, architectures, config checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.models import stylegan2
from tests.helpers import GENERATORS, generator_fixture


def test_random_noise_is_keyed_and_varies_per_sample_and_layer():
    G, data, _ = generator_fixture(GENERATORS[0])  # fixture noise strengths are non-zero
    ws = jnp.asarray(data["out/ws_psi1"][:1].repeat(2, axis=0))  # two identical problems
    synth = jax.jit(lambda G, ws, key: stylegan2.synthesis(G, ws, noise_mode="random", noise_key=key))
    a = np.asarray(synth(G, ws, jax.random.key(0)))
    again = np.asarray(synth(G, ws, jax.random.key(0)))
    other = np.asarray(synth(G, ws, jax.random.key(1)))
    const = np.asarray(stylegan2.synthesis(G, ws, noise_mode="const"))
    np.testing.assert_array_equal(a, again)  # same key, same image
    assert np.abs(a - other).max() > 1e-3  # another key, another image
    assert np.abs(a[0] - a[1]).max() > 1e-3  # fresh noise per sample
    assert np.abs(a - const).max() > 1e-3


def test_random_noise_without_key_is_refused():
    G, data, _ = generator_fixture(GENERATORS[0])
    with pytest.raises(ValueError, match="noise_key"):
        stylegan2.synthesis(G, jnp.asarray(data["out/ws_psi1"]), noise_mode="random")


@pytest.mark.parametrize("architecture", ["orig", "skip", "resnet"])
def test_every_architecture_builds_generates_and_discriminates(architecture):
    g_cfg = stylegan2.GeneratorConfig(z_dim=8, c_dim=3, w_dim=8, img_resolution=16, img_channels=3,
                                      channels=(8, 8, 4), mapping_layers=2, architecture=architecture, conv_clamp=256)
    d_cfg = stylegan2.DiscriminatorConfig(c_dim=3, img_resolution=16, img_channels=3, channels=(8, 8, 4),
                                          architecture=architecture, mbstd_group_size=2, mapping_layers=2)
    G = stylegan2.init_generator(g_cfg, jax.random.key(0))
    D = stylegan2.init_discriminator(d_cfg, jax.random.key(1))
    c = jax.nn.one_hot(jnp.array([0, 2]), 3)
    img = stylegan2.generate(G, jax.random.normal(jax.random.key(2), (2, 8)), c, truncation_psi=0.5)
    assert img.shape == (2, 16, 16, 3) and bool(jnp.all(jnp.isfinite(img)))
    logits = stylegan2.discriminate(D, img, c)
    assert logits.shape == (2, 1) and bool(jnp.all(jnp.isfinite(logits)))
    skip_params = [k for k in G.params["synthesis"]["b16"] if k == "skip"]
    assert bool(skip_params) == (architecture == "resnet")
    has_torgb_b8 = "torgb" in G.params["synthesis"]["b8"]
    assert has_torgb_b8 == (architecture == "skip")


def test_truncation_psi_one_is_exactly_no_truncation():
    G, data, _ = generator_fixture(GENERATORS[0])
    z = data["in/z"]
    plain = np.asarray(stylegan2.mapping(G, z))
    traced = np.asarray(jax.jit(lambda G, z, psi: stylegan2.mapping(G, z, truncation_psi=psi))(G, z, 1.0))
    np.testing.assert_array_equal(plain, traced)


def test_config_validation():
    with pytest.raises(ValueError, match="power of two"):
        stylegan2.GeneratorConfig(z_dim=8, c_dim=0, w_dim=8, img_resolution=24, img_channels=3, channels=(8, 8))
    with pytest.raises(ValueError, match="one entry per block"):
        stylegan2.GeneratorConfig(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3, channels=(8, 8))
    with pytest.raises(ValueError, match="architecture"):
        stylegan2.DiscriminatorConfig(c_dim=0, img_resolution=8, img_channels=3, channels=(8, 8), architecture="x")


def test_conditional_mapping_requires_labels():
    cfg = stylegan2.GeneratorConfig(z_dim=8, c_dim=2, w_dim=8, img_resolution=8, img_channels=3, channels=(8, 8),
                                    mapping_layers=1)
    G = stylegan2.init_generator(cfg, jax.random.key(0))
    with pytest.raises(ValueError, match="conditional"):
        stylegan2.mapping(G, jnp.zeros((1, 8)))
