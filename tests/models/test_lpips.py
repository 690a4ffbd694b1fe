"""jaxgan.models.lpips beyond parity: which pairs a batch compares, and batched distances equal to one call per
pair whatever the batch size."""

import numpy as np
import pytest

from checkpoints_convert.lpips import convert_lpips
from jaxgan.models import lpips
from tests.helpers import fixture_path


def test_pairs():
    assert lpips.lpips_pairs(4) == [(0, 1), (0, 2), (0, 3)]
    assert lpips.lpips_pairs(3, all_pairs=True) == [(0, 1), (0, 2), (1, 2)]


@pytest.mark.slow  # a longer check that CI skips (`pytest -m slow` runs it)
def test_batched_distances_equal_one_call_per_pair():
    models, _ = convert_lpips(fixture_path("vgg16_random_trunk_fp16.pth"), fixture_path("lpips_v0.1_vgg_lin.pth"))
    model = models["LPIPS"]
    images = np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 3)).astype(np.float32)
    pairs = lpips.lpips_pairs(4, all_pairs=True)  # 6 pairs: more than the 4 devices, so two chunks at batch 1
    one_by_one = [float(lpips.lpips_distance(model, images[i][None], images[j][None])[0]) for i, j in pairs]
    for batch_size in (1, 8):
        np.testing.assert_allclose(lpips.lpips_distances(model, images, pairs, batch_size=batch_size), one_by_one,
                                   rtol=1e-5, atol=1e-7)
