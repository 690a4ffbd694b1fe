"""Pixel-classifier training (jaxgan.edit.segtrain, ../shared/specs/editgan.md §2.2) on the 64 px fixture generator.

The labels are a learnable function of the generator's features: the argmax of a fixed random linear projection of
each pixel's standardised bilinear feature vector (a random linear "teacher"). The ensemble is trained on four
images and scored on a fifth it never saw.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from checkpoints_convert.rosinality import convert_rosinality
from jaxgan.edit import segtrain
from jaxgan.models import segbranch, stylegan2
from jaxgan.models.stylegan2 import GeneratorConfig
from tests.helpers import fixture_path

NUM_CLASSES = 3
NUM_MODELS = 3
NUM_TRAIN = 4
RES = 64


@pytest.fixture(scope="module")
def problem():
    G = convert_rosinality(fixture_path("rosinality_G_res64.pt"))[0]["G"]
    ws = stylegan2.mapping(G, jax.random.normal(jax.random.key(1), (NUM_TRAIN + 1, G.config.z_dim)),
                           truncation_psi=0.7)
    features = segtrain.stored_features(G, ws)
    ys, xs = segbranch.all_pixels(RES)
    every_pixel = jax.jit(jax.vmap(lambda *maps: segbranch.pixel_features(maps, ys, xs, RES, "bilinear")))
    x = every_pixel(*features).astype(jnp.float32)  # [N, P, D]
    x = (x - x.mean(axis=(0, 1))) / (x.std(axis=(0, 1)) + 1e-6)
    teacher = jax.random.normal(jax.random.key(2), (x.shape[-1], NUM_CLASSES))
    masks = np.asarray(jnp.argmax(x @ teacher, axis=-1)).reshape(-1, RES, RES).astype(np.int32)
    return G, np.asarray(ws), masks


def _train(problem, key, **config):
    G, ws, masks = problem
    cfg = segtrain.SegTrainConfig(**config)
    return segtrain.train_segbranch(G, ws[:NUM_TRAIN], masks[:NUM_TRAIN], NUM_CLASSES, key,
                                    num_models=NUM_MODELS, config=cfg)


@pytest.fixture(scope="module")
def trained(problem):
    return _train(problem, jax.random.key(0), max_epochs=3)


def test_training_lowers_the_loss_and_generalises_to_a_held_out_image(problem, trained):
    G, ws, masks = problem
    S, report = trained
    assert S.config == segbranch.SegBranchConfig(feature_dim=1024, num_classes=NUM_CLASSES, num_models=NUM_MODELS)
    assert report["steps_per_epoch"] == NUM_TRAIN * RES * RES // 64 and report["dropped_pixels_per_epoch"] == 0
    assert report["iterations"] == [3 * report["steps_per_epoch"]] * NUM_MODELS
    assert report["epochs"] == [3] * NUM_MODELS and report["stopped_early"] == [False] * NUM_MODELS
    first, last = np.array(report["epoch_mean_loss"][0]), np.array(report["epoch_mean_loss"][-1])
    # Measured: first-epoch means ~0.46, third ~0.25 (chance is ln 3 = 1.10).
    assert np.all(last < 0.75 * first) and np.all(last < 0.4 * math.log(NUM_CLASSES))

    held_out = segtrain.evaluate(S, G, ws[NUM_TRAIN:], masks[NUM_TRAIN:])
    majority = np.bincount(masks[NUM_TRAIN].reshape(-1)).max() / RES ** 2  # 0.44 for this image
    # Measured (keys 0, 1, 2): held-out pixel accuracy 0.83-0.85, every class 0.73 or more, mIoU 0.70-0.72;
    # the training images 0.93-0.94.
    assert held_out["pixel_accuracy"] > 0.75 > majority + 0.25
    assert min(held_out["per_class_accuracy"]) > 0.6 and held_out["miou"] > 0.6
    assert held_out["confusion"].sum() == RES * RES
    seen = segtrain.evaluate(S, G, ws[:NUM_TRAIN], masks[:NUM_TRAIN])
    assert seen["pixel_accuracy"] > held_out["pixel_accuracy"]
    assert seen["confusion"].sum() == NUM_TRAIN * RES * RES


def test_features_are_stored_float16_at_native_resolution_and_counted():
    layout = segbranch.FeatureLayout((4, 4, 8, 8), (3, 3, 5, 5))
    assert segtrain.feature_bytes(layout, 7) == 7 * (2 * 16 * 3 + 2 * 64 * 5) * 2
    # The module docstring's number: 32 images from a 512 px config-f generator (rosinality channel multiplier 2).
    config_f = GeneratorConfig(z_dim=512, c_dim=0, w_dim=512, img_resolution=512, img_channels=3,
                               channels=(512, 512, 512, 512, 512, 256, 128, 64))
    assert segbranch.FeatureLayout.of_generator(config_f).feature_dim == 6016
    assert segtrain.feature_bytes(segbranch.FeatureLayout.of_generator(config_f), 32) == 4_115_660_800


def test_stored_features_match_the_generator(problem):
    G, ws, _ = problem
    stored = segtrain.stored_features(G, ws[:NUM_TRAIN + 1], batch=NUM_TRAIN)  # the last batch overlaps the first
    direct = jax.jit(segbranch.layer_features)(G, jnp.asarray(ws[1:NUM_TRAIN + 1]))[1]
    # one array per resolution: the two maps of each block side by side, in the feature-vector order
    direct = [jnp.concatenate(direct[i:i + 2], axis=-1) for i in range(0, len(direct), 2)]
    per_resolution = ((4, 64), (8, 64), (16, 64), (32, 64), (64, 256))  # (r, C) of each of the two maps
    assert [f.shape[1:] for f in stored] == [(r, r, 2 * c) for r, c in per_resolution]
    assert [f.shape[1:] for f in stored] == [f.shape[1:] for f in direct]
    for s, d in zip(stored, direct):
        assert s.dtype == jnp.float16 and s.shape[0] == NUM_TRAIN + 1
        # float16 storage: equal up to the last bit of the rounding (the two programs may round differently)
        np.testing.assert_allclose(np.asarray(s[1:], np.float32), np.asarray(d), rtol=1e-3, atol=1e-3)


def _official_stop_iteration(losses_by_epoch, patience=50, watch_after_epoch=3):
    """The official loop, written out: the 1-based iteration at which it breaks, or None."""
    iteration, best, count = 0, 10000000, 0
    for epoch, losses in enumerate(losses_by_epoch):
        for loss in losses:
            iteration += 1
            if epoch > watch_after_epoch:
                if loss < best:
                    best, count = loss, 0
                else:
                    count += 1
                if count > patience:
                    return iteration
    return None


def test_early_stop_rule_stops_exactly_when_the_count_exceeds_50_after_epoch_3():
    steps = 10
    # Epochs 0-3 (iterations 1-40) are ignored, however the loss moves. Epoch 4 opens with 0.5 (the first best),
    # then 0.4 (best, iteration 42); 43-59 do not improve (0.4 ties); 60 improves to 0.3 and resets the count;
    # from 61 on nothing improves, so the count reaches 51 at iteration 60 + 51 = 111 (epoch 11, 0-based).
    sequence = list(np.linspace(2.0, 0.01, 40)) + [0.5, 0.4] + [0.45, 0.4] * 8 + [0.41, 0.3] + [0.35] * 60
    losses_by_epoch = [sequence[i:i + steps] for i in range(0, len(sequence), steps)]
    assert _official_stop_iteration(losses_by_epoch) == 111

    state = segtrain.StopState.initial(2)
    stopped_at = [None, None]
    iteration = 0
    for epoch, losses in enumerate(losses_by_epoch):
        for loss in losses:
            iteration += 1
            # model 1 sees the same losses shifted up: the rule compares, so it stops at the same iteration
            state = segtrain.early_stop_update(state, jnp.array([loss, loss + 1.0], jnp.float32), epoch)
            for m in range(2):
                if stopped_at[m] is None and bool(state.stopped[m]):
                    stopped_at[m] = iteration
    assert stopped_at == [111, 111]
    assert int(state.count[0]) > 50 and float(state.best[0]) == pytest.approx(0.3)

    # Before epoch 4 nothing is tracked, however long the loss stalls.
    state = segtrain.StopState.initial(1)
    for _ in range(200):
        state = segtrain.early_stop_update(state, jnp.array([1.0]), 3)
    assert not bool(state.stopped[0]) and int(state.count[0]) == 0


def test_training_stops_each_model_where_the_official_rule_does(problem):
    """One step per compiled call, so the progress callback sees every batch loss; a short patience watched from
    epoch 0 makes the models stop within the first epoch, each at its own iteration."""
    seen = []

    def record(epoch, iteration, losses, stopped):
        seen.append((epoch, iteration, losses.copy(), stopped.copy()))

    G, ws, masks = problem
    cfg = segtrain.SegTrainConfig(max_epochs=2, patience=3, watch_after_epoch=-1, steps_per_call=1)
    _, report = segtrain.train_segbranch(G, ws[:NUM_TRAIN], masks[:NUM_TRAIN], NUM_CLASSES, jax.random.key(5),
                                         num_models=NUM_MODELS, config=cfg, on_progress=record)
    assert all(report["stopped_early"]) and len(set(report["iterations"])) > 1
    for m in range(NUM_MODELS):
        losses = []
        for epoch, iteration, step_losses, stopped in seen:
            losses.append(float(step_losses[m]))
            if stopped[m]:
                break
        expected = _official_stop_iteration([losses], patience=3, watch_after_epoch=-1)
        assert report["iterations"][m] == expected
        assert report["final_loss"][m] == losses[-1]  # frozen at the batch that stopped it
    assert seen[-1][1] == max(report["iterations"])  # the loop ends when the last model stops


def test_clean_masks_zeroes_ids_1_to_49_with_fewer_than_30_pixels_per_image():
    masks = np.zeros((2, 16, 16), np.int32)
    masks[0].flat[0:29] = 1  # 29 px: cleaned
    masks[0].flat[29:59] = 2  # 30 px: kept
    masks[0].flat[59:69] = 49  # 10 px of the last cleaned id: cleaned
    masks[0].flat[69:74] = 50  # 5 px of id 50: the official range(1, 50) never cleans it
    masks[0].flat[100:200] = 3  # 100 px in image 0 ...
    masks[1].flat[0:10] = 3  # ... but 10 px in image 1: cleaned there only
    masks[1].flat[10:50] = 1
    cleaned = segtrain.clean_masks(masks)
    expected = masks.copy()
    expected[0].flat[0:29] = 0
    expected[0].flat[59:69] = 0
    expected[1].flat[0:10] = 0
    np.testing.assert_array_equal(cleaned, expected)
    assert masks[0].flat[0] == 1  # the input is not modified


def test_masks_with_out_of_range_ids_or_the_wrong_size_are_refused(problem):
    G, ws, masks = problem
    good = masks[:2].copy()
    bad = good.copy()
    bad[1, 5, 5] = NUM_CLASSES
    with pytest.raises(ValueError, match=r"label mask 1 has class id 3, outside \[0, 3\)"):
        segtrain.check_masks(bad, NUM_CLASSES, RES)
    bad[1, 5, 5] = -1
    with pytest.raises(ValueError, match="label mask 1 has class id -1"):
        segtrain.check_masks(bad, NUM_CLASSES, RES)
    with pytest.raises(ValueError, match="integer class ids"):
        segtrain.check_masks(good + 0.5, NUM_CLASSES, RES)
    np.testing.assert_array_equal(segtrain.check_masks(good.astype(np.float16), NUM_CLASSES, RES), good)
    with pytest.raises(ValueError, match=r"must be \[N, 64, 64\].*got shape \(2, 32, 32\)"):
        segtrain.train_segbranch(G, ws[:2], good[:, ::2, ::2], NUM_CLASSES, jax.random.key(0))
    with pytest.raises(ValueError, match=r"must be \[N, 32, 32\]"):
        segtrain.train_segbranch(G, ws[:2], good, NUM_CLASSES, jax.random.key(0), out_res=32)
    with pytest.raises(ValueError, match="label mask 0 has class id 2"):
        segtrain.train_segbranch(G, ws[:2], good, 2, jax.random.key(0))
    with pytest.raises(ValueError, match="2 latents but 1 label masks"):
        segtrain.train_segbranch(G, ws[:2], good[:1], NUM_CLASSES, jax.random.key(0))
    with pytest.raises(ValueError, match="W\\+ latents"):
        segtrain.train_segbranch(G, ws[:2, 0], good, NUM_CLASSES, jax.random.key(0))


def test_same_key_same_result_and_different_key_different_weights(problem):
    S_a, report_a = _train(problem, jax.random.key(7), max_epochs=1)
    S_b, report_b = _train(problem, jax.random.key(7), max_epochs=1)
    S_c, _ = _train(problem, jax.random.key(8), max_epochs=1)
    for a, b in zip(jax.tree_util.tree_leaves((S_a.params, S_a.buffers)),
                    jax.tree_util.tree_leaves((S_b.params, S_b.buffers))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert report_a == report_b
    w_a, w_c = np.asarray(S_a.module().fc0.weight[...]), np.asarray(S_c.module().fc0.weight[...])
    assert np.abs(w_a - w_c).mean() > 0.01
    assert np.abs(w_a[0] - w_a[1]).mean() > 0.01  # the ensemble's models are initialised independently


def test_segmentation_metrics_by_hand():
    ground_truth = np.array([[0, 0, 0],
                             [1, 1, 2],
                             [2, 2, 2]])
    prediction = np.array([[0, 0, 1],
                           [1, 1, 1],
                           [2, 2, 3]])
    confusion = segtrain.confusion_matrix(ground_truth, prediction, 5)
    assert confusion[0, 0] == 2 and confusion[0, 1] == 1 and confusion[2, 1] == 1 and confusion[2, 3] == 1
    metrics = segtrain.segmentation_metrics(confusion)
    # class 0: 3 true px, 2 found; predicted 2 px -> recall 2/3, IoU 2 / (3 + 2 - 2) = 2/3
    # class 1: 2 true px, both found; predicted 4 px -> recall 1, IoU 2 / (2 + 4 - 2) = 1/2
    # class 2: 4 true px, 2 found; predicted 2 px -> recall 1/2, IoU 2 / (4 + 2 - 2) = 1/2
    # class 3: never true, predicted once -> no recall, IoU 0; class 4: in neither -> no recall, no IoU
    assert metrics["per_class_accuracy"] == pytest.approx([2 / 3, 1.0, 0.5, None, None])
    assert metrics["per_class_iou"] == pytest.approx([2 / 3, 0.5, 0.5, 0.0, None])
    assert metrics["pixel_accuracy"] == pytest.approx(6 / 9)
    assert metrics["miou"] == pytest.approx((2 / 3 + 0.5 + 0.5 + 0.0) / 4)
