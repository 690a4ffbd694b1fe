"""modulated_conv2d: fused (per-sample grouped) and unfused (shared weight) forms against a per-sample numpy loop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.ops.modulated_conv2d import demodulation_coefficients, modulated_conv2d
from jaxgan.ops.upfirdn2d import setup_filter
from tests.helpers import naive_conv2d, naive_conv_transpose2d, naive_upfirdn2d


@pytest.fixture
def data():
    k = jax.random.split(jax.random.key(7), 4)
    x = np.asarray(jax.random.normal(k[0], (3, 5, 5, 4)), np.float64)
    weight = np.asarray(jax.random.normal(k[1], (6, 4, 3, 3)), np.float64)
    styles = np.asarray(jax.random.normal(k[2], (3, 4)), np.float64) + 1
    noise = np.asarray(jax.random.normal(k[3], (1, 5, 5, 1)), np.float64)
    return x, weight, styles, noise


def naive_modconv(x, weight, styles, noise, demodulate, up):
    outs = []
    for n in range(x.shape[0]):
        w = weight * styles[n][None, :, None, None]
        if demodulate:
            w = w / np.sqrt(np.sum(w ** 2, axis=(1, 2, 3), keepdims=True) + 1e-8)
        if up == 1:
            y = naive_conv2d(x[n: n + 1], w, pad=1)
        else:
            y = naive_upfirdn2d(naive_conv_transpose2d(x[n: n + 1], w.transpose(1, 0, 2, 3), 2),
                                setup_filter([1, 3, 3, 1]), 1, 1, (1, 1, 1, 1), gain=4.0)
        outs.append(y)
    out = np.concatenate(outs)
    return out if noise is None else out + noise


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("demodulate", [True, False])
def test_modconv_matches_per_sample_loop(data, fused, demodulate):
    x, weight, styles, noise = data
    got = modulated_conv2d(jnp.asarray(x, jnp.float32), jnp.asarray(weight, jnp.float32),
                           jnp.asarray(styles, jnp.float32), noise=jnp.asarray(noise, jnp.float32), padding=1,
                           demodulate=demodulate, fused=fused)
    np.testing.assert_allclose(np.asarray(got), naive_modconv(x, weight, styles, noise, demodulate, 1),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("fused", [False, True])
def test_modconv_up2_matches_per_sample_loop(data, fused):
    x, weight, styles, _ = data
    got = modulated_conv2d(jnp.asarray(x, jnp.float32), jnp.asarray(weight, jnp.float32),
                           jnp.asarray(styles, jnp.float32), up=2, padding=1,
                           resample_filter=setup_filter([1, 3, 3, 1]), flip_weight=False, fused=fused)
    assert got.shape == (3, 10, 10, 6)
    np.testing.assert_allclose(np.asarray(got), naive_modconv(x, weight, styles, None, True, 2), rtol=1e-4, atol=1e-4)


def plain_demodulation(weight, styles):
    """The official expression, differentiated by autodiff."""
    w = weight[None] * styles[:, None, :, None, None]
    return jax.lax.rsqrt(jnp.sum(jnp.square(w), axis=(2, 3, 4)) + 1e-8)


def test_demodulation_coefficients_and_their_gradients_are_the_official_expressions(data):
    _, weight, styles, _ = data
    weight, styles = jnp.asarray(weight, jnp.float32), jnp.asarray(styles, jnp.float32)
    g = jax.random.normal(jax.random.key(2), (styles.shape[0], weight.shape[0]))
    np.testing.assert_array_equal(np.asarray(demodulation_coefficients(weight, styles)),
                                  np.asarray(plain_demodulation(weight, styles)))  # the same forward, bit for bit

    def loss(fn):
        return lambda weight, styles: jnp.sum(fn(weight, styles) * g)
    got = jax.grad(loss(demodulation_coefficients), argnums=(0, 1))(weight, styles)
    want = jax.grad(loss(plain_demodulation), argnums=(0, 1))(weight, styles)
    for a, b in zip(got, want):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-5, atol=1e-7)

    # Second order (the trainer's path-length penalty differentiates a gradient): the written-out backward is
    # itself differentiable and agrees with autodiff's.
    def grad_norm(fn):
        return lambda styles: jnp.sum(jnp.square(jax.grad(loss(fn))(weight, styles)))
    np.testing.assert_allclose(np.asarray(jax.grad(grad_norm(demodulation_coefficients))(styles)),
                               np.asarray(jax.grad(grad_norm(plain_demodulation))(styles)), rtol=1e-4, atol=1e-6)


def test_the_demodulation_gradient_keeps_no_modulated_weights():
    """Autodiff of the official expression keeps [N, O, I, 3, 3] per layer for the backward pass; the op keeps
    [O, I] sums. XLA's temporaries of the gradient, 4 layers of 256 x 256 3x3 kernels, 4 samples."""
    weights = jax.random.normal(jax.random.key(0), (4, 256, 256, 3, 3))
    styles = jax.random.normal(jax.random.key(1), (4, 256))

    def temporaries(fn):
        def loss(styles):
            return sum(jnp.sum(fn(weights[i], styles * (i + 1))) for i in range(4))
        return jax.jit(jax.grad(loss)).lower(styles).compile().memory_analysis().temp_size_in_bytes
    modulated = 4 * 256 * 256 * 9 * 4  # bytes of one layer's modulated weights for the 4 samples
    assert temporaries(plain_demodulation) >= 2 * modulated  # what the op avoids (measured: all 4 layers' worth)
    assert temporaries(demodulation_coefficients) < modulated / 4
