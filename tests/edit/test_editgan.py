"""EditGAN editing, edit vectors and refinement (jaxgan/edit/editgan.py) on the fixture generator and classifiers.

The fixture's classifiers are seeded random networks, so their segmentation is not semantic; the editing test that
needs a segmentation that follows the image trains one first (tests/edit/test_editgan_semantic.py). Here: the
loss against the official order of operations, the dilation, batching, scale 0, and refusals.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from checkpoints_convert.lpips_vgg import convert_lpips_vgg
from checkpoints_convert.rosinality import convert_rosinality
from checkpoints_convert.segbranch import convert_segbranch
from jaxgan import parallel
from jaxgan.edit import editgan
from jaxgan.models import segbranch
from tests.helpers import fixture_path, load_fixture


@pytest.fixture(scope="module")
def models():
    G = convert_rosinality(fixture_path("rosinality_G_res64.pt"))[0]["G"]
    S = convert_segbranch([fixture_path("editgan_classifiers_res64")])[0]["S"]
    L = convert_lpips_vgg(fixture_path("vgg16_random_trunk_fp16.pth"), fixture_path("lpips_v0.1_vgg_lin.pth"))[0]
    ws = load_fixture("editgan_segbranch_res64.npz")[0]["out/w_plus_trunc"]
    return G, S, L["LPIPS"], ws


def _square(size=64, lo=20, hi=36):
    region = np.zeros((size, size), bool)
    region[lo:hi, lo:hi] = True
    return region


@jax.jit
def _losses(G, S, L, problem):
    return editgan.edit_losses(G, S, L, problem.w_start, problem, editgan.EditConfig())[1]


def test_dilation_is_three_3x3_dilations_without_border_growth():
    rng = np.random.default_rng(0)
    mask = rng.random((20, 17)) < 0.03
    mask[0, 5] = mask[19, 16] = True  # at the borders
    expected = mask.copy()
    for _ in range(3):  # cv2.dilate(ones(3,3), iterations=3), written out with explicit neighbours
        grown = expected.copy()
        for y, x in zip(*np.nonzero(expected)):
            grown[max(y - 1, 0): y + 2, max(x - 1, 0): x + 2] = True
        expected = grown
    np.testing.assert_array_equal(editgan.dilate_square(mask, 7), expected)


def test_region_pixels_are_row_major_and_padded_with_zero_weight():
    region = np.zeros((4, 5), bool)
    region[1, 3] = region[0, 4] = region[3, 0] = True
    labels = np.arange(20).reshape(4, 5)
    ys, xs, lab, weight = editgan.region_pixels(region, labels, 8)
    np.testing.assert_array_equal(ys[:3], [0, 1, 3])
    np.testing.assert_array_equal(xs[:3], [4, 3, 0])
    np.testing.assert_array_equal(lab[:3], [4, 8, 15])
    np.testing.assert_array_equal(weight, [1, 1, 1, 0, 0, 0, 0, 0])
    assert editgan.capacity_for(3) == editgan.MIN_CAPACITY and editgan.capacity_for(1000) == 1024
    assert editgan.capacity_for(1024) == 1024 and editgan.capacity_for(1025) == 2048


def test_touched_classes():
    before = np.array([[0, 1, 1], [2, 2, 3]])
    target = np.array([[0, 4, 1], [2, 0, 3]])
    region = np.ones_like(before, bool)
    assert editgan.touched_classes(before, target, region) == [1, 2, 4]  # 0 (background) is never a class id
    assert editgan.touched_classes(before, before, region) == [1, 2, 3]  # nothing changes: the region's classes


def test_edit_loss_matches_official_order_of_operations(models):
    """At w0 the RGB terms vanish and the cross-entropy equals the official one: nearest-upsampled full feature
    vectors at the dilated region's pixels (row-major), each classifier, mean of the logits, mean CE."""
    G, S, L, ws = models
    region = _square()
    target = np.full((64, 64), 7, np.int32)
    images, _ = editgan.render(G, S, ws[:1])
    problems, dilated = editgan.make_problems(ws[:1], (images + 1) / 2, region[None], target[None],
                                              editgan.EditConfig())
    problem = jax.tree_util.tree_map(lambda a: jnp.asarray(a[0]), problems)
    parts = _losses(G, S, L, problem)
    _, feats = segbranch.layer_features(G, ws[:1])
    ys, xs = np.nonzero(dilated[0])
    vectors = segbranch.pixel_features(tuple(f[0] for f in feats), jnp.asarray(ys), jnp.asarray(xs), 64, "nearest")
    logits = np.asarray(segbranch.ensemble_logits(S, vectors)).mean(axis=0)
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected_ce = -log_p[:, 7].mean()
    assert float(parts[0]) < 1e-9 and float(parts[1]) < 1e-9
    np.testing.assert_allclose(float(parts[2]), expected_ce, rtol=1e-5)
    np.testing.assert_allclose(float(parts[3]), float(parts[2]), rtol=1e-6)


def test_batched_sharded_optimisation_equals_one_at_a_time(models):
    """Two refinements with different regions (so different padding) batched on 2 devices vs each alone.

    Refinement runs the same optimiser as an edit, but starts away from its RGB reference, so the gradient is
    well determined. (At the start of an edit the RGB terms are 0 and the random fixture classifiers give a tiny
    cross-entropy gradient, which Adam's normalisation turns float32 noise into lr-sized steps: no test of
    batching could be read from that.)"""
    G, S, L, ws = models
    vector = 0.3 * np.random.default_rng(0).normal(size=ws.shape[1:]).astype(np.float32)
    cfg = editgan.EditConfig(steps=3)
    together = editgan.apply_and_refine(G, S, L, ws, vector, [11], 1.0, cfg,
                                        mesh=parallel.data_mesh(jax.local_devices()[:2]))
    sizes = together["region_pixels"]
    assert sizes[0] != sizes[1] and sizes.min() > 0, sizes
    alone = editgan.apply_and_refine(G, S, L, ws[1:], vector, [11], 1.0, cfg,  # the second: its problem is padded
                                     mesh=parallel.data_mesh(jax.local_devices()[:1]))
    assert alone["region_pixels"][0] == sizes[1]
    np.testing.assert_allclose(together["losses"][1], alone["losses"][0], rtol=1e-5)
    np.testing.assert_allclose(together["ws"][1], alone["ws"][0], atol=5e-5)  # measured 4.1e-6
    assert np.abs(together["ws"] - (ws + vector)).max() > 0.01  # the updates did move the latents


def test_region_padding_does_not_change_the_loss(models):
    """A batch shares the largest region's capacity: padding entries (weight 0) leave the loss unchanged."""
    G, S, L, ws = models
    images, _ = editgan.render(G, S, ws[:1])
    target = np.full((1, 64, 64), 9, np.int32)
    losses = []
    for capacity in (512, 2048):
        problems, dilated = editgan.make_problems(ws[:1], (images + 1) / 2, _square()[None], target,
                                                  editgan.EditConfig(), capacity=capacity)
        problem = jax.tree_util.tree_map(lambda a: jnp.asarray(a[0]), problems)
        losses.append(_losses(G, S, L, problem))
    assert int(dilated.sum()) == 22 * 22
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-6, atol=1e-12)


def test_scale_zero_is_the_identity(models):
    G, S, L, ws = models
    vector = np.random.default_rng(1).normal(size=ws.shape[1:]).astype(np.float32)
    result = editgan.apply_and_refine(G, S, None, ws, vector, [3], 0.0)
    np.testing.assert_array_equal(result["ws"], ws)
    np.testing.assert_array_equal(result["images_after"], result["images_before"])
    np.testing.assert_array_equal(result["labels_after"], result["labels_before"])
    moved = editgan.apply_and_refine(G, S, None, ws, vector, [3], 0.5)
    np.testing.assert_allclose(moved["ws"], ws + 0.5 * vector, rtol=1e-6)


def test_refinement_leaves_images_without_the_vectors_classes_as_the_vector_made_them(models):
    G, S, L, ws = models
    _, labels = editgan.render(G, S, ws, mode="nearest")
    absent = next(c for c in range(S.config.num_classes) if not np.isin(c, labels).any())
    vector = np.full(ws.shape[1:], 0.01, np.float32)
    untouched = editgan.apply_and_refine(G, S, L, ws, vector, [absent], 1.0, editgan.EditConfig(steps=3))
    np.testing.assert_array_equal(untouched["region_pixels"], [0, 0])
    np.testing.assert_array_equal(untouched["ws"], ws + vector)
    assert untouched["losses"].shape == (2, 2, 4) and not untouched["losses"].any()


@pytest.mark.parametrize("case, message", [
    ("size", "must have shape"),
    ("class", "has class id 12"),
    ("empty", "edit region 1 marks no pixels"),
    ("ws", "latents must have shape"),
])
def test_bad_edit_inputs_are_refused(models, case, message):
    G, S, L, ws = models
    targets = np.zeros((2, 64, 64), np.int32)
    regions = np.stack([_square(), _square()])
    if case == "size":
        targets = np.zeros((2, 32, 32), np.int32)
    elif case == "class":
        targets[1, 3, 3] = 12
    elif case == "empty":
        regions[1] = False
    elif case == "ws":
        ws = ws[:, :5]
    with pytest.raises(ValueError, match=message):
        editgan.edit(G, S, L, ws, targets, regions, editgan.EditConfig(steps=2))


def test_segmentation_branch_for_another_generator_is_refused(models):
    G, S, L, ws = models
    other = segbranch.init_segbranch(segbranch.SegBranchConfig(feature_dim=999, num_classes=4, num_models=2),
                                     jax.random.key(0))
    with pytest.raises(ValueError, match="expects 999 feature channels"):
        editgan.render(G, other, ws)
