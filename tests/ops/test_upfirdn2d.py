"""upfirdn2d against a direct numpy transcription of its definition (zero-stuff, pad, true convolution, decimate:
`naive_upfirdn2d` in tests/helpers.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.ops.upfirdn2d import downsample2d, filter2d, setup_filter, upfirdn2d, upsample2d
from tests.helpers import ASYMMETRIC, naive_upfirdn2d


@pytest.fixture
def images():
    return np.asarray(jax.random.normal(jax.random.key(0), (2, 7, 6, 3)))


@pytest.mark.parametrize("up,down,pad", [(1, 1, (0, 0, 0, 0)), (2, 1, (2, 1, 2, 1)), (1, 2, (1, 1, 1, 1)),
                                         (2, 2, (1, 2, 0, 3)), (1, 1, (-1, 2, 1, -2)), (3, 1, (1, 1, 2, 2))])
@pytest.mark.parametrize("flip_filter", [False, True])
def test_upfirdn2d_matches_definition(images, up, down, pad, flip_filter):
    got = upfirdn2d(jnp.asarray(images), ASYMMETRIC, up=up, down=down, padding=pad, flip_filter=flip_filter,
                    gain=3.0)
    gain_2d = 3.0  # gain ** (ndim / 2) with a 2-D filter
    want = naive_upfirdn2d(images, ASYMMETRIC, up, down, pad, gain=gain_2d, flip_filter=flip_filter)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-4)


def test_separable_filter_equals_outer_product(images):
    taps = np.array([1, 2, 5, 2], np.float32)
    one_d = upfirdn2d(jnp.asarray(images), taps, up=2, padding=(2, 1, 2, 1), gain=4)
    two_d = upfirdn2d(jnp.asarray(images), np.outer(taps, taps), up=2, padding=(2, 1, 2, 1), gain=4)
    np.testing.assert_allclose(np.asarray(one_d), np.asarray(two_d), rtol=1e-5, atol=1e-5)


def test_setup_filter_matches_checkpoint_buffer():
    # The [4, 4] resample_filter buffer stored in stylegan2-ada checkpoints: outer([1,3,3,1]) / 64.
    expected = np.array([[1, 3, 3, 1], [3, 9, 9, 3], [3, 9, 9, 3], [1, 3, 3, 1]], np.float32) / 64
    np.testing.assert_array_equal(setup_filter([1, 3, 3, 1]), expected)
    assert setup_filter(np.ones(8)).shape == (8,)  # 8+ taps stay separable


def test_resampling_helpers_sizes_and_dc_gain(images):
    f = setup_filter([1, 3, 3, 1])
    flat = jnp.ones((1, 8, 8, 2))
    up = upsample2d(flat, f)
    assert up.shape == (1, 16, 16, 2)
    np.testing.assert_allclose(np.asarray(up)[:, 2:-2, 2:-2], 1.0, rtol=1e-6)  # gain up**2 keeps DC
    down = downsample2d(flat, f)
    assert down.shape == (1, 4, 4, 2)
    np.testing.assert_allclose(np.asarray(down)[:, 1:-1, 1:-1], 1.0, rtol=1e-6)
    assert filter2d(jnp.asarray(images), f).shape == images.shape
    want = naive_upfirdn2d(images, f, 2, 1, (2, 1, 2, 1), gain=4.0)
    np.testing.assert_allclose(np.asarray(upsample2d(jnp.asarray(images), f)), want, rtol=1e-5, atol=1e-5)


def test_upfirdn2d_gradient_is_its_adjoint(images):
    # upfirdn2d is linear, so <A x, y> == <x, A^T y> with A^T from jax.vjp.
    f = ASYMMETRIC
    x = jnp.asarray(images)
    out, vjp = jax.vjp(lambda v: upfirdn2d(v, f, up=2, down=1, padding=(1, 2, 2, 1)), x)
    y = jax.random.normal(jax.random.key(1), out.shape)
    (x_adj,) = vjp(y)
    np.testing.assert_allclose(float(jnp.sum(out * y)), float(jnp.sum(x * x_adj)), rtol=1e-4)
