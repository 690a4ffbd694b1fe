"""DragGAN step behaviour beyond the official trace: batching, sharding, resets, stopping, freezing, the patch
recipe of the spec, and input validation."""

import dataclasses

import jax
import numpy as np
import pytest

from jaxgan import parallel
from jaxgan.edit import drag
from jaxgan.models import stylegan2
from jaxgan.sampling import z_from_seeds
from tests.helpers import DRAG_TRACE_HIGH_LR, drag_config, drag_fixture_session, drag_trace, jitted_drag_step


def seed_w0(G, seed):
    return np.asarray(stylegan2.mapping(G, z_from_seeds([seed], G.config.z_dim), truncation_psi=0.7))[0]


def varied_sessions(cfg):
    """Sessions that differ in every per-session input: latents, point counts, masks, spaces, budgets, weights."""
    G, data, _ = drag_trace(DRAG_TRACE_HIGH_LR)
    free_left = np.ones((256, 256), np.float32)
    free_left[:, :128] = 0
    return [
        drag_fixture_session(DRAG_TRACE_HIGH_LR, cfg, max_steps=4),
        drag.new_session(cfg, seed_w0(G, 1), [[60, 60]], [[80, 90]], space="w", lr=0.05, max_steps=2),
        drag.new_session(cfg, seed_w0(G, 2), [[100, 100], [200, 40], [30, 220]], [[100, 101], [180, 60], [40, 200]],
                         mask=free_left, lr=0.02, lambda_mask=5.0, max_steps=3),
        drag.new_session(cfg, seed_w0(G, 3), [[10, 10]], [[11, 11]], max_steps=5),  # already there: stops at once
        drag.new_session(cfg, data["w0"], [[0, 255]], [[30, 200]], lr=0.05, reg=0.5, max_steps=3),  # at a corner
    ]


def run_alone(G, cfg, state):
    """Drive one session with the plain jitted step, as a user of the single-session API would."""
    outputs = []
    while not bool(state.done):
        state, out = jitted_drag_step()(G, state, cfg)
        outputs.append(out)
    return state, outputs


def test_padding_sessions_ride_along_finished():
    """pad_sessions: padding rows (and a template session a process of several feeds when it has no job of its
    own, count 0) are marked finished, whatever the padded size."""
    G, _, _ = drag_trace(DRAG_TRACE_HIGH_LR)
    sessions = varied_sessions(drag_config(G))[:2]
    stacked = drag.stack_states(sessions)
    mesh = parallel.data_mesh()
    padded, count = drag.pad_sessions(stacked, mesh)
    assert count == 2 and np.asarray(padded.done).tolist() == [False, False, True, True]
    template, none = drag.pad_sessions(drag.stack_states(sessions[:1]), mesh, size=1, count=0)
    assert none == 0 and np.asarray(template.done).tolist() == [True]
    wider, _ = drag.pad_sessions(stacked, mesh, size=6, count=1)
    assert np.asarray(wider.done).tolist() == [False] + [True] * 5


def test_batched_sharded_sessions_equal_each_session_alone():
    G, _, _ = drag_trace(DRAG_TRACE_HIGH_LR)
    cfg = drag_config(G)
    sessions = varied_sessions(cfg)
    finals, traces = drag.run_sessions(G, cfg, sessions, mesh=parallel.data_mesh())  # 5 sessions on 4 devices
    for i, session in enumerate(sessions):
        alone_state, alone = run_alone(G, cfg, session)
        trace_i = traces[i]
        assert len(trace_i["points"]) == len(alone), f"session {i}"
        np.testing.assert_array_equal(trace_i["points"], np.stack([np.asarray(o.points) for o in alone]))
        np.testing.assert_allclose(trace_i["losses"], np.stack([np.asarray(o.losses) for o in alone]), atol=1e-5)
        np.testing.assert_array_equal(trace_i["stop"], np.stack([np.asarray(o.stop) for o in alone]))
        assert np.max(np.abs(trace_i["images"].astype(int) - np.stack([np.asarray(o.image) for o in alone]))) <= 1
        # Batched and single convolutions round differently; Adam turns that into ~lr-sized moves of latent
        # coordinates whose gradient is near zero. Measured (polyphase FIR, 3-4 steps): all but at most one of the
        # 7168 coordinates within 5e-4, that one up to 2.5e-3 at lr 0.05 (session 4) and 5.1e-4 at lr 0.02.
        diff = np.abs(np.asarray(finals[i].w) - np.asarray(alone_state.w))
        assert np.sum(diff > 5e-4) <= 2 and diff.max() < 0.1 * float(session.lr), f"session {i}: {diff.max()}"
        assert int(finals[i].steps_done) == int(alone_state.steps_done)
        assert bool(finals[i].reached) == bool(alone_state.reached)
    # Budgets and stops as set: updates = max_steps unless the targets were reached; the session already at
    # its target stops on its first step without an update.
    assert [int(f.steps_done) for f in finals][:3] == [4, 2, 3]
    assert bool(finals[3].reached) and int(finals[3].steps_done) == 0 and len(traces[3]["points"]) == 1
    np.testing.assert_array_equal(finals[3].w, sessions[3].w)


@pytest.mark.slow  # a longer check that CI skips (`pytest -m slow` runs it)
def test_several_steps_per_call_equal_one_step_per_call():
    G, _, _ = drag_trace(DRAG_TRACE_HIGH_LR)
    cfg = drag_config(G)
    sessions = varied_sessions(cfg)[:3]
    one, traces_one = drag.run_sessions(G, cfg, sessions, keep_images=False)
    three, traces_three = drag.run_sessions(G, cfg, sessions, keep_images=False, steps_per_call=3)
    for a, b, ta, tb in zip(one, three, traces_one, traces_three):
        np.testing.assert_array_equal(ta["points"], tb["points"])
        np.testing.assert_allclose(a.w, b.w, atol=1e-6)


def test_finished_session_is_frozen():
    G, _, _ = drag_trace(DRAG_TRACE_HIGH_LR)
    cfg = drag_config(G)
    state, _ = run_alone(G, cfg, drag_fixture_session(DRAG_TRACE_HIGH_LR, cfg, max_steps=2))
    after, out = jitted_drag_step()(G, state, cfg)
    assert not bool(out.active) and not bool(out.updated)
    for before_leaf, after_leaf in zip(jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(after)):
        np.testing.assert_array_equal(np.asarray(before_leaf), np.asarray(after_leaf))


def test_budget_of_n_updates_ends_with_an_observation_of_the_final_latent():
    G, _, _ = drag_trace(DRAG_TRACE_HIGH_LR)
    cfg = drag_config(G)
    state, outputs = run_alone(G, cfg, drag_fixture_session(DRAG_TRACE_HIGH_LR, cfg, max_steps=3))
    assert [bool(o.updated) for o in outputs] == [True, True, True, False]
    assert int(state.steps_done) == 3 and bool(state.done) and not bool(state.reached)
    # The closing observation rendered the latent the last update produced.
    np.testing.assert_array_equal(np.asarray(outputs[-1].ws),
                                  np.asarray(drag.assemble_ws(cfg, state.w, state.w0, state.w_space)))


def test_reset_with_new_points_reuses_the_compiled_step_and_keeps_adam():
    G, _, _ = drag_trace(DRAG_TRACE_HIGH_LR)
    cfg = drag_config(G)
    traced = []

    def counted_step(G, state, cfg):
        traced.append(cfg)  # runs only while jax traces, i.e. when the step would be compiled again
        return drag.drag_step(G, state, cfg)
    step = jax.jit(counted_step, static_argnames="cfg")
    state, _ = step(G, drag_fixture_session(DRAG_TRACE_HIGH_LR, cfg, max_steps=5), cfg)
    moved_w = np.asarray(state.w)
    state = drag.reset_points(cfg, state, [[40, 40], [90, 90], [150, 150]], [[50, 60], [90, 99], [120, 150]])
    assert not bool(state.refs_ready) and int(state.steps_done) == 0
    state, out = step(G, state, cfg)
    assert len(traced) == 1
    # References were retaken from the current (already dragged) latent, so the first tracking step is a no-op.
    np.testing.assert_array_equal(np.asarray(out.points)[:3], [[40, 40], [90, 90], [150, 150]])
    np.testing.assert_array_equal(np.asarray(out.ws), np.asarray(drag.assemble_ws(cfg, moved_w, state.w0,
                                                                                   state.w_space)))
    assert int(state.adam.count) == 2  # Adam's moments carried over, as the official renderer


def test_w_space_repeats_one_latent_and_sums_its_gradient():
    G, data, _ = drag_trace(DRAG_TRACE_HIGH_LR)
    cfg = drag_config(G)
    state = drag_fixture_session(DRAG_TRACE_HIGH_LR, cfg, space="w", max_steps=2)
    state, out = jitted_drag_step()(G, state, cfg)
    ws, grad, w = np.asarray(out.ws), np.asarray(out.grad), np.asarray(state.w)
    np.testing.assert_array_equal(ws[:6], np.broadcast_to(data["w0"][0][0], (6, 512)))
    assert np.all(grad[1:] == 0) and np.any(grad[0] != 0)
    np.testing.assert_array_equal(np.asarray(drag.assemble_ws(cfg, w, state.w0, state.w_space))[:6],
                                  np.broadcast_to(w[0], (6, 512)))


def test_mask_that_is_all_fixed_or_all_free_is_ignored_like_the_official_code():
    G, _, _ = drag_trace(DRAG_TRACE_HIGH_LR)
    cfg = drag_config(G)
    for mask in (np.ones((256, 256)), np.zeros((256, 256))):
        state = drag_fixture_session(DRAG_TRACE_HIGH_LR, cfg, mask=mask)
        assert not bool(state.use_mask)
        state, _ = jitted_drag_step()(G, state, cfg)
        _, out = jitted_drag_step()(G, state, cfg)
        assert float(out.losses[cfg.max_points]) == 0.0


@pytest.mark.parametrize("h,point,count", [(512, (256, 256), 32), (256, (128, 99), None), (1024, (700, 13), None),
                                           (512, (0, 511), None), (256, (255, 0), None)])
def test_patch_membership_matches_the_official_float32_disk(h, point, count):
    """The table recipe against the spec's direct recipe: meshgrid of torch's linspace, float32 op by op."""
    radius = round(3 / 512 * h)
    grid = drag.torch_linspace_f32(h)
    xx, yy = np.meshgrid(grid, grid, indexing="ij")
    dy, dx = (xx - np.float32(point[0])), (yy - np.float32(point[1]))
    direct = set(zip(*np.nonzero(np.sqrt(dy * dy + dx * dx) < np.float32(radius))))
    offsets, squares, threshold = drag.patch_tables(h, radius)
    member = (squares[point[0]][:, None] + squares[point[1]][None, :]) < threshold
    rows, cols = np.nonzero(member)
    from_tables = set(zip(point[0] + offsets[rows], point[1] + offsets[cols]))
    assert from_tables == direct
    if count is not None:
        assert len(direct) == count  # spec §1.7: 32 pixels (rows 253-258) for a central point at 512 px


def test_torch_linspace_is_one_rounding_of_the_exact_grid():
    for n in (128, 256, 512):
        grid = drag.torch_linspace_f32(n)
        exact = np.arange(n) * (np.float64(n) / (n - 1))
        assert grid[0] == 0 and grid[-1] == n
        assert np.all(np.abs(grid - exact) <= np.spacing(np.float32(n)))


def test_radii_follow_pythons_rounding_of_the_512px_values():
    G, _, _ = drag_trace(DRAG_TRACE_HIGH_LR)
    cfg = drag_config(G)  # 256 px
    assert (cfg.patch_radius, cfg.search_radius, cfg.stop_distance) == (2, 6, 2)
    big = dataclasses.replace(cfg, img_resolution=1024)
    assert (big.patch_radius, big.search_radius, big.stop_distance) == (6, 24, 4.0)


def test_bad_inputs_are_refused_with_clear_messages():
    G, data, _ = drag_trace(DRAG_TRACE_HIGH_LR)
    cfg = drag_config(G)
    w0 = data["w0"]
    with pytest.raises(ValueError, match="outside the 256x256 image"):
        drag.new_session(cfg, w0, [[10, 256]], [[10, 10]])
    with pytest.raises(ValueError, match="2 points but 1 targets"):
        drag.new_session(cfg, w0, [[10, 10], [20, 20]], [[10, 12]])
    with pytest.raises(ValueError, match="the mask is 128x128, the image 256x256"):
        drag.new_session(cfg, w0, [[10, 10]], [[10, 12]], mask=np.ones((128, 128)))
    with pytest.raises(ValueError, match="at most 4"):
        drag.new_session(cfg, w0, [[1, 1]] * 5, [[2, 2]] * 5)
    with pytest.raises(ValueError, match=r"w0 must have shape \(14, 512\)"):
        drag.new_session(cfg, w0[0, :10], [[1, 1]], [[2, 2]])
    with pytest.raises(ValueError, match="space must be"):
        drag.new_session(cfg, w0, [[1, 1]], [[2, 2]], space="z")
    with pytest.raises(ValueError, match="feature_idx 7 is out of range"):
        drag.DragConfig.for_generator(G.config, feature_idx=7)
    with pytest.raises(ValueError, match=r"r1=1 \(given for 512 px images\) rounds to 0 px at 256 px; use r1 > 1"):
        drag.DragConfig.for_generator(G.config, r1=1.0)  # round(0.5) = 0: an empty patch, NaN in the official code


def test_jobs_start_from_a_seed_or_a_latent_and_name_their_errors():
    """run_jobs: a seed job and a job from that seed's start latent give identical drags; a bad job is named."""
    G, _, _ = drag_trace(DRAG_TRACE_HIGH_LR)
    cfg = drag_config(G)
    by_seed = drag.DragJob(points=[(128, 99)], targets=[(128, 110)], seed=4, steps=2, lr=0.05)
    by_latent = dataclasses.replace(by_seed, seed=None, w0=drag.start_latent(G, 4, by_seed.trunc))
    np.testing.assert_array_equal(by_latent.w0, seed_w0(G, 4))  # the renderer's w0: mapping at psi 0.7
    a, b = drag.run_jobs(G, cfg, [by_seed, by_latent])
    assert a.steps_done == b.steps_done == 2 and a.trace["points"].shape == (3, 1, 2)
    np.testing.assert_array_equal(a.final_ws, b.final_ws)
    np.testing.assert_array_equal(a.trace["points"], b.trace["points"])
    bad = dataclasses.replace(by_seed, points=[(300, 5)])
    with pytest.raises(ValueError, match=r"job 'second': points \[\(300, 5\)\] lie outside"):
        drag.run_jobs(G, cfg, [by_seed, bad], names=["first", "second"])
    with pytest.raises(ValueError, match="exactly one of a seed and a latent"):
        drag.run_jobs(G, cfg, [dataclasses.replace(by_latent, seed=1)])


def test_mask_term_in_bands_equals_the_mean_over_the_resized_maps_and_its_gradient():
    """drag.mask_term forms the resized maps a band of rows at a time; the official term is F.l1_loss of the whole
    masked maps (renderer.py:362-367): the same value and gradient, here at 80 px (bands of 16 rows) from 20 px."""
    import jax.numpy as jnp

    from jaxgan.ops.resize import resize_bilinear
    cfg = drag.DragConfig(img_resolution=80, img_channels=3, num_ws=8, w_dim=16, feature_resolution=20,
                          feature_channels=6)
    k = jax.random.split(jax.random.key(4), 3)
    feat, feat0 = jax.random.normal(k[0], (20, 20, 6)), jax.random.normal(k[1], (20, 20, 6))
    mask = (jax.random.uniform(k[2], (80, 80)) < 0.3).astype(jnp.float32)

    def whole(f):
        m = mask[..., None]
        return jnp.mean(jnp.abs(resize_bilinear(f, (80, 80)) * m - resize_bilinear(feat0, (80, 80)) * m))
    value, grad = jax.value_and_grad(lambda f: drag.mask_term(cfg, f, feat0, mask))(feat)
    want_value, want_grad = jax.value_and_grad(whole)(feat)
    np.testing.assert_allclose(float(value), float(want_value), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(grad), np.asarray(want_grad), rtol=1e-5, atol=1e-9)
    assert float(value) > 0 and np.count_nonzero(np.asarray(grad)) > 0
