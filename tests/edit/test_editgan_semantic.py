"""An EditGAN edit with a segmentation branch whose classes mean something in the image.

The fixture classifiers are random, so here a branch is trained (jaxgan.edit.segtrain, the official recipe, a
few epochs) on the fixture generator's images with labels that follow the image: 1 for the brightest third of
the pixels, 2 for the darkest third, 0 otherwise. Asking a region of a held-out image to become "bright" must lower the region's
cross-entropy, brighten the region, and change the image outside the (dilated) region much less than inside.
"""

import jax
import numpy as np
import pytest

from checkpoints_convert.lpips import convert_lpips
from checkpoints_convert.rosinality import convert_rosinality
from jaxgan import sampling
from jaxgan.edit import editgan, segtrain
from jaxgan.models import stylegan2
from tests.helpers import fixture_path

BRIGHT, DARK = 1, 2


def luminance_labels(images):
    """images [N, H, W, 3] -> labels by the tertiles of all pixels' luminance (mean of RGB)."""
    luma = images.mean(axis=-1)
    dark, bright = np.quantile(luma, [1 / 3, 2 / 3])
    return np.where(luma > bright, BRIGHT, np.where(luma < dark, DARK, 0)).astype(np.int32)


@pytest.fixture(scope="module")
def trained():
    G = convert_rosinality(fixture_path("rosinality_G_res64.pt"))[0]["G"]
    L = convert_lpips(fixture_path("vgg16_random_trunk_fp16.pth"), fixture_path("lpips_v0.1_vgg_lin.pth"))[0]
    seeds = [0, 1, 2, 4, 5, 6, 3]  # the last one, the most varied image, is held out for the edit
    ws = np.asarray(stylegan2.mapping(G, sampling.z_from_seeds(seeds, G.config.z_dim), truncation_psi=0.7))
    images = np.asarray(stylegan2.synthesis(G, ws))
    labels = luminance_labels(images)
    S, _ = segtrain.train_segbranch(G, ws[:-1], labels[:-1], 3, jax.random.key(0), num_models=3,
                                    config=segtrain.SegTrainConfig(max_epochs=3))
    return G, S, L["LPIPS"], ws[-1:], labels[-1:]


@pytest.mark.slow  # a longer check that CI skips (`pytest -m slow` runs it)
def test_edit_towards_bright_brightens_the_region_and_keeps_the_rest(trained):
    G, S, L, ws, labels = trained
    region = np.zeros((1, 64, 64), bool)
    region[0, 24:40, 24:40] = True
    target = labels.copy()
    target[region] = BRIGHT
    assert (labels[region] != BRIGHT).mean() > 0.3  # the edit asks for a real change
    result = editgan.edit(G, S, L, ws, target, region, editgan.EditConfig(steps=30))
    ce = result["losses"][0, :, 2]
    before, after = result["images_before"][0], result["images_after"][0]
    change = np.abs(after - before).mean(axis=-1)
    outside = ~editgan.dilate_square(region[0], 7)
    inside_change, outside_change = change[region[0]].mean(), change[outside].mean()
    # measured: CE 3.87 -> 1.75, region luminance -0.08 -> 0.45, mean change 0.54 inside vs 0.086 outside,
    # bright share of the region 0.10 -> 0.56
    assert ce[-1] < 0.6 * ce[0], ce
    assert after[region[0]].mean() > before[region[0]].mean() + 0.2
    assert inside_change > 3 * outside_change, (inside_change, outside_change)
    bright_after = (result["labels_after"][0][region[0]] == BRIGHT).mean()
    bright_before = (result["labels_before"][0][region[0]] == BRIGHT).mean()
    assert bright_after > bright_before + 0.3, (bright_before, bright_after)
    assert BRIGHT in result["class_ids"][0]
