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
