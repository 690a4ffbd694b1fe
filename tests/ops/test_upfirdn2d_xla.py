"""Both XLA formulations of upfirdn2d (jaxgan/ops/upfirdn2d_xla.py) against the loop-by-loop numpy definition
`naive_upfirdn2d` in tests/helpers.py (zero-stuff, pad or crop, true convolution, decimate).

`upfirdn2d_reference` is what the Pallas kernel tests (tests/pallas_kernels/test_upfirdn2d_kernel.py) take as the
truth, so it is checked here on its own, not through the dispatcher; `upfirdn2d_xla` is the default formulation.
"""

import jax
import numpy as np
import pytest

from jaxgan.ops.upfirdn2d_xla import upfirdn2d_reference, upfirdn2d_xla
from tests.helpers import ASYMMETRIC, naive_upfirdn2d

SEPARABLE = np.array([1, 2, 5, 2, 3], np.float32)  # a 1-D filter: applied along W, then along H
CASES = [
    # (filter, up, down, padding [x0, x1, y0, y1], flip_filter, gain)
    pytest.param(ASYMMETRIC, 1, 1, (0, 0, 0, 0), False, 1.0, id="plain-asymmetric-2d"),
    pytest.param(ASYMMETRIC, 2, 1, (2, 1, 3, 0), False, 4.0, id="up2-asymmetric-2d-gain4"),
    pytest.param(ASYMMETRIC, 1, 2, (1, 2, 0, 1), True, 1.0, id="down2-asymmetric-2d-flipped"),
    pytest.param(ASYMMETRIC, 2, 2, (2, 1, 0, 3), True, 3.0, id="up2-down2-flipped-gain3"),
    pytest.param(ASYMMETRIC, 1, 1, (-1, 2, 1, -2), False, 1.0, id="negative-padding-crop"),
    pytest.param(ASYMMETRIC, 3, 2, (-2, 4, 3, -1), True, 0.5, id="up3-down2-crop-flipped"),
    pytest.param(ASYMMETRIC, 1, 3, (4, 0, 2, 2), False, 2.0, id="down3-padding-wider-than-filter"),
    pytest.param(SEPARABLE, 2, 1, (2, 3, -1, 2), False, 4.0, id="separable-up2-crop"),
    pytest.param(SEPARABLE, 1, 2, (1, 3, 2, 2), True, 2.0, id="separable-down2-flipped"),
]
FORMULATIONS = [pytest.param(upfirdn2d_reference, id="reference"), pytest.param(upfirdn2d_xla, id="polyphase")]


@pytest.fixture(scope="module")
def images():
    return np.asarray(jax.random.normal(jax.random.key(11), (2, 7, 6, 3)))  # H != W, so a swapped axis shows


@pytest.mark.parametrize("formulation", FORMULATIONS)
@pytest.mark.parametrize("f,up,down,pad,flip,gain", CASES)
def test_formulation_matches_the_loop_definition(images, formulation, f, up, down, pad, flip, gain):
    got = formulation(images, f, up=up, down=down, padding=pad, flip_filter=flip, gain=gain)
    # A 1-D filter f with gain g is the 2-D filter outer(f, f) with gain g (g ** (1/2) along each axis).
    f_2d = np.outer(f, f) if f.ndim == 1 else f
    want = naive_upfirdn2d(images, f_2d, up, down, pad, gain=gain, flip_filter=flip)
    assert got.shape == want.shape
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("f,up,down,pad,flip,gain", CASES)
def test_gradients_equal_autodiff_of_the_reference(images, f, up, down, pad, flip, gain):
    """upfirdn2d_xla's backward is the adjoint upfirdn2d (a custom_vjp); first and second derivatives w.r.t. x, and
    the derivative w.r.t. the filter, equal plain autodiff of the step-by-step reference."""
    import jax.numpy as jnp
    shape = upfirdn2d_reference(images, f, up, down, pad, flip, gain).shape
    cot = np.asarray(jax.random.normal(jax.random.key(5), shape))

    def loss(formulation):
        return lambda x, f_: jnp.vdot(formulation(x, f_, up, down, pad, flip, gain), cot)
    for argnums in (0, 1):
        ours = jax.grad(loss(upfirdn2d_xla), argnums)(images, f)
        want = jax.grad(loss(upfirdn2d_reference), argnums)(images, f)
        assert np.max(np.abs(ours - want)) <= 1e-5 * np.max(np.abs(want)), argnums
    # second order, as the R1 and path-length penalties take: d/dx of |d loss / dx|^2 through a nonlinearity
    def second(formulation):
        g = jax.grad(lambda x: jnp.sum(jnp.tanh(formulation(x, f, up, down, pad, flip, gain)) * cot))
        return jax.grad(lambda x: jnp.sum(jnp.square(g(x))))(images)
    ours, want = second(upfirdn2d_xla), second(upfirdn2d_reference)  # values up to 4e4: relative to the largest
    assert np.max(np.abs(ours - want)) <= 1e-4 * np.max(np.abs(want))  # float32 rounding: measured <= 1.1e-5


def test_the_backward_keeps_no_buffer_per_tap():
    """StyleGAN3's 12-tap up-2 / down-2 pair: XLA's temporaries for forward + backward stay within 2x the
    forward's (autodiff of the polyphase slices took 12x: one full-size buffer per tap)."""
    import jax.numpy as jnp
    f = np.hanning(14)[1:-1].astype(np.float32)
    x = jax.ShapeDtypeStruct((1, 40, 40, 64), jnp.float32)

    def pair(x):
        return upfirdn2d_xla(upfirdn2d_xla(x, f, up=2, padding=(11, 10, 11, 10), gain=4.0), f, down=2)
    cot = jax.ShapeDtypeStruct(jax.eval_shape(pair, x).shape, jnp.float32)
    forward = jax.jit(pair).lower(x).compile().memory_analysis().temp_size_in_bytes
    backward = jax.jit(jax.grad(lambda x, c: jnp.vdot(pair(x), c))).lower(x, cot).compile().memory_analysis()
    assert backward.temp_size_in_bytes <= 2 * forward, (backward.temp_size_in_bytes, forward)
