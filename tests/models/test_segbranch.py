"""Ensembling rules and small pieces of the segmentation branch, against values worked out by hand."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.models import segbranch


def test_majority_vote_takes_the_most_frequent_argmax_and_breaks_ties_to_the_smaller_id():
    # 3 pixels, 4 models, 3 classes: per-model argmaxes [2,2,1,0], [1,0,1,0] (tie 0/1 -> 0), [2,1,0,2]
    argmaxes = np.array([[2, 2, 1, 0], [1, 0, 1, 0], [2, 1, 0, 2]])
    logits = np.eye(3)[argmaxes] * 5.0  # [P, M, C]
    np.testing.assert_array_equal(np.asarray(segbranch.majority_vote(jnp.asarray(logits))), [2, 0, 2])
    # the mean-logit rule can disagree: pixel 1's mean logits are (2.5, 2.5, 0) -> 0, pixel 0's (1.25, 1.25, 2.5)
    np.testing.assert_array_equal(np.asarray(segbranch.mean_logit_labels(jnp.asarray(logits))), [2, 0, 2])
    logits[0, 3] = [0, 0, 40.0]  # one confident model outweighs the others' mean, not their vote
    logits[0, :3] = np.eye(3)[[0, 0, 0]] * 5.0
    assert int(segbranch.majority_vote(jnp.asarray(logits))[0]) == 0
    assert int(segbranch.mean_logit_labels(jnp.asarray(logits))[0]) == 2


def test_js_uncertainty_is_zero_for_agreeing_models_and_ln2_for_opposite_certain_ones():
    agree = np.tile(np.array([[1.0, -2.0, 0.5]]), (3, 1))  # [M, C], identical models
    opposite = np.array([[60.0, 0.0], [0.0, 60.0]])  # two certain models, different classes
    np.testing.assert_allclose(float(segbranch.js_uncertainty(jnp.asarray(agree))), 0.0, atol=1e-6)
    np.testing.assert_allclose(float(segbranch.js_uncertainty(jnp.asarray(opposite))), np.log(2), rtol=1e-5)
    # a half-certain pair: p = (1, 0) and (0.5, 0.5): H(mean) = H(0.75, 0.25), mean H = ln2 / 2
    half = np.array([[80.0, 0.0], [0.0, 0.0]])
    expected = -(0.75 * np.log(0.75) + 0.25 * np.log(0.25)) - np.log(2) / 2
    np.testing.assert_allclose(float(segbranch.js_uncertainty(jnp.asarray(half))), expected, rtol=1e-5)


def test_image_uncertainty_averages_the_top_tenth():
    values = jnp.arange(40, dtype=jnp.float32).reshape(5, 8)  # top 4 of 40: 36..39
    assert float(segbranch.image_uncertainty(values)) == pytest.approx(37.5)
    assert float(segbranch.image_uncertainty(jnp.arange(5.0))) == pytest.approx(2.0)  # < 10 pixels: all


def test_taps_follow_torch_upsample_rules():
    np.testing.assert_array_equal(segbranch.nearest_taps(4, 16), np.repeat(np.arange(4), 4))
    np.testing.assert_array_equal(segbranch.nearest_taps(8, 4), [0, 2, 4, 6])  # downsampling keeps even pixels
    fmap = jnp.arange(16, dtype=jnp.float32).reshape(4, 4, 1)
    # bilinear x2, align_corners=False: output d sits at source (d + 0.5) / 2 - 0.5, clamped at 0. Output (0, 1):
    # row 0, column 0.25 -> 0.25; output (1, 1): rows 0/1 and columns 0/1 weighted 0.75/0.25 ->
    # 0.75 * (0.75 * 0 + 0.25 * 1) + 0.25 * (0.75 * 4 + 0.25 * 5) = 1.25
    got = segbranch.gather_upsampled(fmap, jnp.array([0, 0, 1]), jnp.array([0, 1, 1]), 8, "bilinear")[:, 0]
    np.testing.assert_allclose(np.asarray(got), [0.0, 0.25, 1.25], rtol=1e-6)


def test_config_widths_follow_the_class_count():
    assert segbranch.SegBranchConfig(6016, 31).hidden == (128, 32)
    assert segbranch.SegBranchConfig(6016, 32).hidden == (256, 128)
    with pytest.raises(ValueError, match="num_models must be positive"):
        segbranch.SegBranchConfig(10, 3, 0)
