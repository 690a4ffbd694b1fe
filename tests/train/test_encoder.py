"""EditGAN's encoder training (jaxgan.train.encoder, jaxgan.train.encoder_run) on a tiny 32 px generator and a tiny
encoder: the loss terms against the formula of train_encoder.py:224-283, the first Adam step, the sampling loss
falling, the no-LPIPS variant, the warm-up rule, and resumption bit for bit."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.models import encoder, stylegan2
from jaxgan.models.lpips import lpips_distance
from jaxgan.models.stylegan2 import GeneratorConfig
from jaxgan.train import encoder as te
from jaxgan.train.encoder_run import LOG_FILE, train_encoder
from tests.helpers import fixture_lpips

GCFG = GeneratorConfig(z_dim=16, c_dim=0, w_dim=16, img_resolution=32, img_channels=3, channels=(16, 16, 16, 8),
                       mapping_layers=2)
ECFG = encoder.EncoderConfig(num_ws=8, w_dim=16, base_width=4, stage_blocks=(1, 1, 1, 1), fpn_dim=16, head_dim=16)
# One config for every test without LPIPS, so that they share the compiled steps (the steps depend on the config):
# a learning rate for a tiny network, batches of 4 real images, a warm-up of one epoch.
TINY = te.EncoderTrainConfig(lr=1e-3, batch_size=4, train_real_start_epochs=1)


@pytest.fixture(scope="module")
def G():
    return stylegan2.init_generator(GCFG, jax.random.key(0))


@pytest.fixture(scope="module")
def E():
    return encoder.init_encoder(ECFG, jax.random.key(1))


@pytest.fixture(scope="module")
def lpips():
    return fixture_lpips("vgg")


def real_images(n, seed=3):
    return np.asarray(jax.random.uniform(jax.random.key(seed), (n, 32, 32, 3), minval=-1, maxval=1))


def flat(tree):
    return np.concatenate([np.ravel(np.asarray(x)) for x in jax.tree_util.tree_leaves(tree)])


def unit(x):
    return (np.asarray(x, np.float64) + 1) / 2


def check_first_adam_step(before, after, lr):
    """Adam's first step moves each parameter by lr * g / (|g| + eps): lr for any gradient well above eps (up to
    float32 rounding of the parameters), 0 where the gradient is 0 (the heads' 3x3 taps off a 1x1 map read only
    padding)."""
    delta = np.abs(flat(after.params) - flat(before.params))
    moved = delta[delta > 0]
    assert delta.max() <= lr * 1.01
    assert moved.size > 0.05 * delta.size and np.median(moved) > 0.9 * lr


@jax.jit
def networks(G, E, lpips, ws, images=None):
    """The network evaluations the expected terms need (jitted only for speed): the images of ws (when no images
    are given), their batch-statistics encoding, its reconstruction, and LPIPS in [0, 1] between the two."""
    x = stylegan2.synthesis(G, ws, noise_mode="const") if images is None else images
    encoded = encoder.encode(E, x, batch_norm="batch")
    recon = stylegan2.synthesis(G, encoded, noise_mode="const")
    return x, encoded, recon, lpips_distance(lpips, (recon + 1) / 2, (x + 1) / 2, normalize=True)


def test_defaults_are_the_official_settings():
    cfg = te.EncoderTrainConfig()
    assert (cfg.lr, cfg.betas, cfg.batch_size, cfg.sample_bs, cfg.truncation_psi) == (3e-5, (0.9, 0.999), 8, 2, 0.7)
    assert (cfg.sample_w_weight, cfg.sample_lpips_weight, cfg.sample_mse_weight) == (5, 10, 1)
    assert (cfg.real_lpips_weight, cfg.real_mse_weight, cfg.train_real_start_epochs) == (10, 1, 5)
    assert te.EncoderTrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_sampling_step_terms_are_the_official_formula(G, E, lpips):
    cfg = te.EncoderTrainConfig()
    key = jax.random.key(7)
    new_E, _, terms = te.sampling_step(E, te.init_optimizer(E, cfg), G, lpips, key, cfg)
    # By hand: z ~ N(0, I), w = w_avg + 0.7 (mapping(z) - w_avg), x_s = G(w) const noise, E in batch statistics.
    z = jax.random.normal(key, (2, GCFG.z_dim))
    w_avg = np.asarray(G.buffers["mapping"]["w_avg"][...])
    ws = w_avg + 0.7 * (np.asarray(stylegan2.mapping(G, z)) - w_avg)
    x_s, encoded, recon, dist = networks(G, E, lpips, jnp.asarray(ws, jnp.float32))
    w_mse = np.mean(np.square(np.asarray(encoded, np.float64) - ws))
    mse = np.mean(np.square(unit(recon) - unit(x_s)))
    dist = np.mean(np.asarray(dist))
    assert set(terms) == {"sample_w_mse", "sample_mse", "sample_lpips", "sample_loss"}
    np.testing.assert_allclose(float(terms["sample_w_mse"]), w_mse, rtol=1e-4)
    np.testing.assert_allclose(float(terms["sample_mse"]), mse, rtol=1e-4)
    np.testing.assert_allclose(float(terms["sample_lpips"]), dist, rtol=1e-4)
    np.testing.assert_allclose(float(terms["sample_loss"]), 5 * w_mse + 10 * dist + mse, rtol=1e-4)
    check_first_adam_step(E, new_E, cfg.lr)
    # Train mode: the stem's running mean moved from 0 by PyTorch's momentum 0.1 towards the batch's channel mean.
    stem = np.asarray(E.module().FPN_module.conv1(x_s), np.float64)
    np.testing.assert_allclose(np.asarray(new_E.buffers["FPN_module"]["bn1"]["running_mean"][...]),
                               0.1 * stem.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-7)


def test_real_step_terms_are_the_official_formula(G, E, lpips):
    cfg = te.EncoderTrainConfig()
    images = real_images(4)
    new_E, _, terms = te.real_step(E, te.init_optimizer(E, cfg), G, lpips, images, cfg)
    _, _, recon, dist = networks(G, E, lpips, None, images)
    mse = np.mean(np.square(unit(recon) - unit(images)))
    dist = np.mean(np.asarray(dist))
    assert set(terms) == {"real_mse", "real_lpips", "real_loss"}
    np.testing.assert_allclose(float(terms["real_mse"]), mse, rtol=1e-4)
    np.testing.assert_allclose(float(terms["real_lpips"]), dist, rtol=1e-4)
    np.testing.assert_allclose(float(terms["real_loss"]), 10 * dist + mse, rtol=1e-4)
    check_first_adam_step(E, new_E, cfg.lr)


@pytest.mark.slow  # a longer check that CI skips (`pytest -m slow` runs it)
def test_without_lpips_the_lpips_terms_are_dropped(G, E):
    cfg = TINY
    _, _, terms = te.sampling_step(E, te.init_optimizer(E, cfg), G, None, jax.random.key(7), cfg)
    assert set(terms) == {"sample_w_mse", "sample_mse", "sample_loss"}
    np.testing.assert_allclose(float(terms["sample_loss"]),
                               5 * float(terms["sample_w_mse"]) + float(terms["sample_mse"]), rtol=1e-6)
    _, _, terms = te.real_step(E, te.init_optimizer(E, cfg), G, None, real_images(4), cfg)
    assert set(terms) == {"real_mse", "real_loss"} and float(terms["real_loss"]) == float(terms["real_mse"])


@pytest.mark.slow  # a convergence check
def test_the_sampling_loss_falls(G, E):
    """15 sampling steps on one batch of samples (a fixed key), at a learning rate for a tiny network."""
    opt, key, losses = te.init_optimizer(E, TINY), jax.random.key(11), []
    for _ in range(15):
        E, opt, terms = te.sampling_step(E, opt, G, None, key, TINY)
        losses.append(float(terms["sample_loss"]))
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert losses[-1] < 0.97 * losses[0], losses  # measured: 1.775 -> 1.673


def test_the_warm_up_rule():
    cfg = te.EncoderTrainConfig()
    assert [te.trains_real(cfg, epoch) for epoch in range(8)] == [False] * 6 + [True] * 2


@pytest.mark.slow  # 36 s on 2 cores; CI keeps the step formulas and the CLI run
def test_real_steps_start_after_the_warm_up_epochs(G, tmp_path):
    """8 images in batches of 4: 2 iterations per epoch; with a warm-up of 1 epoch, iterations 5 and 6 (epoch 2)
    are the first with a real step."""
    cfg = TINY
    train_encoder(G, None, tmp_path / "run", cfg, images=real_images(8), iterations=6, encoder_cfg=ECFG,
                  log_every=1)
    log = [json.loads(line) for line in (tmp_path / "run" / LOG_FILE).read_text().splitlines()]
    assert [entry["iteration"] for entry in log] == [1, 2, 3, 4, 5, 6]
    assert ["real_loss" in entry["terms"] for entry in log] == [False] * 4 + [True] * 2
    assert all("sample_loss" in entry["terms"] for entry in log)


def test_a_resumed_run_equals_an_uninterrupted_one(G, tmp_path):
    from jaxgan.checkpoint import load_model
    """6 iterations, against 3 and 3 more resumed: the real steps (iterations 5 and 6, epoch 2) and the sampled
    latents continue as if the run had not stopped."""
    cfg = TINY
    images = real_images(8)
    kwargs = dict(images=images, iterations=6, encoder_cfg=ECFG, log_every=1)
    whole = train_encoder(G, None, tmp_path / "whole", cfg, **kwargs)
    train_encoder(G, None, tmp_path / "parts", cfg, stop_after_iterations=3, **kwargs)
    assert not (tmp_path / "parts" / "encoder").exists()
    resumed = train_encoder(G, None, tmp_path / "parts", cfg, resume=True, **kwargs)
    assert int(resumed.step) == int(whole.step) == 6
    for a, b in zip(jax.tree_util.tree_leaves(whole), jax.tree_util.tree_leaves(resumed)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    saved = load_model(tmp_path / "parts" / "encoder", "editgan-encoder")
    np.testing.assert_array_equal(flat(saved.params), flat(whole.E.params))
    np.testing.assert_array_equal(flat(saved.buffers), flat(whole.E.buffers))
    logs = [(tmp_path / run / LOG_FILE).read_text().splitlines() for run in ("whole", "parts")]
    assert [json.loads(line)["terms"] for line in logs[0]] == [json.loads(line)["terms"] for line in logs[1]]
    other = dataclasses.replace(cfg, lr=1e-4)
    with pytest.raises(ValueError, match="other settings"):
        train_encoder(G, None, tmp_path / "parts", other, resume=True, **kwargs)


@pytest.mark.slow  # a batch-equivalence variant (46 s on 2 cores): CI's other encoder runs are data-parallel too
def test_a_data_parallel_run_equals_a_one_device_run(G, tmp_path):
    """TINY's batches (4 real, 2 sampled) shard over 2 of the 4 test devices; the same 6 iterations on one device
    give the same losses and encoder, up to the order of floating-point sums in the BatchNorm statistics and the
    gradients' all-reduce."""
    from jaxgan.train.encoder_run import training_devices
    assert len(training_devices(TINY, True)) == 2 and len(training_devices(TINY, False, jax.local_devices()[:1])) == 1
    kwargs = dict(images=real_images(8), iterations=6, encoder_cfg=ECFG, log_every=1)
    sharded = train_encoder(G, None, tmp_path / "sharded", TINY, **kwargs)
    single = train_encoder(G, None, tmp_path / "single", TINY, devices=jax.local_devices()[:1], **kwargs)
    logs = [[json.loads(line)["terms"] for line in (tmp_path / run / LOG_FILE).read_text().splitlines()]
            for run in ("sharded", "single")]
    for a, b in zip(*logs):
        assert a.keys() == b.keys()
        np.testing.assert_allclose([a[k] for k in a], [b[k] for k in a], rtol=1e-5)
    # Parameters: those whose gradients are near Adam's eps (1e-8; many in this tiny BatchNorm trunk, whose convs
    # get scale-invariant gradients) take steps of g / (|g| + eps) that rounding can turn around, so two runs may
    # part by up to 2 lr per step there (measured: median difference 0, a third above 1e-5, largest 3.3e-3 after 6
    # steps of lr 1e-3 on an earlier machine, 6.7e-3 on an AMD EPYC); what a bug would change is the median (most
    # parameters equal) and the encoder's outputs, checked below.
    diff = np.abs(flat(sharded.E.params) - flat(single.E.params))
    assert np.median(diff) == 0 and diff.max() <= 2 * 6 * TINY.lr
    ws = [encoder.encode(e, real_images(4, seed=9), batch_norm="running") for e in (sharded.E, single.E)]
    np.testing.assert_allclose(np.asarray(ws[0]), np.asarray(ws[1]), rtol=0, atol=1e-5)  # measured 4.8e-7
    # a run stopped on 2 devices resumes on 1 (the state is saved as plain arrays)
    train_encoder(G, None, tmp_path / "moved", TINY, stop_after_iterations=3, **kwargs)
    moved = train_encoder(G, None, tmp_path / "moved", TINY, resume=True, devices=jax.local_devices()[:1], **kwargs)
    assert int(moved.step) == 6
    moved_log = [json.loads(line)["terms"] for line in (tmp_path / "moved" / LOG_FILE).read_text().splitlines()]
    for a, b in zip(moved_log, logs[1]):
        np.testing.assert_allclose([a[k] for k in a], [b[k] for k in a], rtol=1e-5)
