"""jaxgan's segmentation branch against the official EditGAN code (../shared/fixtures/editgan_segbranch_res64.npz).

The fixture ran EditGAN's generator class on the rosinality 64 px weights and three seeded DatasetGAN classifiers
(12 classes, dim 1024); the classifiers are read here from the official `model_N.pth` files through the converter.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from checkpoints_convert.rosinality import convert_rosinality
from checkpoints_convert.segbranch import convert_segbranch
from jaxgan.models import segbranch
from tests.helpers import fixture_path, load_fixture, nchw_to_nhwc

MODES = segbranch.FEATURE_MODES


@pytest.fixture(scope="module")
def fixture():
    data, meta = load_fixture("editgan_segbranch_res64.npz")
    G = convert_rosinality(fixture_path("rosinality_G_res64.pt"))[0]["G"]
    S = convert_segbranch([fixture_path("editgan_classifiers_res64")])[0]["S"]
    img, feats = jax.jit(segbranch.layer_features)(G, data["out/w_plus_trunc"])
    return data, meta, G, S, img, feats


def _image_features(feats, b):
    return tuple(f[b] for f in feats)


def test_layer_features_match_official_feature_list(fixture):
    data, meta, G, S, img, feats = fixture
    assert len(feats) == 10
    assert segbranch.FeatureLayout.of_generator(G.config).feature_dim == meta["dim"] == S.config.feature_dim
    np.testing.assert_allclose(np.asarray(img), nchw_to_nhwc(data["out/img"]), atol=2e-5)
    for i, f in enumerate(feats):
        np.testing.assert_allclose(np.asarray(f), nchw_to_nhwc(data[f"out/feat{i}"]), atol=2e-5, rtol=0)


def test_converted_classifiers_match_fixture_weights(fixture):
    data, meta, G, S, img, feats = fixture
    assert S.config == segbranch.SegBranchConfig(feature_dim=1024, num_classes=12, num_models=3)
    net = S.module()
    for m in range(3):
        np.testing.assert_array_equal(np.asarray(net.fc0.weight[...][m]), data[f"classifier{m}/layers.0.weight"])
        np.testing.assert_array_equal(np.asarray(net.bn1.running_var[...][m]),
                                      data[f"classifier{m}/layers.5.running_var"])
        np.testing.assert_array_equal(np.asarray(net.fc2.bias[...][m]), data[f"classifier{m}/layers.6.bias"])


@pytest.mark.parametrize("mode", MODES)
def test_pixel_features_match_official_upsampled_features(fixture, mode):
    data, meta, G, S, img, feats = fixture
    ys, xs = jnp.asarray(data["in/pix_y"], jnp.int32), jnp.asarray(data["in/pix_x"], jnp.int32)
    for b in range(2):
        got = segbranch.pixel_features(_image_features(feats, b), ys, xs, 64, mode)
        np.testing.assert_allclose(np.asarray(got), data[f"out/{mode}_pixfeat"][b], atol=2e-5, rtol=0)


@pytest.mark.parametrize("mode", MODES)
def test_mean_logits_and_segmentation_match_official(fixture, mode):
    data, meta, G, S, img, feats = fixture
    run = jax.jit(functools.partial(segbranch.segment_logits, out_res=64, mode=mode))
    for b in range(2):
        logits = run(S, _image_features(feats, b))
        reference = np.transpose(data[f"out/{mode}_mean_logits_b{b}"], (1, 2, 0))
        scale = np.abs(reference).max()
        np.testing.assert_allclose(np.asarray(segbranch.mean_logits(logits)), reference, atol=1e-6 * scale, rtol=0)
        np.testing.assert_array_equal(np.asarray(segbranch.mean_logit_labels(logits)), data[f"out/{mode}_seg_b{b}"])


@pytest.mark.parametrize("mode", MODES)
def test_tiled_and_projected_paths_agree_with_gather_then_classify(fixture, mode):
    """The memory-lean evaluation (projection at each map's resolution, tiles) equals the official order of
    operations (gather the full feature vector, then the classifier) up to float32 rounding."""
    data, meta, G, S, img, feats = fixture
    image = _image_features(feats, 0)
    ys, xs = segbranch.all_pixels(64)
    direct = segbranch.ensemble_logits(S, segbranch.pixel_features(image, ys, xs, 64, mode))  # [M, P, C]
    tiled = segbranch.pixel_logits(S, image, ys, xs, 64, mode, tile=1000)  # 5 tiles, the last one partial
    np.testing.assert_allclose(np.asarray(tiled), np.transpose(np.asarray(direct), (1, 0, 2)), atol=1e-7, rtol=1e-5)
