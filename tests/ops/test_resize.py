"""resize_bilinear against PyTorch's F.interpolate(mode='bilinear', align_corners=False) rules."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.ops.resize import linear_taps, resize_bilinear


def test_two_to_four_gives_the_half_pixel_values_torch_gives():
    x = jnp.asarray([[0.0, 1.0]]).reshape(1, 2, 1)  # [H=1, W=2, C=1]
    out = np.asarray(resize_bilinear(x, (1, 4)))[0, :, 0]
    # F.interpolate(torch.tensor([[[[0., 1.]]]]), size=(1, 4), mode='bilinear') == [0, 0.25, 0.75, 1]
    np.testing.assert_array_equal(out, [0.0, 0.25, 0.75, 1.0])


def test_quadrupling_clamps_the_first_two_rows_to_the_edge():
    """At 4x the source of outputs 0 and 1 lies left of input 0 and is clamped (spec draggan.md §1.6 ties)."""
    lo, hi, w_lo, w_hi = linear_taps(128, 512)
    assert lo[0] == lo[1] == 0 and w_hi[0] == w_hi[1] == 0
    assert lo[-1] == hi[-1] == 127


@pytest.mark.parametrize("shape,size", [((16, 16, 3), (64, 64)), ((10, 7, 2), (23, 31)), ((128, 128, 4), (256, 256))])
def test_upsampling_matches_jax_image_resize(shape, size):
    x = jax.random.normal(jax.random.key(0), shape)
    ours = resize_bilinear(x, size)
    reference = jax.image.resize(x, (*size, shape[-1]), "bilinear", antialias=False)
    np.testing.assert_allclose(np.asarray(ours), np.asarray(reference), atol=1e-6)


def test_batched_leading_axes_and_gradient():
    x = jax.random.normal(jax.random.key(1), (2, 8, 8, 3))
    np.testing.assert_allclose(np.asarray(resize_bilinear(x, (16, 16))[1]), np.asarray(resize_bilinear(x[1], (16, 16))))
    # Each input pixel's total weight: the gradient of the sum is the column sums of the interpolation matrices.
    grad = jax.grad(lambda v: jnp.sum(resize_bilinear(v, (16, 16))))(x[0])
    np.testing.assert_allclose(float(jnp.sum(grad)), 16 * 16 * 3, rtol=1e-6)


@pytest.mark.parametrize("shape,size", [((16, 16, 3), (64, 64)), ((10, 7, 2), (23, 31)), ((32, 32, 4), (32, 32))])
def test_pixels_and_bands_read_through_the_taps_equal_the_resized_map(shape, size):
    """resize_bilinear_at / resize_bilinear_rows give the resized map's own values at the pixels and rows asked for
    (the same arithmetic: equal bit for bit), edges and clamped taps included, and its gradient."""
    from jaxgan.ops.resize import resize_bilinear_at, resize_bilinear_rows
    x = jax.random.normal(jax.random.key(2), shape)
    full = np.asarray(resize_bilinear(x, size))
    rng = np.random.default_rng(0)
    rows, cols = rng.integers(0, size[0], (5, 7)), rng.integers(0, size[1], (5, 7))
    rows[0, 0], cols[0, 0], rows[-1, -1], cols[-1, -1] = 0, 0, size[0] - 1, size[1] - 1
    np.testing.assert_array_equal(np.asarray(resize_bilinear_at(x, size, rows, cols)), full[rows, cols])
    band = np.arange(size[0] - 4, size[0])
    np.testing.assert_array_equal(np.asarray(resize_bilinear_rows(x, size, band)), full[band])
    weights = jax.random.normal(jax.random.key(3), (5, 7, shape[-1]))
    np.testing.assert_allclose(
        np.asarray(jax.grad(lambda v: jnp.sum(resize_bilinear_at(v, size, rows, cols) * weights))(x)),
        np.asarray(jax.grad(lambda v: jnp.sum(resize_bilinear(v, size)[rows, cols] * weights))(x)), atol=1e-6)
