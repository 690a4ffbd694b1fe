"""jaxgan.edit.pti beyond parity: a photo's tuning does not depend on what it is batched with, the parameter plumbing
(only synthesis parameters are carried, the rest of G is kept), the memory figures and the batch cap, on a small
random 32 px generator with the fixture AlexNet LPIPS."""

import functools

import jax
import numpy as np
import pytest

from jaxgan import parallel
from jaxgan.edit import invert, pti
from jaxgan.models import stylegan2
from tests.helpers import fixture_lpips

# One config and one device for every tuning run here, so that the vmapped program compiles once per batch size
# (on one device a batch really is vectorised; over several, each device would hold one image).
TUNE = pti.PTIConfig(tune_steps=3, locality=True, lpips_threshold=1e-6)
CFG = stylegan2.GeneratorConfig(z_dim=16, c_dim=0, w_dim=16, img_resolution=32, img_channels=3,
                                channels=(16, 16, 16, 8), mapping_layers=2)


@functools.cache
def setup():
    G = stylegan2.init_generator(CFG, jax.random.key(0))
    z = np.random.RandomState(0).randn(3, CFG.z_dim).astype(np.float32)
    ws = np.asarray(jax.jit(stylegan2.mapping)(G, z))
    # Targets: the generator's images of other latents, so the tuning has something to fit.
    other = np.random.RandomState(1).randn(3, CFG.z_dim).astype(np.float32)
    targets = np.asarray(jax.jit(stylegan2.generate)(G, other))
    return G, fixture_lpips("alex"), ws, targets


def test_only_synthesis_parameters_are_tuned_and_the_rest_of_G_is_kept():
    G, *_ = setup()
    names = pti.synthesis_param_names(G)
    assert names and all(n.startswith("synthesis.") for n in names)
    params = pti.synthesis_params(G)
    shifted = pti.with_synthesis_params(G, [p + 1 for p in params])
    for old, new in zip(pti.synthesis_params(G), pti.synthesis_params(shifted)):
        np.testing.assert_array_equal(np.asarray(new), np.asarray(old) + 1)
    # mapping parameters and every buffer are the same objects
    flat_old = dict(jax.tree_util.tree_flatten_with_path(G.params)[0])
    flat_new = dict(jax.tree_util.tree_flatten_with_path(shifted.params)[0])
    untouched = [k for k in flat_old if "synthesis" not in str(k[0])]
    assert untouched and all(flat_new[k] is flat_old[k] for k in untouched)
    assert shifted.buffers is G.buffers


def one_device():
    return parallel.data_mesh(jax.local_devices()[:1])


@pytest.mark.slow  # a batch-equivalence variant (31 s on 2 cores); tests/serve/test_pti_sessions.py batches PTI too
def test_a_photos_tuning_does_not_depend_on_its_batch():
    G, A, ws, targets = setup()
    keys = invert.image_keys(5, [0, 1])
    together = pti.tune(G, A, targets[:2], ws[:2], cfg=TUNE, keys=keys, mesh=one_device())
    alone = pti.tune(G, A, targets[1:2], ws[1:2], cfg=TUNE, keys=keys[1:2], mesh=one_device())
    assert together["losses"].shape == (2, 3, len(pti.loss_names(True)))
    assert not together["stopped_early"].any()  # no image comes near LPIPS 1e-6
    # Equal up to float32 rounding (a vectorised convolution rounds differently): measured 1.3e-4 relative on the
    # regulariser's terms, which start from exactly 0, and 1.6e-6 on the others.
    np.testing.assert_allclose(together["losses"][1], alone["losses"][0], rtol=1e-3, atol=1e-9)
    np.testing.assert_allclose(together["losses"][1][:, [0, 1, 5]], alone["losses"][0][:, [0, 1, 5]], rtol=1e-5)
    for a, b in zip(together["params"], alone["params"]):
        np.testing.assert_allclose(a[1], b[0], rtol=0, atol=1e-5)  # 3 Adam steps of 3e-4; measured 1.2e-6
    # tuning lowered each image's loss, and the regulariser was active after the first step
    assert np.all(together["losses"][:, -1, -1] < together["losses"][:, 0, -1])
    # (0 up to rounding at the first forward, where the tuned copy still equals the original: measured 4e-14)
    assert np.all(together["losses"][:, 0, 4] < 1e-10) and np.all(together["losses"][:, 1:, 4] > 1e-8)


def test_an_image_that_reaches_the_threshold_stops_and_keeps_its_generator():
    G, A, ws, targets = setup()
    own = np.asarray(jax.jit(stylegan2.synthesis)(G, ws[:1]))  # LPIPS 0 at the first forward: stop before any update
    result = pti.tune(G, A, np.concatenate([own, targets[:1]]), ws[:2], cfg=TUNE, mesh=one_device())
    assert result["stopped_early"].tolist() == [True, False] and result["updates"].tolist() == [0, 3]
    assert np.all(np.isnan(result["losses"][0, 1:])) and np.isfinite(result["losses"][1]).all()
    for tuned, original in zip(result["params"], pti.synthesis_params(G)):
        np.testing.assert_array_equal(tuned[0], np.asarray(original))


def test_memory_per_image_and_the_batch_cap():
    G, A, *_ = setup()
    memory = pti.tuning_memory_per_image(G, A, pti.PTIConfig())
    synthesis_bytes = sum(np.asarray(p).nbytes for p in pti.synthesis_params(G))
    assert memory["state"] == 3 * synthesis_bytes + 3 * 4 + 1 + 8  # params, Adam mu and nu; counters, flag, key
    assert memory["temp"] > 0 and memory["total"] == 2 * memory["state"] + memory["temp"]
    assert pti.tuning_memory_per_image(G, A, temporaries=False)["temp"] is None
    assert pti.images_per_device(100, 1000) == 8 and pti.images_per_device(10 ** 9, 1000) == 1
    assert pti.device_memory_limit(jax.devices("cpu")[0]) is None


def test_misuse_is_refused():
    G, A, ws, targets = setup()
    with pytest.raises(ValueError, match="pivots must have shape"):
        pti.tune(G, A, targets, ws[:, :2])
    with pytest.raises(ValueError, match="pivot_space"):
        pti.PTIConfig(pivot_space="z")
    with pytest.raises(ValueError, match="2 pivots for 3 images"):
        pti.pti_images(G, A, A, list(targets), pivots=ws[:2])


@pytest.mark.slow  # a longer check that CI skips (`pytest -m slow` runs it)
def test_pti_tunes_a_stylegan3_generator():
    """PTI's code is generic: on the StyleGAN3 fixture (its synthesis parameters tuned, the Fourier features' buffers
    kept), a few tuning steps from a given pivot bring the reconstruction closer, with the locality regulariser."""
    from checkpoints_convert.stylegan2_pkl import convert_state_dict
    from jaxgan.models import generators
    from tests.helpers import fixture_state_dict, load_fixture
    data, meta = load_fixture("sg3_t_res64.npz")
    G = generators.with_user_transform(convert_state_dict("Generator", meta["init_kwargs"], fixture_state_dict(data)))
    assert pti.synthesis_param_names(G) and all(n.startswith("synthesis.") for n in pti.synthesis_param_names(G))
    pivots, targets = data["out/ws_psi07"][:1], np.asarray(jax.jit(generators.synthesis)(G, data["out/ws_psi1"][1:2]))
    cfg = pti.PTIConfig(tune_steps=4, locality=True, lpips_threshold=1e-6)
    result = pti.pti_images(G, fixture_lpips("vgg"), fixture_lpips("alex"), list(targets), pivots=pivots, cfg=cfg,
                            devices=jax.devices()[:1])
    assert result["after"]["lpips_alex"][0] < result["before"]["lpips_alex"][0]
    assert result["params"][0].shape[0] == 1 and np.all(np.isfinite(result["images"]))
