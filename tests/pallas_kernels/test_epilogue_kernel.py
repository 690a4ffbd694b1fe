"""The fused SynthesisLayer epilogue kernel (interpret mode) against an independent numpy transcription of the
official steps (FIR, demodulation, noise, bias, lrelu * gain, clamp), and its gradient against XLA's."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.models import stylegan2
from jaxgan.ops.bias_act import bias_act
from jaxgan.ops.epilogue import fused_epilogue
from jaxgan.ops.implementation import use_implementation
from jaxgan.ops.upfirdn2d import setup_filter
from pallas_kernels.epilogue import fused_epilogue as epilogue_pallas
from tests.helpers import naive_upfirdn2d

SQRT2 = float(np.sqrt(2))


def numpy_epilogue(x, bias, dcoefs, noise, f, pad, fir_gain, alpha, gain, clamp):
    x = np.asarray(x, np.float64)
    if f is not None:
        x = naive_upfirdn2d(x, f, 1, 1, pad, gain=fir_gain)  # a 2-D filter: gain ** (2 / 2)
    if dcoefs is not None:
        x = x * np.asarray(dcoefs)[:, None, None, :]
    if noise is not None:
        x = x + np.asarray(noise)
    x = x + np.asarray(bias)
    x = np.where(x >= 0, x, x * alpha) * gain
    return np.clip(x, -clamp, clamp)


@pytest.fixture(scope="module")
def up_layer():
    """An up-layer's inputs: transposed-conv output [2, 2H+1, 2W+1, C] for H, W = 3, 2; C = 5."""
    k = jax.random.split(jax.random.key(11), 4)
    x = 2 * jax.random.normal(k[0], (2, 7, 5, 5))
    bias = jax.random.normal(k[1], (5,))
    dcoefs = jax.random.uniform(k[2], (2, 5), minval=0.5, maxval=1.5)
    noise = jax.random.normal(k[3], (1, 6, 4, 1))  # const noise: one map for the batch, per pixel
    return x, bias, dcoefs, noise


def test_up_layer_epilogue_matches_numpy(up_layer):
    x, bias, dcoefs, noise = up_layer
    f = setup_filter([1, 3, 3, 1])
    got = epilogue_pallas(x, bias, dcoefs=dcoefs, noise=noise, resample_filter=f, fir_padding=1, fir_gain=4,
                          act="lrelu", gain=SQRT2, clamp=4.0, interpret=True)
    want = numpy_epilogue(x, bias, dcoefs, noise, f, (1, 1, 1, 1), 4.0, 0.2, SQRT2, 4.0)
    assert got.shape == (2, 6, 4, 5)
    assert 0 < np.mean(np.abs(want) == 4.0) < 0.5  # the clamp is exercised, but not everywhere
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)


def test_up_layer_epilogue_gradient_equals_xla(up_layer):
    x, bias, dcoefs, noise = up_layer
    args = dict(resample_filter=setup_filter([1, 3, 3, 1]), fir_padding=1, fir_gain=4, act="lrelu", gain=SQRT2,
                clamp=2.0)

    def loss(op):
        return lambda *a: jnp.sum(op(a[0], a[1], dcoefs=a[2], noise=a[3], **args) * jnp.arange(1, 6))

    got = jax.grad(loss(lambda *a, **k: epilogue_pallas(*a, interpret=True, **k)), argnums=(0, 1, 2, 3))(
        x, bias, dcoefs, noise)
    want = jax.grad(loss(lambda *a, **k: fused_epilogue(*a, implementation="xla", **k)), argnums=(0, 1, 2, 3))(
        x, bias, dcoefs, noise)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-5, atol=1e-5)


def test_plain_layer_epilogue_with_per_sample_noise_vmapped():
    # No filter (a 3x3 layer without upsampling): random noise per sample, no demodulation (the fused path),
    # vmapped over two problems; compared with numpy.
    k = jax.random.split(jax.random.key(12), 3)
    x = 2 * jax.random.normal(k[0], (2, 3, 5, 3, 6))
    noise = jax.random.normal(k[1], (2, 3, 5, 3, 1))
    bias = jax.random.normal(k[2], (6,))
    got = jax.vmap(lambda xi, ni: epilogue_pallas(xi, bias, noise=ni, act="lrelu", alpha=0.1, gain=1.5, clamp=2.5,
                                                  interpret=True))(x, noise)
    want = np.stack([numpy_epilogue(x[i], bias, None, noise[i], None, None, 1.0, 0.1, 1.5, 2.5) for i in range(2)])
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)


def test_bias_act_switch_covers_nhwc_and_refuses_other_ranks():
    x = jax.random.normal(jax.random.key(13), (1, 3, 4, 3))
    b = jnp.array([0.5, -1.0, 2.0])
    got = bias_act(x, b, act="lrelu", clamp=1.0, implementation="pallas")
    want = numpy_epilogue(x, b, None, None, None, None, 1.0, 0.2, SQRT2, 1.0)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="does not cover"):
        bias_act(jnp.ones((2, 3)), b, act="lrelu", implementation="pallas")
    with use_implementation("pallas"):  # a default choice falls back to XLA where the kernel does not apply
        np.testing.assert_allclose(np.asarray(bias_act(jnp.ones((2, 3)), b)), 1 + np.asarray(b)[None].repeat(2, 0),
                                   rtol=1e-6)


def test_generator_under_the_pallas_context_equals_xla():
    # The choice reaches the generator without code changes: every layer's epilogue, ToRGB and the skip
    # upsampling run the kernels; const noise, clamp 0.5 so clamping happens.
    cfg = stylegan2.GeneratorConfig(z_dim=4, c_dim=0, w_dim=4, img_resolution=8, img_channels=3, channels=(4, 3),
                                    mapping_layers=1, conv_clamp=0.5)
    G = stylegan2.init_generator(cfg, jax.random.key(14))
    ws = stylegan2.mapping(G, jax.random.normal(jax.random.key(15), (2, 4)))
    run = jax.jit(lambda G, ws: stylegan2.synthesis(G, ws, return_features="layers"))
    want = run(G, ws)
    with use_implementation("pallas"):  # part of jit's cache key: traced again, with the kernels
        got = run(G, ws)
    assert np.abs(np.asarray(want[1][-1])).max() == pytest.approx(0.5)  # b8.conv1 is clamped
    for g, w in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-5, atol=1e-5)
