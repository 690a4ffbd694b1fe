"""StyleGAN2 trainer: the official schedule and optimiser rules worked by hand, a few real steps on a tiny config
(finite losses, R1 applied and doing its job), data-parallel steps, and bit-identical resumption from disk."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.checkpoint import load_checkpoint
from jaxgan.data import toyfaces
from jaxgan.parallel import data_mesh
from jaxgan.train import stylegan2 as T
from jaxgan.train.run import PRESETS, RunError, get_trainer, load_config, run_training

TINY = PRESETS["tiny"]


def test_phase_schedule_is_the_official_batch_idx_rule():
    trainer = T.Trainer(TINY, data_mesh(jax.local_devices()[:1]))  # builds jit functions, compiles nothing
    assert trainer.due(0) == ("Gmain", "Greg", "Dmain", "Dreg")
    assert trainer.due(1) == ("Gmain", "Dmain")
    assert trainer.due(4) == ("Gmain", "Greg", "Dmain")
    assert trainer.due(16) == ("Gmain", "Greg", "Dmain", "Dreg")
    assert T.Trainer(dataclasses.replace(TINY, pl_weight=0.0), data_mesh(jax.local_devices()[:1])).due(4) == (
        "Gmain", "Dmain")


def test_lazy_adam_scales_lr_and_betas_as_the_official_loop():
    # torch.optim.Adam(lr * 16/17, betas=(0 ** (16/17), 0.99 ** (16/17)), eps=1e-8), two steps, by hand.
    lr, ratio = 0.0025, 16 / 17
    b1, b2 = 0.0, 0.99 ** ratio
    tx = T.lazy_adam(lr, (0.0, 0.99), 1e-8, 16)
    p = jnp.array([1.0, -2.0])
    grads = [jnp.array([0.5, 1.5]), jnp.array([-1.0, 0.25])]
    state = tx.init(p)
    m = v = np.zeros(2)
    expected = np.array(p)
    for t, g in enumerate(grads, start=1):
        updates, state = tx.update(g, state, p)
        p = p + updates
        m = b1 * m + (1 - b1) * np.asarray(g)
        v = b2 * v + (1 - b2) * np.asarray(g) ** 2
        expected = expected - lr * ratio * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + 1e-8)
    np.testing.assert_allclose(np.asarray(p), expected, rtol=1e-6)


def test_ema_beta_ramps_up_as_the_official_loop():
    cfg = dataclasses.replace(TINY, batch_size=32, ema_kimg=10.0, ema_rampup=0.05)
    assert T.ema_beta(cfg, 0) == 0.0  # ema_nimg = min(10000, 0) -> 1e-8: G_ema starts as a copy of G
    assert T.ema_beta(cfg, 100_000) == pytest.approx(0.5 ** (32 / 5000))
    assert T.ema_beta(cfg, 10_000_000) == pytest.approx(0.5 ** (32 / 10000))
    assert T.ema_beta(dataclasses.replace(cfg, ema_rampup=None), 0) == pytest.approx(0.5 ** (32 / 10000))
    assert TINY.gamma == pytest.approx(0.0002 * 32 ** 2 / 8)  # ADA "auto" gamma


MESH_DEVICES = 2  # every real step runs data-parallel on two simulated devices, with one compiled Trainer


def mesh():
    return data_mesh(jax.local_devices()[:MESH_DEVICES])


@pytest.fixture(scope="module")
def trainer():
    return get_trainer(TINY, mesh())


def faces(step, cfg=TINY):
    return toyfaces.render_batch(toyfaces.batch_seeds(cfg.dataset_seed, step, cfg.batch_size), cfg.resolution).images


def test_training_steps_run_data_parallel_with_finite_losses_and_r1_applied(trainer):
    assert trainer.per_device == TINY.batch_size // MESH_DEVICES
    state = trainer.place(T.init_state(TINY))
    g0 = jax.tree_util.tree_leaves(state.G.params)
    state, first = trainer.train_step(state, faces(0))
    assert set(first) >= {"G_loss", "D_loss", "r1_penalty", "pl_penalty", "pl_mean"}
    assert all(np.isfinite(v) for v in first.values()), first
    assert first["r1_penalty"] > 0 and first["pl_mean"] > 0
    state, second = trainer.train_step(state, faces(1))
    assert "r1_penalty" not in second and "pl_penalty" not in second  # lazy: not due at iteration 1
    assert int(state.step) == 2
    assert any(not np.array_equal(a, b) for a, b in zip(g0, jax.tree_util.tree_leaves(state.G.params)))
    # After iteration 0, G_ema equals G exactly (ema beta 0 at 0 images); after iteration 1 it lags behind G.
    assert any(not np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(state.G.params),
                                                        jax.tree_util.tree_leaves(state.G_ema.params)))
    np.testing.assert_array_equal(T._w_avg(state.G_ema), T._w_avg(state.G))  # buffers copied
    assert np.abs(np.asarray(T._w_avg(state.G))).sum() > 0  # w_avg tracked
    # Each device ran half the batch; a phase whose gradients were not averaged could not return replicated
    # state (shard_map's out_specs P() demands values equal on all devices), and the copies agree.
    shards = [np.asarray(s.data) for s in state.D.params["b4"]["fc"]["weight"][...].addressable_shards]
    assert len(shards) == MESH_DEVICES and np.array_equal(shards[0], shards[1])


def test_r1_steps_lower_the_r1_penalty(trainer):
    # The Dreg phase alone on one real batch: it reports the penalty at the weights it starts from, and its Adam
    # steps (whose size does not depend on gamma) must bring |dD/dx|^2 down.
    state = trainer.place(T.init_state(TINY))
    key = jax.device_put(jax.random.key(0), jax.sharding.NamedSharding(trainer.mesh, jax.P()))
    real = jax.device_put(faces(0), trainer.real_sharding)
    penalties = []
    for _ in range(4):
        state, metrics = trainer.phases["Dreg"](state, key, real)
        penalties.append(metrics["r1_penalty"])
    assert penalties[0] > 0
    assert penalties[-1] < 0.7 * penalties[0], penalties


def test_resume_continues_bit_identically(tmp_path):
    kimg = 3 * TINY.batch_size / 1000
    straight = run_training(TINY, tmp_path / "straight", kimg=kimg, snapshot_kimg=1, mesh=mesh())
    run_training(TINY, tmp_path / "resumed", kimg=kimg, snapshot_kimg=1, mesh=mesh(), stop_after_iterations=1)
    with pytest.raises(RunError, match="--resume"):
        run_training(TINY, tmp_path / "resumed", kimg=kimg, mesh=mesh())
    with pytest.raises(RunError, match="batch_size"):
        run_training(dataclasses.replace(TINY, batch_size=4), tmp_path / "resumed", kimg=kimg, resume=True,
                     mesh=mesh())
    resumed = run_training(TINY, tmp_path / "resumed", kimg=kimg, resume=True, snapshot_kimg=1, mesh=mesh())
    assert int(straight.step) == int(resumed.step) == 3
    for a, b in zip(jax.tree_util.tree_leaves(straight), jax.tree_util.tree_leaves(resumed)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    ticks = [json.loads(line) for line in (tmp_path / "resumed" / "log.jsonl").read_text().splitlines()]
    assert [t["iteration"] for t in ticks] == [1, 3]
    # The exported network is an ordinary jaxgan checkpoint holding G_ema as G.
    models, sidecar = load_checkpoint(tmp_path / "resumed" / "network-000000")
    assert sidecar["training"]["iterations"] == 3 and sidecar["training"]["dataset"] == "toyfaces32"
    for a, b in zip(jax.tree_util.tree_leaves(models["G"].params), jax.tree_util.tree_leaves(resumed.G_ema.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert (tmp_path / "resumed" / "samples-init.png").is_file()


def test_configs_from_presets_files_and_overrides(tmp_path):
    assert load_config("tiny", {"batch_size": 4, "seed": None}).batch_size == 4
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"preset": "tiny", "r1_gamma": 0.5}))
    assert load_config(str(path)) == dataclasses.replace(TINY, r1_gamma=0.5)
    path.write_text(json.dumps({"preset": "tiny", "learning_rate": 1}))
    with pytest.raises(ValueError, match="learning_rate"):
        load_config(str(path))
    with pytest.raises(RunError, match="neither a preset"):
        load_config("nope")
    with pytest.raises(ValueError, match="g_channels"):
        dataclasses.replace(TINY, g_channels=(32, 32, 16))
