"""EditGAN editing, edit vectors and refinement (jaxgan/edit/editgan.py) on the fixture generator and classifiers.

The fixture's classifiers are seeded random networks, so their segmentation is not semantic; the editing test that
needs a segmentation that follows the image trains one first (tests/edit/test_editgan_semantic.py). Here: the
loss against the official order of operations, the dilation, batching, scale 0, and refusals.

The loss values are checked where every term is non-zero against numbers computed here from the official
fixture (editgan_segbranch_res64.npz: the official images and nearest-upsampled ensemble-mean logits of two
latents) and numpy: 15 * (10 LPIPS + 5 MSE) of the images masked outside the region dilated as cv2.dilate(3x3, 3
iterations) + the cross-entropy of the mean logits inside it (editgan.md §4.1, §4.3: EditGAN_tool.py:316-391,
170-293).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from checkpoints_convert.lpips import convert_lpips
from checkpoints_convert.rosinality import convert_rosinality
from checkpoints_convert.segbranch import convert_segbranch
from jaxgan import parallel
from jaxgan.edit import editgan
from jaxgan.models import segbranch
from tests.helpers import fixture_path, load_fixture, naive_lpips_vgg, nchw_to_nhwc


@pytest.fixture(scope="module")
def models():
    G = convert_rosinality(fixture_path("rosinality_G_res64.pt"))[0]["G"]
    S = convert_segbranch([fixture_path("editgan_classifiers_res64")])[0]["S"]
    L = convert_lpips(fixture_path("vgg16_random_trunk_fp16.pth"), fixture_path("lpips_v0.1_vgg_lin.pth"))[0]
    ws = load_fixture("editgan_segbranch_res64.npz")[0]["out/w_plus_trunc"]
    return G, S, L["LPIPS"], ws


@pytest.fixture(scope="module")
def official():
    """The official images (NHWC, [-1, 1]), nearest-upsampled mean logits [2, 12, H, W] and their argmax [2, H, W]
    of the fixture's two latents (EditGAN's generator and classifiers, torch nn.Upsample(mode='nearest'))."""
    data = load_fixture("editgan_segbranch_res64.npz")[0]
    logits = np.stack([data[f"out/nearest_mean_logits_b{b}"] for b in range(2)]).astype(np.float64)
    seg = np.stack([data[f"out/nearest_seg_b{b}"] for b in range(2)])
    return nchw_to_nhwc(data["out/img"]).astype(np.float64), logits, seg


def _cv2_dilate(mask, iterations=3):
    """cv2.dilate(mask, np.ones((3, 3)), iterations=3): each pass sets a pixel when any of its 3x3 neighbours
    inside the image is set (pixels beyond the border count as unset)."""
    out = np.asarray(mask, bool)
    for _ in range(iterations):
        padded = np.pad(out, 1)
        out = np.zeros_like(out)
        for dy in range(3):
            for dx in range(3):
                out |= padded[dy: dy + mask.shape[0], dx: dx + mask.shape[1]]
    return out


def _official_loss_terms(image, reference, region, target, logits):
    """[LPIPS, MSE, CE, total] of EditGAN's edit / refinement loss, from the official images ([-1, 1], NHWC)
    and mean logits [C, H, W], in numpy: x and x0 in [0, 1], m = 1 - dilate(region),
    LPIPS(x m, x0 m) (normalize=True: 2 v - 1), mean((x m - x0 m)^2) over all pixels and channels,
    CE of the mean logits at the dilated region's pixels against `target`, averaged over them, and
    15 * (10 LPIPS + 5 * 1 MSE) + 1 CE (rgb_loss_weight 15, p_loss 10, 5 * mse_loss 1, ce weight 1)."""
    dilated = _cv2_dilate(region)
    m = (~dilated).astype(np.float64)[None, :, :, None]
    x, x0 = (image[None] + 1) / 2 * m, (reference[None] + 1) / 2 * m
    lpips = float(naive_lpips_vgg(2 * x - 1, 2 * x0 - 1)[0])
    mse = float(np.mean((x - x0) ** 2))
    z = logits[:, dilated].T  # [pixels, classes]
    log_p = z - z.max(axis=1, keepdims=True)
    log_p = log_p - np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    ce = float(-log_p[np.arange(len(z)), target[dilated]].mean())
    return np.array([lpips, mse, ce, 15 * (10 * lpips + 5 * 1 * mse) + 1 * ce])


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


def test_edit_loss_matches_official_order_of_operations(models, official):
    """At w0 the RGB terms vanish and the cross-entropy equals the official one: the official nearest-upsampled
    ensemble-mean logits (the fixture's) at the pixels of the region dilated as cv2.dilate, mean CE."""
    G, S, L, ws = models
    region = _square()
    target = np.full((64, 64), 7, np.int32)
    images, _ = editgan.render(G, S, ws[:1])
    problems, _ = editgan.make_problems(ws[:1], (images + 1) / 2, region[None], target[None],
                                        editgan.EditConfig())
    problem = jax.tree_util.tree_map(lambda a: jnp.asarray(a[0]), problems)
    parts = _losses(G, S, L, problem)
    logits = official[1][0][:, _cv2_dilate(region)].T  # [pixels, classes]
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected_ce = -log_p[:, 7].mean()
    assert float(parts[0]) < 1e-9 and float(parts[1]) < 1e-9
    np.testing.assert_allclose(float(parts[2]), expected_ce, rtol=1e-5)
    np.testing.assert_allclose(float(parts[3]), float(parts[2]), rtol=1e-6)


def test_problem_masks_are_the_cv2_dilated_region():
    """make_problems: the RGB mask is 1 outside the region dilated by three 3x3 passes (a 7x7 square, no growth
    from the border), the cross-entropy pixels are the dilated region's, row-major, with their target labels."""
    region = np.zeros((64, 64), bool)
    region[30:34, 40:42] = region[0, 0] = region[63, 20] = region[50, 61:64] = True  # borders and corners
    target = np.random.default_rng(2).integers(0, 12, (64, 64)).astype(np.int32)
    problems, dilated = editgan.make_problems(np.zeros((1, 10, 64), np.float32), np.zeros((1, 64, 64, 3)),
                                              region[None], target[None], editgan.EditConfig())
    expected = _cv2_dilate(region)
    assert expected.sum() == 10 * 8 + 4 * 4 + 4 * 7 + 7 * 6  # 7x7 squares clipped at the borders
    np.testing.assert_array_equal(dilated[0], expected)
    np.testing.assert_array_equal(problems.outside[0], (~expected).astype(np.float32))
    ys, xs = np.nonzero(expected)
    count = len(ys)
    np.testing.assert_array_equal(problems.roi_y[0, :count], ys)
    np.testing.assert_array_equal(problems.roi_x[0, :count], xs)
    np.testing.assert_array_equal(problems.roi_label[0, :count], target[ys, xs])
    np.testing.assert_array_equal(problems.roi_weight[0], np.arange(problems.roi_weight.shape[1]) < count)


def test_edit_loss_with_every_term_nonzero_matches_the_official_formula(models, official):
    """The loss of latent 0 against latent 1's image as RGB reference (so LPIPS and MSE are not 0), a region
    covering part of the image, random target labels: each term and the weighted total against numpy and the
    official images and logits."""
    G, S, L, ws = models
    images, logits, _ = official
    region = _square()
    target = np.random.default_rng(3).integers(0, 12, (64, 64)).astype(np.int32)
    problems, _ = editgan.make_problems(ws[:1], (images[1:] + 1) / 2, region[None], target[None],
                                        editgan.EditConfig())
    problem = jax.tree_util.tree_map(lambda a: jnp.asarray(a[0]), problems)
    parts = np.asarray(_losses(G, S, L, problem))
    expected = _official_loss_terms(images[0], images[1], region, target, logits[0])
    assert expected[:3].min() > 0.01  # every term counts
    np.testing.assert_allclose(parts, expected, rtol=5e-6)  # measured 2e-7


def test_refinement_loss_of_apply_and_refine_matches_the_official_formula(models, official):
    """apply_and_refine from latent 0 with the vector to latent 1 (scale 1) and class 11: the first refinement
    loss is at latent 1, the RGB reference is latent 0's image, the region the class-11 pixels of either nearest
    segmentation (dilated), the target labels latent 1's segmentation (editgan.md §4.3)."""
    G, S, L, ws = models
    images, logits, seg = official
    # The batching test's configuration and 2-device mesh (this one problem padded to two, region capacity 2048):
    # the two tests share one compilation of the refinement step.
    cfg = editgan.EditConfig(steps=3)
    result = editgan.apply_and_refine(G, S, L, ws[:1], ws[1] - ws[0], [11], 1.0, cfg,
                                      mesh=parallel.data_mesh(jax.local_devices()[:2]))
    region = (seg[0] == 11) | (seg[1] == 11)
    assert 0 < _cv2_dilate(region).sum() < 64 * 64 / 2
    assert result["region_pixels"][0] == _cv2_dilate(region).sum()
    expected = _official_loss_terms(images[1], images[0], region, seg[1], logits[1])
    assert expected[:3].min() > 0.01
    assert result["losses"].shape == (1, 2, 4)
    np.testing.assert_allclose(result["losses"][0, 0], expected, rtol=5e-6)  # measured 5e-7


@pytest.mark.slow  # a longer check that CI skips (`pytest -m slow` runs it)
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
