"""PTI (jaxgan/edit/pti.py) against PTI's own run (pti_trace_res64.npz, danielroich/PTI@da94d59, FIXTURES.md "PTI").

The trace runs `SingleIDCoach.train` on the 64 px fixture pickle with max_pti_steps 8: the W projector gives the pivot
(its steps are checked one by one in test_invert_official.py), then tuning with Adam 3e-4 on MSE + LPIPS-AlexNet
(random AlexNet trunk, released alex lin weights) stops at the 7th forward (LPIPS 0.0534 <= 0.06) after 6 updates,
once without the locality regulariser (`tune_off/`) and once with it (`tune_on/`, its numpy samples recorded as
`reg_z`). Here tuning starts from the same pivot and generator and runs free (no teacher forcing): the per-forward
losses, the images, the gradients of the first forward and the tuned state dict are compared with the trace.
Tolerances: the trace itself moves by up to 2e-5 on images and 4.1e-5 on tuned parameters between torch thread
counts (FIXTURES.md), so parameters are compared at 1e-4 absolute (3e-4 lr x 6 steps is 1.8e-3), images at 1e-4,
losses at 1e-4 relative.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from checkpoints_convert.lpips import convert_lpips
from checkpoints_convert.stylegan2_pkl import convert_pickle
from jaxgan.edit import invert, pti
from jaxgan.models import stylegan2
from tests.helpers import fixture_path, load_fixture, nchw_to_nhwc

MAX_STEPS = 8  # the trace's max_pti_steps (PTI: 350)
PARAM_ATOL = 1e-4
IMAGE_ATOL = 1e-4
LOSS_RTOL = 1e-4


@functools.cache
def setup():
    data, meta = load_fixture("pti_trace_res64.npz")
    G = convert_pickle(fixture_path("sg2ada_res64.pkl"))[0]["G"]
    lpips_alex = convert_lpips(fixture_path("alexnet_random_trunk.pth"), fixture_path("lpips_v0.1_alex_lin.pth"),
                               net="alex")[0]["LPIPS"]
    target = nchw_to_nhwc(data["in/target"])[0]
    return data, meta, G, lpips_alex, target, data["proj/w_pivot"][0]


@functools.cache
def step_fn():
    return jax.jit(pti.tune_step, static_argnames="cfg")


def test_the_defaults_are_the_settings_the_official_code_uses():
    _, meta, *_ = setup()
    used, projector, tuning = meta["hyperparameters_used"], meta["projector"], meta["tuning"]
    cfg = pti.PTIConfig()
    assert (cfg.pivot_space, cfg.pivot_steps) == (used["first_inv_type"], projector["pti_default_steps"])
    assert cfg.pivot_learning_rate == projector["initial_learning_rate"]  # not first_inv_lr, which is overwritten
    assert cfg.pivot_w_avg_samples == projector["w_avg_samples"]
    assert cfg.tune_steps == tuning["pti_default_max_pti_steps"]
    assert cfg.learning_rate == used["pti_learning_rate"] == tuning["adam_defaults"]["lr"]
    assert cfg.lpips_threshold == used["LPIPS_value_threshold"]
    assert (cfg.mse_weight, cfg.lpips_weight) == (used["pt_l2_lambda"], used["pt_lpips_lambda"])
    assert cfg.locality is False  # PTI's default (hyperparameters.py use_locality_regularization)
    assert (cfg.locality_alpha, cfg.locality_samples) == (used["regulizer_alpha"],
                                                          used["latent_ball_num_of_samples"])
    assert (cfg.locality_mse_weight, cfg.locality_lpips_weight) == (used["regulizer_l2_lambda"],
                                                                    used["regulizer_lpips_lambda"])
    pivot = cfg.pivot_config()
    assert (pivot.steps, pivot.initial_learning_rate) == (450, 0.01)


def test_the_pivot_statistics_are_the_projectors_600_samples():
    data, _, G, *_ = setup()
    w_avg, w_std = invert.w_statistics(G, samples=pti.PTIConfig().pivot_w_avg_samples)
    np.testing.assert_allclose(w_avg, data["proj/w_avg"][0, 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(w_std, float(data["proj/w_std"]), rtol=1e-5)


def test_a_given_pivot_takes_the_generators_layer_count():
    data, _, G, *_ = setup()
    w = data["proj/w_pivot"][0, 0]
    official = np.broadcast_to(w, (1, 18, w.size))  # what PTI's projector returns whatever the generator
    np.testing.assert_array_equal(pti.pivot_of(G, official), data["proj/w_pivot"][0])
    np.testing.assert_array_equal(pti.pivot_of(G, w), data["proj/w_pivot"][0])
    mixed = np.array(official[0])
    mixed[3] += 1
    with pytest.raises(ValueError, match="18 different layers"):
        pti.pivot_of(G, mixed)
    with pytest.raises(ValueError, match="shape"):
        pti.pivot_of(G, np.zeros((10, 7)))


def test_the_first_tuning_gradients_are_the_official_ones():
    data, _, G, lpips_alex, target, w_pivot = setup()
    cfg = pti.PTIConfig(tune_steps=MAX_STEPS)
    grad_fn = jax.jit(jax.grad(lambda p: pti.tuning_loss(G, p, lpips_alex, jnp.asarray(target),
                                                         jnp.asarray(w_pivot), cfg)[0]))
    grads = grad_fn(pti.synthesis_params(G))
    by_name = dict(zip(pti.synthesis_param_names(G), grads))
    for key in ("synthesis.b64.conv1.weight", "synthesis.b64.torgb.weight", "synthesis.b4.const",
                "synthesis.b64.conv1.noise_strength"):
        want = data[f"tune_off/grad0/{key}"]
        got = np.asarray(by_name[key])
        assert got.shape == want.shape, key
        scale = np.abs(want).max()
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-3 * scale, err_msg=key)


def _compare_tuned_params(G, params, data, prefix):
    """Every synthesis parameter against the trace's state dict after tuning; the mapping is untouched."""
    names = pti.synthesis_param_names(G)
    assert len(names) == 66  # the 66 synthesis parameters PTI's Adam updates (meta.tuning.with_grad)
    worst = 0.0
    for name, value in zip(names, params):
        want = data[f"{prefix}/{name}"]
        worst = max(worst, float(np.max(np.abs(np.asarray(value).reshape(want.shape) - want))))
    assert worst < PARAM_ATOL, worst
    # They did move: by far more than the tolerance (Adam steps of about lr = 3e-4 each).
    moved = max(float(np.max(np.abs(np.asarray(p) - np.asarray(q)))) for p, q in zip(params, pti.synthesis_params(G)))
    assert moved > 10 * PARAM_ATOL


def test_tuning_without_the_regulariser_matches_the_official_run():
    data, meta, G, lpips_alex, target, w_pivot = setup()
    cfg = pti.PTIConfig(tune_steps=MAX_STEPS)
    result = pti.tune(G, lpips_alex, target[None], w_pivot[None], cfg=cfg)
    forwards = len(data["tune_off/loss"])
    assert forwards == 7 and int(data["tune_off/n_steps"]) == 6 and bool(data["tune_off/stopped_early"])
    assert result["loss_names"] == ("mse", "lpips", "loss")
    rows = result["losses"][0]
    np.testing.assert_allclose(rows[:forwards, 0], data["tune_off/mse"], rtol=LOSS_RTOL)
    np.testing.assert_allclose(rows[:forwards, 1], data["tune_off/lpips"], rtol=LOSS_RTOL)
    np.testing.assert_allclose(rows[:forwards, 2], data["tune_off/loss"], rtol=LOSS_RTOL)
    assert np.all(np.isnan(rows[forwards:]))  # the stop: no forward after the one at LPIPS <= 0.06
    assert int(result["updates"][0]) == 6 and bool(result["stopped_early"][0])
    params = [p[0] for p in result["params"]]
    _compare_tuned_params(G, params, data, "param_tuned")
    final = np.asarray(pti.render(G, params, jnp.asarray(w_pivot)))
    np.testing.assert_allclose(final, nchw_to_nhwc(data["tune_off/img_final"])[0], rtol=0, atol=IMAGE_ATOL)


@pytest.mark.slow  # CI keeps the run without the regulariser and the first tuning gradients
def test_tuning_with_the_locality_regulariser_matches_the_official_run():
    """Forward by forward, with the trace's numpy samples z: the regulariser's latents, images and terms, each
    forward's image and losses, and the tuned parameters."""
    data, meta, G, lpips_alex, target, w_pivot = setup()
    cfg = pti.PTIConfig(tune_steps=MAX_STEPS, locality=True)
    assert pti.loss_names(True) == ("mse", "lpips", "locality_mse", "locality_lpips", "locality", "loss")
    step = step_fn()
    state = pti.tune_init(G, jax.random.key(0))
    w_pivot_j = jnp.asarray(w_pivot)
    render = jax.jit(pti.render)

    @jax.jit
    def regulariser_inputs(params, z, w_morphed_official):
        """The sampled and morphed latents from z, and the tuned generator's image of the official morphed latent."""
        w_sample = stylegan2.mapping(G, z, truncation_psi=0.5)
        morphed = pti.morphed_latents(w_pivot_j, w_sample, 30.0)
        new = stylegan2.synthesis(pti.with_synthesis_params(G, params), w_morphed_official, noise_mode="none")
        return w_sample, morphed, new
    forwards = len(data["tune_on/loss"])
    for s in range(forwards):
        z = jnp.asarray(data["tune_on/reg_z"][s][None], jnp.float32)
        image = np.asarray(render(G, state.params, w_pivot_j))
        np.testing.assert_allclose(image, nchw_to_nhwc(data["tune_on/img"])[s], rtol=0, atol=IMAGE_ATOL,
                                   err_msg=f"forward {s}")
        # The regulariser's latents and images at this forward
        official_morphed = jnp.asarray(data["tune_on/reg_w_morphed"][s][None])
        w_sample, morphed, new = regulariser_inputs(state.params, z, official_morphed)
        np.testing.assert_allclose(np.asarray(w_sample)[0], data["tune_on/reg_w_sample"][s], rtol=0, atol=1e-4)
        np.testing.assert_allclose(np.asarray(morphed)[0], data["tune_on/reg_w_morphed"][s], rtol=0, atol=1e-4)
        np.testing.assert_allclose(np.asarray(new), nchw_to_nhwc(data["tune_on/reg_new_img"])[s:s + 1], rtol=0,
                                   atol=IMAGE_ATOL, err_msg=f"forward {s}")

        state, row = step(G, lpips_alex, jnp.asarray(target), w_pivot_j, state, cfg, z)
        mse, dist, reg_mse, reg_lpips, reg, loss = map(float, row)
        np.testing.assert_allclose([mse, dist, loss], [data["tune_on/mse"][s], data["tune_on/lpips"][s],
                                                       data["tune_on/loss"][s]], rtol=LOSS_RTOL)
        # reg is exactly 0 at the first forward (G is still the original); 1e-4 of the largest term after that
        scale = np.max(data["tune_on/reg"])
        np.testing.assert_allclose([reg_mse, reg_lpips, reg], [data["tune_on/reg_mse"][s],
                                                               data["tune_on/reg_lpips"][s], data["tune_on/reg"][s]],
                                   rtol=2e-3, atol=1e-4 * scale, err_msg=f"forward {s}")
    assert bool(state.done) and int(state.updates) == int(data["tune_on/n_steps"]) == 6
    _compare_tuned_params(G, state.params, data, "param_tuned_reg")
    # A step after the stop changes nothing and reports a NaN row.
    after, row = step(G, lpips_alex, jnp.asarray(target), w_pivot_j, state, cfg,
                      jnp.zeros((1, G.config.z_dim), jnp.float32))
    assert np.all(np.isnan(np.asarray(row)))
    for a, b in zip(after.params, state.params):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
