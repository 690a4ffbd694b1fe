"""sample_bilinear_zeros / grid_coordinate against direct bilinear sampling with zero padding."""

import jax
import numpy as np

from jaxgan.ops.grid_sample import grid_coordinate, sample_bilinear_zeros


def direct_bilinear(x, r, c):
    """Plain float64 bilinear sampling of x [H, W, C] at (r, c), taps outside the map read 0."""
    h, w = x.shape[:2]
    r0, c0 = int(np.floor(r)), int(np.floor(c))
    total = np.zeros(x.shape[-1])
    for dr, dc in ((0, 0), (0, 1), (1, 0), (1, 1)):
        rr, cc = r0 + dr, c0 + dc
        weight = (1 - abs(r - rr)) * (1 - abs(c - cc))
        if 0 <= rr < h and 0 <= cc < w:
            total += weight * x[rr, cc]
    return total


def test_matches_direct_bilinear_inside_and_at_the_border():
    x = np.asarray(jax.random.normal(jax.random.key(0), (9, 11, 3)), np.float64)
    points = [(0.0, 0.0), (3.25, 4.5), (8.0, 10.0), (-0.5, 2.0), (8.7, 3.3), (4.0, 10.6), (-1.5, -1.5)]
    rows = np.asarray([p[0] for p in points], np.float32)
    cols = np.asarray([p[1] for p in points], np.float32)
    ours = np.asarray(sample_bilinear_zeros(x.astype(np.float32), rows, cols))
    for k, (r, c) in enumerate(points):
        np.testing.assert_allclose(ours[k], direct_bilinear(x, r, c), atol=1e-6, err_msg=str((r, c)))
    np.testing.assert_array_equal(ours[-1], 0)  # every tap outside


def test_grid_round_trip_stays_within_float32_rounding_of_the_pixel():
    pixels = np.arange(256, dtype=np.float32) + np.float32(0.6)
    back = np.asarray(grid_coordinate(pixels, 256))
    # Two float32 ulps at the far edge (spec draggan.md §1.7 measured 1.2e-5 in torch).
    assert np.max(np.abs(back - pixels)) <= 2 * np.spacing(np.float32(256))
    # An exact integer may come back just below itself, which is why the round trip is kept (floor changes).
    assert np.any(np.asarray(grid_coordinate(np.arange(256, dtype=np.float32), 256)) != np.arange(256))
