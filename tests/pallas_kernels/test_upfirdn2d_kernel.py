"""The polyphase upfirdn2d Pallas kernel (interpret mode) against the official algorithm and its gradient.

Expected values come from `upfirdn2d_reference` (zero-stuff, pad, depthwise convolution, decimate: a different
formulation) and from the loop-by-loop numpy transcription `naive_upfirdn2d` in tests/helpers.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.ops.upfirdn2d import setup_filter, upfirdn2d, upfirdn2d_reference
from pallas_kernels.upfirdn2d import Tiling, transposed_padding
from pallas_kernels.upfirdn2d import upfirdn2d as upfirdn2d_pallas
from tests.helpers import ASYMMETRIC, naive_upfirdn2d

SLOW = pytest.mark.slow  # interpret mode is slow: CI runs one case of each kind (budget), these with -m slow
CASES = [
    # (filter, up, down, padding [x0, x1, y0, y1], flip_filter)
    pytest.param(ASYMMETRIC, 2, 1, (2, 1, 2, 1), False, id="up2-asymmetric-2d"),
    pytest.param(ASYMMETRIC, 1, 2, (1, 1, 2, 0), True, id="down2-asymmetric-2d-flipped"),
    pytest.param(np.array([1, 2, 5, 2], np.float32), 2, 1, (-1, 3, 2, -2), False, id="up2-separable-cropping"),
    pytest.param(setup_filter([1, 3, 3, 1]), 2, 2, (1, 2, 0, 3), False, id="up2-down2-fir", marks=SLOW),
    pytest.param(np.linspace(1, 2, 9).astype(np.float32), 3, 1, (4, 4, 5, 3), False, id="up3-separable-9-taps",
                 marks=SLOW),
]


@pytest.fixture(scope="module")
def images():
    return jax.random.normal(jax.random.key(3), (2, 7, 5, 3))  # odd sizes, 3 channels (padded to 4 inside)


def forward_and_pullback(op, x):
    """op(x) and the gradient of <op(x), g> for a fixed random cotangent g (the backward pass alone)."""
    y, vjp = jax.vjp(op, x)
    return y, vjp(jax.random.normal(jax.random.key(8), y.shape))[0]


@pytest.mark.parametrize("f,up,down,pad,flip", CASES)
def test_kernel_forward_and_gradient_equal_the_reference(images, f, up, down, pad, flip):
    args = dict(up=up, down=down, padding=pad, flip_filter=flip, gain=2.0)
    got, g_got = forward_and_pullback(lambda x: upfirdn2d_pallas(x, f, interpret=True, **args), images)
    want, g_want = forward_and_pullback(lambda x: upfirdn2d_reference(x, f, **args), images)
    assert got.shape == want.shape
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=2e-5)
    np.testing.assert_allclose(np.asarray(g_got), np.asarray(g_want), rtol=1e-5, atol=1e-4)


def test_kernel_matches_the_loop_definition_with_several_tiles():
    # 2x2 tiles of 4x4 positions per phase and 2 channel tiles: the tile offsets and halos are exercised.
    x = np.asarray(jax.random.normal(jax.random.key(4), (1, 7, 6, 5)))
    got = upfirdn2d_pallas(jnp.asarray(x), ASYMMETRIC, up=2, padding=(2, 1, 1, 2), gain=3.0, interpret=True,
                           tiling=Tiling(rows=4, cols=4, channels=4))
    want = naive_upfirdn2d(x, ASYMMETRIC, 2, 1, (2, 1, 1, 2), gain=3.0)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-4)


def test_vmapped_kernel_equals_the_batched_reference(images):
    f = setup_filter([1, 3, 3, 1])
    stacked = jnp.stack([images, 2 * images])  # [sessions, N, H, W, C]
    got = jax.vmap(lambda x: upfirdn2d_pallas(x, f, down=2, padding=1, interpret=True))(stacked)
    want = jax.vmap(lambda x: upfirdn2d_reference(x, f, down=2, padding=1))(stacked)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-5)


def test_public_op_dispatches_to_the_kernel(images):
    f = setup_filter([1, 3, 3, 1])
    via_switch = upfirdn2d(images, f, up=2, padding=(2, 1, 2, 1), gain=4, implementation="pallas")
    direct = upfirdn2d_pallas(images, f, up=2, padding=(2, 1, 2, 1), gain=4, interpret=True)
    np.testing.assert_array_equal(np.asarray(via_switch), np.asarray(direct))


@pytest.mark.parametrize("up,down,pad", [(2, 1, (2, 1, 2, 1)), (1, 2, (1, 1, 1, 1)), (2, 2, (1, 2, 0, 3)),
                                         (3, 1, (-1, 2, 4, 0))])
def test_transposed_padding_gives_the_adjoint(up, down, pad):
    # <A x, y> == <x, A^T y>, with A^T the upfirdn2d the backward runs (no kernel needed: the XLA formulation).
    x = jax.random.normal(jax.random.key(5), (1, 6, 7, 2))
    ax = upfirdn2d_reference(x, ASYMMETRIC, up=up, down=down, padding=pad)
    y = jax.random.normal(jax.random.key(6), ax.shape)
    aty = upfirdn2d_reference(y, ASYMMETRIC, up=down, down=up, flip_filter=True,
                              padding=transposed_padding(x.shape, ASYMMETRIC, up, down, pad))
    assert aty.shape == x.shape
    np.testing.assert_allclose(float(jnp.vdot(ax, y)), float(jnp.vdot(x, aty)), rtol=1e-5)
