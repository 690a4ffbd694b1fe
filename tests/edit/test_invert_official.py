"""The two inversion recipes (jaxgan/edit/invert.py) step by step against the official traces, with the schedules
and the regulariser written out in numpy here.

* projector (stylegan2-ada-pytorch projector.py, as PTI's w_projector.py runs it): pti_trace_res64.npz's `proj/*`
  rows, 8 steps at lr 0.01 on the 64 px fixture pickle. Each step is fed the trace's state (teacher forcing): its
  noise maps, and a w whose jitter lands on the trace's `w_fed` (the jitter is drawn from the state's key, the same
  draw is made here, and scaled by the numpy schedule w_std * 0.05 * max(0, 1 - t / 0.75)^2). Checked: the
  distance, the noise regulariser and loss = dist + 1e5 reg, and the w update with the numpy lr ramp (linear
  ramp-up over 5%, cosine ramp-down over the last 25%) and Adam fed the trace's gradients.
* W+ embedding (EditGAN run_embedding_optimization, utils/model_utils.py:158): editgan_embed_trace_res64.npz, 7
  steps (6 updates) on rosinality_G_res64 with the fixture encoder. Without an encoder jaxgan leaves out the
  official term MSE(w, E(x).detach()); its gradient is 2 (w - E(x)) / numel (E(x) is detached), so the
  reconstruction-loss gradient is the trace's `grad` minus that. Checked: 10 LPIPS + 1 MSE = the trace's
  `reconstruction_loss`, and the update at lr get_lr(i / steps), i = 1 .. steps - 1 (the official
  `for i in range(1, steps)`). With the encoder (converted from the official file): the start latent E(target),
  the encoder term and the full loss, E(x) on the [0, 1] image, and the update to the trace's next latent.

FIXTURES.md describes both traces; editgan.md §3.3 the embedding.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from checkpoints_convert.editgan_encoder import convert_editgan_encoder
from checkpoints_convert.lpips import convert_lpips
from checkpoints_convert.rosinality import convert_rosinality
from checkpoints_convert.stylegan2_pkl import convert_pickle
from jaxgan.edit import invert
from tests.helpers import fixture_path, load_fixture, nchw_to_nhwc

ADAM_B1, ADAM_B2, ADAM_EPS = 0.9, 0.999, 1e-8


@functools.cache
def lpips():
    return convert_lpips(fixture_path("vgg16_random_trunk_fp16.pth"), fixture_path("lpips_v0.1_vgg_lin.pth"))[0][
        "LPIPS"]


def ramp_lr(t, peak, rampdown=0.25, rampup=0.05):
    """projector.py / EditGAN get_lr: ramp = min(1, (1 - t) / rampdown); ramp = 0.5 - 0.5 cos(pi ramp);
    ramp *= min(1, t / rampup); lr = peak * ramp."""
    ramp = min(1.0, (1.0 - t) / rampdown)
    ramp = 0.5 - 0.5 * np.cos(ramp * np.pi)
    return peak * ramp * min(1.0, t / rampup)


def noise_scale(t, w_std, initial_noise_factor=0.05, noise_ramp_length=0.75):
    """projector.py: w_noise_scale = w_std * initial_noise_factor * max(0, 1 - t / noise_ramp_length) ** 2."""
    return w_std * initial_noise_factor * max(0.0, 1.0 - t / noise_ramp_length) ** 2


def noise_regularizer(maps):
    """projector.py: for each map, at every scale down to 8x8 (2x2 average pooling between scales), the squared
    mean products with the map rolled by one pixel along x and along y, all summed."""
    reg = 0.0
    for n in maps:
        n = np.asarray(n, np.float64)
        while True:
            reg += np.mean(n * np.roll(n, 1, axis=1)) ** 2 + np.mean(n * np.roll(n, 1, axis=0)) ** 2
            if n.shape[0] <= 8:
                break
            n = n.reshape(n.shape[0] // 2, 2, n.shape[1] // 2, 2).mean(axis=(1, 3))
    return reg


def adam_moments(grads, size):
    """torch.optim.Adam's exp_avg, exp_avg_sq (float64) after the given gradients [steps, size], from zero."""
    mu, nu = np.zeros(size), np.zeros(size)
    for g in np.asarray(grads, np.float64):
        mu = ADAM_B1 * mu + (1 - ADAM_B1) * g
        nu = ADAM_B2 * nu + (1 - ADAM_B2) * g * g
    return mu, nu


def adam_step(w, mu, nu, count, lr):
    """The parameter after one Adam step whose moments (after it) are mu, nu; count = steps taken including it."""
    m_hat = mu / (1 - ADAM_B1 ** count)
    v_hat = nu / (1 - ADAM_B2 ** count)
    return w - lr * m_hat / (np.sqrt(v_hat) + ADAM_EPS)


def adam_state(mu, nu, count):
    return optax.ScaleByAdamState(count=jnp.int32(count), mu=mu, nu=nu)


# ----------------------------------------------------------------------------------------------------------------
# The projector against PTI's run of it (pti_trace_res64.npz, proj/*)

PROJ_STEPS = 8
PROJ_LR = 0.01  # PTI's w_projector initial_learning_rate (projector.py: 0.1); everything else as projector.py


@functools.cache
def projector_setup():
    data, meta = load_fixture("pti_trace_res64.npz")
    G = convert_pickle(fixture_path("sg2ada_res64.pkl"))[0]["G"]
    names = [name.removeprefix("synthesis.") for name in invert.noise_buffer_names(G)]
    assert sorted(names) == sorted(meta["projector"]["noise_names"])
    cfg = invert.ProjectorConfig(steps=PROJ_STEPS, initial_learning_rate=PROJ_LR)
    step = jax.jit(invert.projector_step, static_argnames="cfg")
    return G, data, names, cfg, step


KEY = jax.random.key_data(jax.random.key(11))


def test_projector_schedules_and_regularizer_in_numpy_are_the_official_ones():
    """The numpy formulas of this file reproduce the trace's recorded lr, w-noise scale and regulariser (so the
    step test below compares with the official numbers, not with a copy of jaxgan's)."""
    _, data, names, _, _ = projector_setup()
    w_std = float(data["proj/w_std"])
    t = data["proj/step"] / PROJ_STEPS
    np.testing.assert_allclose(t, data["proj/t"])
    np.testing.assert_allclose([ramp_lr(x, PROJ_LR) for x in t], data["proj/lr"], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose([noise_scale(x, w_std) for x in t], data["proj/w_noise_scale"], rtol=1e-6)
    assert data["proj/lr"][0] == 0 and 0 < data["proj/lr"][-1] < PROJ_LR  # both ramps show in 8 steps
    regs = [noise_regularizer([data[f"proj/noise_fed/{n}"][s] for n in names]) for s in range(PROJ_STEPS)]
    np.testing.assert_allclose(regs, data["proj/reg_loss"], rtol=1e-5)
    np.testing.assert_allclose(data["proj/loss"], data["proj/dist"] + 1e5 * data["proj/reg_loss"], rtol=1e-6)


@pytest.mark.parametrize("s", range(PROJ_STEPS))
def test_projector_step_matches_the_official_trace(s):
    G, data, names, cfg, step = projector_setup()
    w_std = float(data["proj/w_std"])
    t = s / PROJ_STEPS
    # The step jitters w with normal(fold_in(key, step)) * scale: start where that jitter lands on the trace's w_fed.
    draw = np.asarray(jax.random.normal(jax.random.fold_in(jax.random.wrap_key_data(KEY), s), (G.config.w_dim,)))
    w_in = (data["proj/w_fed"][s, 0] - draw * np.float32(noise_scale(t, w_std))).astype(np.float32)
    noise = [jnp.asarray(data[f"proj/noise_fed/{n}"][s]) for n in names]
    # Adam's moments of w after the trace's earlier gradients; the noise maps' are not recorded (they do not touch w).
    mu, nu = (jnp.asarray(m, jnp.float32) for m in adam_moments(data["proj/grad_w"][:s], G.config.w_dim))
    zeros = [jnp.zeros_like(n) for n in noise]
    state = invert.InversionState(w=jnp.asarray(w_in), noise=noise, adam=adam_state((mu, zeros), (nu, zeros), s),
                                  step=jnp.int32(s), key=jnp.asarray(KEY))
    new, (dist, reg, loss) = step(G, lpips(), jnp.asarray(nchw_to_nhwc(data["in/target"])[0]), state, cfg, w_std)

    np.testing.assert_allclose(float(dist), data["proj/dist"][s], rtol=2e-5)
    np.testing.assert_allclose(float(reg), noise_regularizer(noise), rtol=1e-5)
    np.testing.assert_allclose(float(reg), data["proj/reg_loss"][s], rtol=1e-5)
    np.testing.assert_allclose(float(loss), float(dist) + 1e5 * noise_regularizer(noise), rtol=1e-5)
    np.testing.assert_allclose(float(loss), data["proj/loss"][s], rtol=1e-5)

    # The w update: Adam on the trace's gradient at the numpy lr of step s (0 at step 0: w does not move).
    g = data["proj/grad_w"][s].astype(np.float64)
    mu_s, nu_s = adam_moments(data["proj/grad_w"][: s + 1], G.config.w_dim)
    lr = ramp_lr(t, PROJ_LR)
    expected = adam_step(w_in.astype(np.float64), mu_s, nu_s, s + 1, lr)
    # The trace's own update agrees with this numpy Adam (its w_opt_after - w_opt):
    np.testing.assert_allclose(data["proj/w_opt_after"][s] - data["proj/w_opt"][s],
                               expected - w_in, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(np.asarray(new.w), expected, rtol=0, atol=1e-3 * PROJ_LR)  # measured 6e-7
    np.testing.assert_allclose(np.asarray(new.adam.mu[0]), mu_s, rtol=1e-3, atol=1e-6 * np.abs(g).max())
    assert int(new.step) == s + 1
    if s == 0:
        # lr 0 leaves the noise maps as they were, then renormalised: the trace's maps of step 1.
        for n, name in zip(new.noise, names):
            np.testing.assert_allclose(np.asarray(n), data[f"proj/noise_fed/{name}"][1], rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------------------------------------------
# The W+ embedding against EditGAN's run_embedding_optimization (editgan_embed_trace_res64.npz)

EMBED_STEPS = 7  # 6 updates


@functools.cache
def embed_setup():
    data, meta = load_fixture("editgan_embed_trace_res64.npz")
    assert meta["settings"]["steps"] == EMBED_STEPS and meta["settings"]["p_loss"] == 10
    G = convert_rosinality(fixture_path("rosinality_G_res64.pt"))[0]["G"]
    step = jax.jit(invert.embed_step, static_argnames="cfg")
    return G, data, invert.EmbedConfig(steps=EMBED_STEPS), step


def test_embedding_schedule_in_numpy_is_the_official_one():
    _, data, _, _ = embed_setup()
    lr = [ramp_lr(i / EMBED_STEPS, 0.1) for i in range(1, EMBED_STEPS)]
    np.testing.assert_allclose(lr, data["out/lr"], rtol=1e-12)
    assert lr[-1] < 0.07  # the ramp-down shows at the last update (t = 6/7)
    for steps in (100, 500):
        np.testing.assert_allclose([ramp_lr(i / steps, 0.1) for i in range(1, steps)],
                                   data[f"out/lr_schedule_steps{steps}"], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(data["out/reconstruction_loss"], 10 * data["out/p_loss"] + 1 * data["out/mse_loss"],
                               rtol=1e-6)


@pytest.mark.parametrize("i", range(EMBED_STEPS - 1))
def test_embedding_step_matches_the_official_trace(i):
    G, data, cfg, step = embed_setup()
    w = data["out/w"][i, 0]
    mu_prev = data["out/adam_exp_avg"][i - 1, 0] if i else np.zeros_like(w)
    nu_prev = data["out/adam_exp_avg_sq"][i - 1, 0] if i else np.zeros_like(w)
    state = invert.InversionState(w=jnp.asarray(w), noise=invert.noise_buffers(G),
                                  adam=adam_state(jnp.asarray(mu_prev), jnp.asarray(nu_prev), i),
                                  step=jnp.int32(i), key=jnp.asarray(KEY))
    new, (dist, mse, loss) = step(G, lpips(), jnp.asarray(nchw_to_nhwc(data["in/img"])[0]), state, cfg)

    np.testing.assert_allclose(float(dist), data["out/p_loss"][i], rtol=2e-5)
    np.testing.assert_allclose(float(mse), data["out/mse_loss"][i], rtol=2e-5)
    np.testing.assert_allclose(float(loss), 10 * float(dist) + 1 * float(mse), rtol=1e-6)
    np.testing.assert_allclose(float(loss), data["out/reconstruction_loss"][i], rtol=2e-5)

    # The reconstruction-loss gradient: the trace's minus the encoder term's 2 (w - E(x)) / numel.
    grad_rec = data["out/grad"][i, 0].astype(np.float64) - 2 * (w - data["out/enc_w"][i, 0]) / w.size
    mu = ADAM_B1 * mu_prev + (1 - ADAM_B1) * grad_rec
    nu = ADAM_B2 * nu_prev + (1 - ADAM_B2) * grad_rec ** 2
    # This numpy Adam is the trace's: with the full gradient it gives the recorded moments and next latent.
    g = data["out/grad"][i, 0].astype(np.float64)
    np.testing.assert_allclose(ADAM_B1 * mu_prev + (1 - ADAM_B1) * g, data["out/adam_exp_avg"][i, 0], rtol=1e-5,
                               atol=1e-9)
    next_w = data["out/w"][i + 1, 0] if i + 1 < len(data["out/w"]) else data["out/w_final"][0]
    full_nu = ADAM_B2 * nu_prev + (1 - ADAM_B2) * g ** 2
    np.testing.assert_allclose(adam_step(w, ADAM_B1 * mu_prev + (1 - ADAM_B1) * g, full_nu, i + 1,
                                         data["out/lr"][i]), next_w, rtol=0, atol=1e-5)

    lr = ramp_lr((i + 1) / EMBED_STEPS, 0.1)  # update i + 1 of `for i in range(1, steps)`
    np.testing.assert_allclose(np.asarray(new.adam.mu), mu, rtol=1e-3, atol=1e-3 * np.abs(grad_rec).max())
    # Adam turns small gradient differences into lr-sized steps where successive gradients nearly cancel:
    # measured up to 9e-4 lr (step 1); a wrong lr moves w by a large fraction of lr.
    np.testing.assert_allclose(np.asarray(new.w), adam_step(w, mu, nu, i + 1, lr), rtol=0, atol=2e-3 * lr)
    assert int(new.step) == i + 1


@functools.cache
def fixture_encoder():
    return convert_editgan_encoder(fixture_path("editgan_encoder_res64.pth"))[0]["E"]


def test_embedding_starts_from_the_official_encoder_latent():
    G, data, cfg, _ = embed_setup()
    starts = invert.encoder_starts(fixture_encoder(), nchw_to_nhwc(data["in/img"]), cfg)
    # a batch of one at 64 px: c5's 2 x 2 batch statistics amplify rounding (editgan_encoder_res64 meta.sensitivity)
    np.testing.assert_allclose(np.asarray(starts), data["out/w_init"], rtol=0, atol=2e-4)


@pytest.mark.parametrize("i", range(EMBED_STEPS - 1))
def test_embedding_step_with_the_encoder_term_matches_the_official_trace(i):
    G, data, cfg, step = embed_setup()
    w = data["out/w"][i, 0]
    mu_prev = data["out/adam_exp_avg"][i - 1, 0] if i else np.zeros_like(w)
    nu_prev = data["out/adam_exp_avg_sq"][i - 1, 0] if i else np.zeros_like(w)
    state = invert.InversionState(w=jnp.asarray(w), noise=invert.noise_buffers(G),
                                  adam=adam_state(jnp.asarray(mu_prev), jnp.asarray(nu_prev), i),
                                  step=jnp.int32(i), key=jnp.asarray(KEY))
    new, terms = step(G, lpips(), jnp.asarray(nchw_to_nhwc(data["in/img"])[0]), state, cfg, encoder=fixture_encoder())
    assert invert.loss_names("w+", True) == ("lpips", "mse", "encoder", "loss")
    dist, mse, regression, loss = map(float, terms)
    np.testing.assert_allclose([dist, mse], [data["out/p_loss"][i], data["out/mse_loss"][i]], rtol=2e-5)
    # E(x) in train mode on one 64 px image: the official enc_w itself moves by 8e-4 between torch's thread counts;
    # measured here up to 2.1e-4 relative on the term (a [-1, 1] input instead of [0, 1] changes it by far more)
    np.testing.assert_allclose(regression, data["out/encoder_loss"][i], rtol=1e-3)
    np.testing.assert_allclose(loss, data["out/loss"][i], rtol=2e-5)
    next_w = data["out/w"][i + 1, 0] if i + 1 < len(data["out/w"]) else data["out/w_final"][0]
    lr = data["out/lr"][i]
    # the full official update (measured <= 1.1e-3 lr; a missing encoder term moves w by a large fraction of lr)
    np.testing.assert_allclose(np.asarray(new.w), next_w, rtol=0, atol=3e-3 * lr)
    np.testing.assert_allclose(np.asarray(new.adam.mu), data["out/adam_exp_avg"][i, 0], rtol=0,
                               atol=1e-3 * np.abs(data["out/adam_exp_avg"][i, 0]).max())
