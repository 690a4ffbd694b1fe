"""The kernels compiled for a GPU (interpret=False) against XLA at StyleGAN2's real shapes. Marked `gpu`: CI and
CPU machines skip them (pyproject addopts); run them on a GPU with `pytest -m gpu tests/pallas_kernels`.
Never run so far: no GPU has been available to this project."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.ops.epilogue import fused_epilogue
from jaxgan.ops.point_tracking import nearest_in_window
from jaxgan.ops.upfirdn2d import setup_filter, upfirdn2d

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(jax.default_backend() != "gpu", reason="needs a GPU (the kernels are lowered, not interpreted)"),
]

FIR = setup_filter([1, 3, 3, 1])


@pytest.mark.parametrize("res,channels", [(64, 512), (256, 128), (1024, 32)])
def test_up_layer_epilogue_on_gpu(res, channels):
    k = jax.random.split(jax.random.key(0), 5)
    x = jax.random.normal(k[0], (4, res + 1, res + 1, channels))
    bias, dcoefs = jax.random.normal(k[1], (channels,)), jax.random.uniform(k[2], (4, channels))
    noise = jax.random.normal(k[3], (1, res, res, 1))
    args = dict(dcoefs=dcoefs, noise=noise, resample_filter=FIR, fir_padding=1, fir_gain=4, act="lrelu",
                clamp=256.0)
    with jax.default_matmul_precision("highest"):
        want = jax.jit(lambda x, b: fused_epilogue(x, b, implementation="xla", **args))(x, bias)
        got = jax.jit(lambda x, b: fused_epilogue(x, b, implementation="pallas", **args))(x, bias)
        g = jax.random.normal(k[4], want.shape)
        grad = jax.jit(jax.grad(lambda x: jnp.vdot(fused_epilogue(x, bias, implementation="pallas", **args), g)))(x)
        grad_want = jax.jit(jax.grad(lambda x: jnp.vdot(fused_epilogue(x, bias, implementation="xla", **args), g)))(x)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(np.asarray(grad), np.asarray(grad_want), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("up,down,padding,channels", [(2, 1, (2, 1, 2, 1), 3), (1, 2, (1, 1, 1, 1), 64),
                                                      (2, 1, (2, 1, 2, 1), 512)])
def test_upfirdn2d_on_gpu(up, down, padding, channels):
    x = jax.random.normal(jax.random.key(1), (8, 128, 128, channels))
    want = jax.jit(lambda x: upfirdn2d(x, FIR, up=up, down=down, padding=padding, implementation="xla"))(x)
    got = jax.jit(lambda x: upfirdn2d(x, FIR, up=up, down=down, padding=padding, implementation="pallas"))(x)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-5)
    g = jax.jit(jax.grad(lambda x: jnp.sum(upfirdn2d(x, FIR, up=up, down=down, padding=padding,
                                                     implementation="pallas") ** 2)))(x)
    g_want = jax.jit(jax.grad(lambda x: jnp.sum(upfirdn2d(x, FIR, up=up, down=down, padding=padding,
                                                          implementation="xla") ** 2)))(x)
    np.testing.assert_allclose(np.asarray(g), np.asarray(g_want), rtol=1e-5, atol=1e-4)


def test_point_tracking_on_gpu():
    k = jax.random.split(jax.random.key(2), 3)
    feat = jax.random.normal(k[0], (16, 256, 256, 128))  # 16 sessions, DragGAN's feat[5] resized to 256 px
    points = jax.random.randint(k[1], (16, 8, 2), 0, 256)
    refs = jax.random.normal(k[2], (16, 8, 128))

    def track(implementation):
        return jax.jit(jax.vmap(lambda f, r, p: nearest_in_window(f, r, p, 6, implementation=implementation)))

    want = track("xla")(feat, refs, points)
    got = track("pallas")(feat, refs, points)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
