"""nearest_in_window_of: tracking on a map read through a function (DragGAN's resized features read through the
resize's taps) finds what nearest_in_window finds on the formed map, with either implementation."""

import jax
import numpy as np
import pytest

from jaxgan.ops.point_tracking import nearest_in_window, nearest_in_window_of
from jaxgan.ops.resize import resize_bilinear, resize_bilinear_at


@pytest.mark.parametrize("implementation", ["xla", "pallas"])
def test_windows_read_through_the_taps_track_as_the_resized_map(implementation):
    k = jax.random.split(jax.random.key(5), 2)
    low = jax.random.normal(k[0], (8, 8, 5))
    full = resize_bilinear(low, (32, 32))
    points = np.array([[0, 0], [31, 31], [10, 20], [16, 3], [5, 30]], np.int32)  # corners and borders included
    refs = full[(points[:, 0] + 2) % 32, (points[:, 1] + 1) % 32] + 0.01 * jax.random.normal(k[1], (5, 5))
    got = nearest_in_window_of(lambda r, c: resize_bilinear_at(low, (32, 32), r, c), 32, 32, refs, points, 3,
                               implementation=implementation)
    want = nearest_in_window(full, refs, points, 3, implementation="xla")
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    assert np.any(np.asarray(want) != points)  # the search moved points, so the comparison says something
