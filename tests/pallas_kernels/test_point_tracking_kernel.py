"""DragGAN's windowed nearest-neighbour search as a Pallas kernel (interpret mode): against a brute-force numpy
search, the XLA op, hand-made ties and borders, for many points and sessions; and gradients through tracking."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.ops.point_tracking import nearest_in_window
from pallas_kernels.point_tracking import nearest_in_window as tracking_pallas


def brute_force(feat, refs, points, radius):
    """Every pixel of every window in row-major order, keeping the first strict minimum (float64)."""
    feat = np.asarray(feat, np.float64)
    h, w, _ = feat.shape
    out = []
    for (py, px), ref in zip(np.asarray(points), np.asarray(refs, np.float64)):
        best, where = np.inf, None
        for y in range(py - radius, py + radius + 1):
            for x in range(px - radius, px + radius + 1):
                if 0 <= y < h and 0 <= x < w:
                    d = np.sqrt(np.sum((feat[y, x] - ref) ** 2))
                    if d < best:
                        best, where = d, (y, x)
        out.append(where)
    return np.array(out)


@pytest.fixture(scope="module")
def sessions():
    """3 sessions of an 11x9 map with 5 channels and 6 points each (points near borders included)."""
    k = jax.random.split(jax.random.key(21), 3)
    feat = jax.random.normal(k[0], (3, 11, 9, 5))
    rows = jax.random.randint(k[1], (3, 6), 0, 11).at[:, 0].set(0)
    cols = jax.random.randint(k[2], (3, 6), 0, 9).at[:, 1].set(8)
    points = jnp.stack([rows, cols], axis=-1)
    refs = jax.vmap(lambda f, p: f[(p[:, 0] + 1) % 11, p[:, 1]])(feat, points) + 0.05  # near a neighbour
    return feat, refs, points


def test_vmapped_sessions_match_brute_force_and_xla(sessions):
    feat, refs, points = sessions
    got = jax.vmap(lambda f, r, p: tracking_pallas(f, r, p, 3, interpret=True))(feat, refs, points)
    xla = jax.vmap(lambda f, r, p: nearest_in_window(f, r, p, 3, implementation="xla"))(feat, refs, points)
    for s in range(3):
        np.testing.assert_array_equal(np.asarray(got[s]), brute_force(feat[s], refs[s], points[s], 3))
    np.testing.assert_array_equal(np.asarray(got), np.asarray(xla))
    assert got.dtype == jnp.int32


def test_ties_take_the_first_in_row_major_order():
    # A constant map: every pixel is equally near, so the window's first in-image pixel wins.
    feat = jnp.zeros((7, 6, 3))
    refs = jnp.ones((3, 3))
    points = jnp.array([[0, 0], [3, 4], [6, 5]])
    got = tracking_pallas(feat, refs, points, 2, interpret=True)
    np.testing.assert_array_equal(np.asarray(got), [[0, 0], [1, 2], [4, 3]])
    # Two exact matches in one window: the upper one (then the left one) wins.
    feat = feat.at[4, 1].set(1.0).at[2, 3].set(1.0).at[2, 2].set(1.0)
    got = tracking_pallas(feat, refs[:1], jnp.array([[3, 2]]), 2, interpret=True)
    np.testing.assert_array_equal(np.asarray(got), [[2, 2]])


def test_gradient_through_a_tracking_function_equals_xla(sessions):
    # Tracking is piecewise constant: the gradient flows only through the differentiable use of feat.
    feat, refs, points = sessions

    def loss(impl):
        def f(feat):
            tracked = nearest_in_window(feat, refs[0], points[0], 2, implementation=impl)
            return jnp.sum(feat[tracked[:, 0], tracked[:, 1]] ** 2)
        return f

    got = jax.grad(loss("pallas"))(feat[0])
    want = jax.grad(loss("xla"))(feat[0])
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    assert np.count_nonzero(np.asarray(got)) > 0
