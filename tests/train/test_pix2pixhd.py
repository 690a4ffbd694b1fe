"""pix2pixHD training pieces (jaxgan/train/pix2pixhd.py): the LSGAN and feature-matching losses on hand-worked
values, the VGG loss against an independent numpy VGG19 (tiny random widths), and a smoke run in which the G and D
losses of a tiny model go down on synthetic label maps.

Smoke run, measured (deterministic keys; the losses of the first and the 17th step, lr 2e-4): G loss 10.08 -> 6.82,
D loss 0.92 -> 0.60, the VGG term 0.064 -> 0.057.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.models import pix2pixhd as p2p
from jaxgan.models import vgg19
from jaxgan.train import pix2pixhd as train


def test_lsgan_loss_sums_the_mean_squared_error_of_each_final_prediction():
    predictions = [[jnp.full((1, 2, 2, 4), 9.0), jnp.array([0.0, 2.0]).reshape(1, 1, 2, 1)],
                   [jnp.array([1.0, 1.0, 4.0]).reshape(1, 1, 3, 1)]]
    # real: ((0-1)^2 + (2-1)^2) / 2 + (0 + 0 + 9) / 3 = 1 + 3; fake: (0 + 4) / 2 + (1 + 1 + 16) / 3 = 2 + 6
    assert float(train.lsgan_loss(predictions, True)) == pytest.approx(4.0)
    assert float(train.lsgan_loss(predictions, False)) == pytest.approx(8.0)


def test_feature_matching_weights_skip_the_final_prediction():
    fake = [[jnp.zeros((1, 2, 2, 1)), jnp.ones((1, 1, 1, 2)), jnp.full((1, 1, 1, 1), 50.0)],
            [jnp.full((1, 1, 2, 1), 2.0), jnp.full((1, 1, 1, 1), -50.0)]]
    real = [[jnp.full((1, 2, 2, 1), 0.5), jnp.array([1.0, 4.0]).reshape(1, 1, 1, 2), jnp.zeros((1, 1, 1, 1))],
            [jnp.array([1.0, 3.0]).reshape(1, 1, 2, 1), jnp.zeros((1, 1, 1, 1))]]
    # n_layers 3, num_D 2: each L1 weighs (4 / 4) * (1 / 2) * lambda_feat 10 = 5; L1s: 0.5, (0 + 3) / 2, 1
    got = train.feature_matching_loss(fake, real, n_layers=3, lambda_feat=10.0)
    assert float(got) == pytest.approx(5 * (0.5 + 1.5 + 1.0))


def _numpy_vgg19_taps(params: dict, x: np.ndarray) -> list:
    """vgg19().features by its definition: 3x3 convs (padding 1) + ReLU, 2x2 max pools after each stage."""
    taps, index = [], 0
    x = x.astype(np.float64)
    for stage, count in enumerate(vgg19.STAGE_CONVS):
        if stage:
            n, h, w, c = x.shape
            x = x[:, :h // 2 * 2, :w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))
        for k in range(count):
            weight, bias = params[f"features.{index}.weight"], params[f"features.{index}.bias"]
            padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
            h, w = x.shape[1:3]
            out = np.zeros(x.shape[:3] + (weight.shape[0],))
            for dy in range(3):
                for dx in range(3):
                    out += np.einsum("nhwi,oi->nhwo", padded[:, dy:dy + h, dx:dx + w], weight[:, :, dy, dx])
            x = np.maximum(out + bias, 0)
            if k == 0:
                taps.append(x)
            index += 2
            if stage == 4:
                return taps  # relu5_1 is the last tap
        index += 1
    return taps


def test_vgg_loss_matches_a_numpy_vgg19():
    V = vgg19.init_vgg19(vgg19.VGG19Config(widths=(3, 4, 4, 5, 5)), jax.random.key(7))
    from flax import nnx
    params = {".".join(map(str, p)): np.asarray(v[...], np.float64) for p, v in nnx.to_flat_state(V.params)}
    rng = np.random.default_rng(0)
    fake, real = (rng.uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32) for _ in range(2))
    f_taps, r_taps = _numpy_vgg19_taps(params, fake), _numpy_vgg19_taps(params, real)
    assert [t.shape[1] for t in f_taps] == [16, 8, 4, 2, 1]
    expected = 10 * sum(w * np.mean(np.abs(f - r)) for w, f, r in zip(train.VGG_WEIGHTS, f_taps, r_taps))
    got = jax.jit(functools.partial(train.vgg_loss, lambda_feat=10.0))(V, fake, real)
    assert float(got) == pytest.approx(expected, rel=1e-5)


def synthetic_batch(n=2, size=32, label_nc=4, seed=0):
    """Label maps of random rectangles (one instance each), images coloured by class plus a horizontal ramp."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((n, size, size), np.int32)
    inst = np.zeros((n, size, size), np.int32)
    for b in range(n):
        for k in range(1, label_nc):
            y, x = rng.integers(0, size - 8, 2)
            h, w = rng.integers(6, 14, 2)
            labels[b, y:y + h, x:x + w] = k
            inst[b, y:y + h, x:x + w] = k * 1000 + b
    colors = np.array([[-0.8, -0.5, 0.2], [0.7, 0.1, -0.6], [0.0, 0.8, 0.3], [0.5, -0.7, 0.9]], np.float32)
    ramp = np.linspace(-0.2, 0.2, size, dtype=np.float32)[None, None, :, None]
    image = np.clip(colors[labels] + ramp, -1, 1)
    return {"input": p2p.encode_input(labels, inst, label_nc), "image": jnp.asarray(image)}


@functools.cache
def smoke_run(steps: int = 16):
    G = p2p.init_generator(p2p.Pix2PixHDGeneratorConfig(input_nc=5, label_nc=4, ngf=4, n_downsample_global=2,
                                                        n_blocks_global=1), jax.random.key(0))
    D = p2p.init_discriminator(p2p.Pix2PixHDDiscriminatorConfig(input_nc=8, ndf=4, n_layers=2, num_D=2),
                               jax.random.key(1))
    V = vgg19.init_vgg19(vgg19.VGG19Config(widths=(4, 4, 8, 8, 8)), jax.random.key(2))
    cfg = train.Pix2PixHDTrainConfig()
    state = train.init_train_state(G, D, cfg)
    step = jax.jit(train.train_step, static_argnames="cfg")
    batch = synthetic_batch()
    history = []
    for _ in range(steps + 1):
        state, metrics = step(state, V, batch, cfg)
        history.append({k: float(v) for k, v in metrics.items()})
    return state, history


def test_tiny_model_g_and_d_losses_go_down():
    state, history = smoke_run()
    first, last = history[0], history[-1]
    assert int(state.step) == len(history)
    assert first["G"] == pytest.approx(first["G_GAN"] + first["G_GAN_Feat"] + first["G_VGG"], rel=1e-6)
    assert first["D"] == pytest.approx(0.5 * (first["D_real"] + first["D_fake"]), rel=1e-6)
    assert last["G"] < 0.8 * first["G"], (first, last)
    assert last["D"] < 0.8 * first["D"], (first, last)
    assert last["G_VGG"] < first["G_VGG"]
    assert all(np.isfinite(v) for entry in history for v in entry.values())
