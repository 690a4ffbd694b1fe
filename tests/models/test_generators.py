"""generators.synthesis_until / synthesis_after: the synthesis in two parts gives synthesis's feature and image."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.models import generators, stylegan3
from tests.helpers import GENERATORS, generator_fixture, load_fixture, sg3_fixture_config


def assert_staged_equals_whole(G, ws, index, **options):
    img, features = jax.jit(lambda G, ws: generators.synthesis(G, ws, return_features=True, **options))(G, ws)

    @jax.jit
    def staged(G, ws):
        feature, carry = generators.synthesis_until(G, ws, index, **options)
        return feature, generators.synthesis_after(G, ws, index, carry, **options)
    feature, staged_img = staged(G, ws)
    np.testing.assert_array_equal(np.asarray(feature), np.asarray(features[index]))
    np.testing.assert_array_equal(np.asarray(staged_img), np.asarray(img))


def test_stylegan2_staged_synthesis_is_synthesis():
    G, data, _ = generator_fixture(GENERATORS[1])  # 32 px: blocks 4 .. 32
    ws = jnp.asarray(data["out/ws_psi1"][:2])
    assert_staged_equals_whole(G, ws, 1)
    assert_staged_equals_whole(G, ws, 2, noise_mode="random", noise_key=jax.random.key(3))  # the last block


@pytest.mark.slow  # 36 s in CI; the StyleGAN3 drag trace tests (tests/cli/test_stylegan3.py) run the same split
def test_stylegan3_staged_synthesis_is_synthesis():
    index = 6  # a middle layer (DragGAN's drag tests run the StyleGAN3 step, which uses the same split)
    _, meta = load_fixture("sg3_t_res64.npz")
    cfg = sg3_fixture_config(meta)
    G = jax.jit(stylegan3.init_generator, static_argnums=0)(cfg, jax.random.key(0))
    ws = jax.random.normal(jax.random.key(1), (2, cfg.num_ws, cfg.w_dim))
    assert index < len(cfg.feature_shapes)
    assert_staged_equals_whole(G, ws, index)
