"""StyleGAN2 trainer: the values of every loss term and the update rules, against the official formulas.

The formulas are those of stylegan2-ada-pytorch `training/loss.py` (StyleGAN2Loss.run_G and accumulate_gradients)
and `training/networks.py` (MappingNetwork's w_avg), with the lazy-regularisation gain of `training_loop.py`
(`phase.interval`):

* Gmain: mean softplus(-D(G(z)));
* Dmain: mean softplus(D(G(z))) (fake) + mean softplus(-D(x)) (real);
* Dr1: r1_penalty = sum_pixels (d sum D(x) / dx)^2, loss = mean(r1_penalty * r1_gamma / 2) * d_reg_interval;
* Gpl: on batch / pl_batch_shrink images, pl_noise = randn / sqrt(H * W), g = d sum(G(ws) * pl_noise) / d ws,
  lengths = sqrt(mean_ws(sum_w g^2)), pl_mean = lerp(pl_mean, mean(lengths), pl_decay) (gradient kept),
  loss = mean((lengths - pl_mean)^2 * pl_weight) * g_reg_interval;
* style mixing: cutoff = randint in [1, num_ws) with probability style_mixing_prob, else num_ws;
  ws[:, cutoff:] = mapping(z2)[:, cutoff:] (that call skips the w_avg update);
* w_avg <- lerp(mean_batch(w), w_avg, w_avg_beta = 0.995).

The networks (mapping, synthesis, discriminator: parity-tested against the official code elsewhere) are called
plainly here; the loss arithmetic, the update rules and the constants are written out in this file. Each phase runs
once in a one-device shard_map, as Trainer runs it per device, with its Adam step replaced by "return the
gradients", so the parameters a phase returns are the gradient of the loss it minimised. The reported metrics are
the unscaled terms, so the scalings (gamma / 2, pl_weight, the interval gain) are checked on that gradient, through
exact identities of parameters the losses depend on simply (D's linear output layer, the generator's linear ToRGB
weights and last ToRGB bias) in closed form from the official formulas.

To keep the four phase compilations cheap: the networks are 8 px (TrainConfig only admits the toyfaces resolutions,
but the phases take every shape from the networks and only the loss settings from the config), the generator has no
noise inputs, and the PRNG keys are 'unsafe_rbg' ones (the phases take any key; threefry's bits compile slowly).
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from jaxgan.models import stylegan2
from jaxgan.nn.split import SplitModel
from jaxgan.parallel import DATA_AXIS, data_mesh
from jaxgan.train import stylegan2 as T

# The official constants (StyleGAN2Loss defaults, MappingNetwork's w_avg_beta), and the settings chosen here.
STYLE_MIXING_PROB = 0.9
PL_BATCH_SHRINK = 2
PL_DECAY = 0.01
PL_WEIGHT = 2.0
W_AVG_BETA = 0.995
R1_GAMMA = 3.0
D_REG_INTERVAL = 16
G_REG_INTERVAL = 4
BATCH = 4  # one device: the phase's per-device batch
RES = 8
NUM_WS = 4  # 2 * log2(8) - 2
Z_DIM = W_DIM = 16
PL_MEAN_BEFORE = 0.3  # a running mean that is neither 0 nor the batch mean, so the lerp's direction shows

CFG = T.TrainConfig(resolution=32, g_channels=(16, 16, 8, 8), d_channels=(16, 16, 8, 8), z_dim=Z_DIM, w_dim=W_DIM,
                    mapping_layers=2, batch_size=BATCH, r1_gamma=R1_GAMMA, d_reg_interval=D_REG_INTERVAL,
                    g_reg_interval=G_REG_INTERVAL)
G_CFG = dataclasses.replace(CFG.generator, img_resolution=RES, channels=(16, 8), use_noise=False)
D_CFG = dataclasses.replace(CFG.discriminator, img_resolution=RES, channels=(16, 8))
REAL = np.random.default_rng(1).uniform(-1, 1, (BATCH, RES, RES, 3)).astype(np.float32)
KEYS = {"Gmain": 11, "Greg": 12, "Dmain": 13, "Dreg": 14}


def rbg_key(seed):
    return jax.random.key(seed, impl="unsafe_rbg")


def softplus(x):
    return np.logaddexp(0.0, np.asarray(x, np.float64))


def w_avg_of(G: SplitModel):
    return np.asarray(G.buffers["mapping"]["w_avg"][...])


def with_params(model: SplitModel, params) -> SplitModel:
    return SplitModel(model.graphdef, params, model.buffers)


def random_model(cfg, seed) -> SplitModel:
    """The official initialisation, drawn with numpy (no compilation): weights N(0, 1), stored divided by the
    lr multiplier 0.01 in the mapping network; affine (style) biases 1; other biases small and random, so that
    none is a special zero; buffers (w_avg) random too."""
    rng = np.random.default_rng(seed)

    def draw(path, x):
        name = jax.tree_util.keystr(path)
        if "bias" in name:
            value = 1.0 + 0.1 * rng.standard_normal(x.shape) if "affine" in name else 0.2 * rng.standard_normal(x.shape)
        else:
            value = rng.standard_normal(x.shape) / (0.01 if "mapping" in name else 1.0)
        return jnp.asarray(value, x.dtype)

    model = stylegan2.abstract_model(cfg)
    params, buffers = (jax.tree_util.tree_map_with_path(draw, tree) for tree in (model.params, model.buffers))
    return SplitModel(model.graphdef, params, buffers)


@pytest.fixture(scope="module")
def state():
    """A tiny state (Adam states absent: the phases' Adam step is replaced below) with a non-zero w_avg and
    pl_mean."""
    assert G_CFG.num_ws == NUM_WS and G_CFG.w_avg_beta == W_AVG_BETA
    assert (CFG.style_mixing_prob, CFG.pl_batch_shrink, CFG.pl_decay, CFG.pl_weight) == (
        STYLE_MIXING_PROB, PL_BATCH_SHRINK, PL_DECAY, PL_WEIGHT)  # the defaults are the official ones
    G, D = random_model(G_CFG, 0), random_model(D_CFG, 1)
    assert np.abs(w_avg_of(G)).min() > 0
    return T.TrainState(G=G, D=D, G_ema=G, g_opt=None, d_opt=None, pl_mean=jnp.float32(PL_MEAN_BEFORE),
                        step=jnp.int32(0))


# ----------------------------------------------------------------------------------------------------------------
# The official rules, written out (jitted only for speed)


def official_ws(G: SplitModel, key, n):
    """run_G's mapping with style mixing, from the phase's key (split as the trainer splits it), by the official
    rule. Returns (ws, w before mixing [n, w_dim], cutoff)."""
    z_key, mix_z_key, mix_key, cut_key = jax.random.split(key, 4)
    ws = stylegan2.mapping(G, jax.random.normal(z_key, (n, Z_DIM)))
    ws_mix = stylegan2.mapping(G, jax.random.normal(mix_z_key, (n, Z_DIM)))
    cutoff = jax.random.randint(cut_key, (), 1, NUM_WS)  # torch .random_(1, num_ws): 1 .. num_ws - 1
    cutoff = jnp.where(jax.random.uniform(mix_key, ()) < STYLE_MIXING_PROB, cutoff, NUM_WS)
    layer = jnp.arange(NUM_WS)[None, :, None]
    return jnp.where(layer < cutoff, ws, ws_mix), ws[:, 0], cutoff  # ws[:, cutoff:] = mapping(z2)[:, cutoff:]


@functools.partial(jax.jit, static_argnums=2)
def official_images(G: SplitModel, key, n):
    """run_G: the images (random noise mode, as the trainer; this generator has no noise inputs) and w before
    mixing."""
    map_key, noise_key = jax.random.split(key)
    ws, w, _ = official_ws(G, map_key, n)
    return stylegan2.synthesis(G, ws, noise_mode="random", noise_key=noise_key), w


discriminate = jax.jit(stylegan2.discriminate)


def expected_w_avg(w_before, w):
    """MappingNetwork: w_avg.copy_(w.mean(0).lerp(w_avg, beta)), torch lerp(a, b, t) = a + t (b - a)."""
    mean = np.asarray(w, np.float64).mean(axis=0)
    return mean + W_AVG_BETA * (np.asarray(w_before, np.float64) - mean)


# ----------------------------------------------------------------------------------------------------------------
# The phases under test


@functools.cache
def compiled_phase(name):
    fn = {"Gmain": T.g_main, "Greg": T.g_reg, "Dmain": T.d_main, "Dreg": T.d_reg}[name]
    in_specs = (P(), P()) + ((P(),) if name.startswith("D") else ())
    per_device = jax.shard_map(lambda s, k, *real: fn(s, k, *real, CFG, BATCH, DATA_AXIS),
                               mesh=data_mesh(jax.local_devices()[:1]), in_specs=in_specs, out_specs=(P(), P()))
    return jax.jit(per_device)


def run_phase(name, state):
    """(new state, whose trained network's params are the gradient, metrics) of phase `name` from `state`."""
    args = (state, rbg_key(KEYS[name])) + ((REAL,) if name.startswith("D") else ())
    with pytest.MonkeyPatch.context() as mp:  # the trace happens inside: Adam -> "the params are the gradient"
        mp.setattr(T, "_adam", lambda tx, params, opt_state, grads: (grads, opt_state))
        new, metrics = compiled_phase(name)(*args)
    return new, {k: float(v) for k, v in metrics.items()}


def leaf(tree, *path):
    for name in path:
        tree = tree[name]
    return np.asarray(tree[...], np.float64)


def sigmoid(x):
    return 1 / (1 + np.exp(-np.asarray(x, np.float64)))


@jax.jit
def d_input_vjp(D: SplitModel, img, weights):
    """d sum_i(weights_i D(img)_i) / d img (one vjp: minibatch std mixes the samples, so not per-image grads)."""
    return jax.grad(lambda x: jnp.sum(weights * stylegan2.discriminate(D, x)[:, 0]))(img)


# ----------------------------------------------------------------------------------------------------------------


def test_g_main_loss_is_the_non_saturating_softplus_of_minus_the_fake_logits(state):
    new, metrics = run_phase("Gmain", state)
    img, w = official_images(state.G, rbg_key(KEYS["Gmain"]), BATCH)
    logits = np.asarray(discriminate(state.D, img), np.float64)[:, 0]
    assert np.abs(logits).mean() > 0.05  # a sign error moves the loss by mean(logits)
    assert metrics["G_loss"] == pytest.approx(softplus(-logits).mean(), rel=1e-5)
    np.testing.assert_allclose(w_avg_of(new.G), expected_w_avg(w_avg_of(state.G), w), rtol=1e-5, atol=1e-6)
    # The gradient applied (loss_Gmain.mean().mul(gain = 1)), on the last ToRGB bias, which adds to every pixel of
    # its channel: sum over images and pixels of dL/dimg, with dL/dlogit_i = -sigmoid(-logit_i) / n.
    d_img = np.asarray(d_input_vjp(state.D, img, jnp.asarray(-sigmoid(-logits) / BATCH, jnp.float32)))
    np.testing.assert_allclose(leaf(new.G.params, "synthesis", f"b{RES}", "torgb", "bias"), d_img.sum(axis=(0, 1, 2)),
                               rtol=1e-4, atol=1e-7)


def test_d_main_loss_terms_are_softplus_of_fake_and_minus_real_logits(state):
    new, metrics = run_phase("Dmain", state)
    img, w = official_images(state.G, rbg_key(KEYS["Dmain"]), BATCH)
    fake = np.asarray(discriminate(state.D, img), np.float64)[:, 0]
    real = np.asarray(discriminate(state.D, REAL), np.float64)[:, 0]
    assert np.abs(fake).mean() > 0.05 and np.abs(real).mean() > 0.05
    loss_fake, loss_real = softplus(fake).mean(), softplus(-real).mean()
    assert metrics["D_loss_fake"] == pytest.approx(loss_fake, rel=1e-5)
    assert metrics["D_loss_real"] == pytest.approx(loss_real, rel=1e-5)
    assert metrics["D_loss"] == pytest.approx(loss_fake + loss_real, rel=1e-5)
    assert metrics["D_fake_logit"] == pytest.approx(fake.mean(), rel=1e-4, abs=1e-6)
    assert metrics["D_real_logit"] == pytest.approx(real.mean(), rel=1e-4, abs=1e-6)
    # Dmain's generator run updates w_avg too (the official mapping runs in training mode in every phase).
    np.testing.assert_allclose(w_avg_of(new.G), expected_w_avg(w_avg_of(state.G), w), rtol=1e-5, atol=1e-6)
    # The gradient applied, on D's linear output layer logit = out.weight . h / sqrt(C) + out.bias: the bias gets
    # mean sigmoid(fake) - mean sigmoid(-real); the weight, along itself, the same with each logit's weight part.
    bias = leaf(state.D.params, "b4", "out", "bias")
    assert leaf(new.D.params, "b4", "out", "bias") == pytest.approx(
        sigmoid(fake).mean() - sigmoid(-real).mean(), rel=1e-5)
    along = np.sum(leaf(new.D.params, "b4", "out", "weight") * leaf(state.D.params, "b4", "out", "weight"))
    assert along == pytest.approx(
        (sigmoid(fake) * (fake - bias)).mean() - (sigmoid(-real) * (real - bias)).mean(), rel=1e-4)


def test_r1_penalty_and_its_gradient_carry_gamma_over_two_and_the_interval(state):
    new, metrics = run_phase("Dreg", state)
    grads = np.asarray(d_input_vjp(state.D, REAL, jnp.ones(BATCH)), np.float64)  # d sum(D(x)) / dx
    r1_penalty = (grads ** 2).sum(axis=(1, 2, 3))  # per image
    assert metrics["r1_penalty"] == pytest.approx(r1_penalty.mean(), rel=1e-4)
    # The gradient applied, of (r1_penalty * (r1_gamma / 2)).mean().mul(gain = d_reg_interval): D's logits are
    # linear in its output weight, so the penalty is homogeneous of degree 2 in it (Euler: <dR/dw, w> = 2 R) and
    # does not depend on the output bias.
    loss = r1_penalty.mean() * (R1_GAMMA / 2) * D_REG_INTERVAL
    along = np.sum(leaf(new.D.params, "b4", "out", "weight") * leaf(state.D.params, "b4", "out", "weight"))
    assert along == pytest.approx(2 * loss, rel=1e-4)
    assert leaf(new.D.params, "b4", "out", "bias") == pytest.approx(0.0, abs=1e-6 * loss)


@jax.jit
def official_pl_grads(G: SplitModel, key):
    """Gpl's inputs: g = d sum(G(ws) * pl_noise) / d ws on the half batch, pl_noise = randn / sqrt(H W)."""
    map_key, noise_key, pl_key = jax.random.split(key, 3)
    ws, w, _ = official_ws(G, map_key, BATCH // PL_BATCH_SHRINK)
    pl_noise = jax.random.normal(pl_key, (BATCH // PL_BATCH_SHRINK, RES, RES, 3)) / np.sqrt(RES * RES)

    def image_dot_noise(ws):
        return jnp.sum(stylegan2.synthesis(G, ws, noise_mode="random", noise_key=noise_key) * pl_noise)
    return jax.grad(image_dot_noise)(ws), w


def test_path_length_penalty_pl_mean_and_gradient_follow_the_official_formulas(state):
    new, metrics = run_phase("Greg", state)
    pl_grads, w = official_pl_grads(state.G, rbg_key(KEYS["Greg"]))
    pl_grads = np.asarray(pl_grads, np.float64)  # [n, num_ws, w_dim]
    lengths = np.sqrt((pl_grads ** 2).sum(axis=2).mean(axis=1))
    pl_mean = PL_MEAN_BEFORE + PL_DECAY * (lengths.mean() - PL_MEAN_BEFORE)  # torch lerp(pl_mean, mean, decay)
    assert abs(lengths.mean() - PL_MEAN_BEFORE) > 0.05 and np.ptp(lengths) > 1e-3
    assert metrics["pl_mean"] == pytest.approx(pl_mean, rel=1e-5)
    assert float(new.pl_mean) == pytest.approx(pl_mean, rel=1e-5)
    assert metrics["pl_penalty"] == pytest.approx(((lengths - pl_mean) ** 2).mean(), rel=1e-4)
    np.testing.assert_allclose(w_avg_of(new.G), expected_w_avg(w_avg_of(state.G), w), rtol=1e-5, atol=1e-6)
    # The gradient applied, of (pl_penalty * pl_weight).mean().mul(gain = g_reg_interval) with pl_mean not
    # detached: the image is linear in the ToRGB weights (no demodulation) plus ws-independent biases, so scaling
    # them all by s scales every length by s; d/ds of the loss at s = 1 is
    # factor * mean_i 2 (L_i - pl_mean) (L_i - decay * mean(L)), and <dloss/dw, w> summed over the ToRGB weights
    # must equal it.
    along = sum(np.sum(leaf(new.G.params, "synthesis", f"b{r}", "torgb", "weight")
                       * leaf(state.G.params, "synthesis", f"b{r}", "torgb", "weight")) for r in (4, RES))
    d_penalty = np.mean(2 * (lengths - pl_mean) * (lengths - PL_DECAY * lengths.mean()))
    assert along == pytest.approx(d_penalty * PL_WEIGHT * G_REG_INTERVAL, rel=1e-4)


def test_style_mixing_takes_layers_from_the_cutoff_on_from_the_second_latent(state):
    # 256 phase keys at once (vmap supplies the axis name mapped_ws averages w_avg over; only ws is compared).
    keys = jax.random.split(rbg_key(5), 256)
    ws = jax.jit(jax.vmap(lambda k: T.mapped_ws(state.G, CFG, 2, k, "keys")[0], axis_name="keys"))(keys)
    expected, _, cutoffs = jax.jit(jax.vmap(lambda k: official_ws(state.G, k, 2)))(keys)
    np.testing.assert_allclose(np.asarray(ws), np.asarray(expected), rtol=1e-5, atol=1e-6)
    counts = np.bincount(np.asarray(cutoffs), minlength=NUM_WS + 1)
    assert counts[0] == 0 and all(counts[1:]), counts  # every cutoff 1 .. num_ws happens, 0 never
    assert 0.05 < counts[NUM_WS] / len(keys) < 0.2, counts  # no mixing: probability 1 - 0.9
    # The mixed layers really differ (cutoff num_ws - 1 keeps all but the last layer).
    assert np.abs(np.asarray(expected[:, :, 0] - expected[:, :, -1])).max() > 1e-3


def test_update_ema_and_real_image_scaling_follow_the_official_loop(state):
    # G_ema.copy_(p.lerp(p_ema, beta)) = p + beta (p_ema - p); the buffers come from G. Images: x / 127.5 - 1.
    G_ema = random_model(G_CFG, 2)
    new = T.update_ema(dataclasses.replace(state, G_ema=G_ema), 0.25)
    for p, e, out in zip(*(jax.tree_util.tree_leaves(m.params) for m in (state.G, G_ema, new.G_ema))):
        p, e = np.asarray(p, np.float64), np.asarray(e, np.float64)
        np.testing.assert_allclose(np.asarray(out), p + 0.25 * (e - p), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(w_avg_of(new.G_ema), w_avg_of(state.G))
    assert int(new.step) == 1
    np.testing.assert_allclose(np.asarray(T.real_images_to_float(np.array([0, 128, 255], np.uint8))),
                               [-1.0, 128 / 127.5 - 1, 1.0], rtol=1e-4)
