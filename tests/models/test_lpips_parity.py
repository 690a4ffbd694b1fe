"""jaxgan LPIPS (v0.1, vgg) against outputs of the official `lpips` 0.1.4 code (../shared/fixtures).

lpips_vgg_fixture.npz holds `LPIPS(net='vgg')` results on a seeded random float16-exact VGG16 trunk
(vgg16_random_trunk_fp16.pth) with the released v0.1 lin weights (lpips_v0.1_vgg_lin.pth). The weights are put into
the model here by name (features.N.* as stored, lin{k}.model.1.weight -> lin{k}.weight), independently of the
converter, so these tests check the model maths alone; the converter is tested in tests/checkpoints_convert.
Tolerances: 1e-6 max abs on distances, 1e-5 on the spatial map, 1e-3 relative (to the largest entry) on the gradient
(FIXTURES.md). Spec §3.6 suggests 1e-5 for distances (values ~0.02-0.14); measured errors are ~1e-8, and 1e-6 still
catches a scaling-layer shift off by 0.001 in its last digit, which moves the distances by 2.5e-6 to 9.4e-6.
Fixture arrays are NCHW.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from checkpoints_convert.keymap import fill_model
from checkpoints_convert.torch_reader import load_torch_file
from jaxgan.models import lpips
from tests.helpers import fixture_path, load_fixture, naive_lpips_vgg, nchw_to_nhwc

DIST_ATOL = 1e-6
SPATIAL_ATOL = 1e-5
GRAD_RTOL = 1e-3


@functools.cache
def model():
    vgg = load_torch_file(fixture_path("vgg16_random_trunk_fp16.pth"))
    lin = load_torch_file(fixture_path("lpips_v0.1_vgg_lin.pth"))
    tensors = {k: np.asarray(v, np.float32) for k, v in vgg.items()}
    tensors.update({f"lin{k}.weight": np.asarray(lin[f"lin{k}.model.1.weight"]) for k in range(5)})
    return fill_model(lpips.abstract_model(lpips.LPIPSConfig()), tensors)


@functools.cache
def fixture():
    data, meta = load_fixture("lpips_vgg_fixture.npz")
    return {k: data[k] for k in data.files if k != "meta"}, meta


@functools.cache
def distance_fn(spatial: bool):
    return jax.jit(functools.partial(lpips.lpips_distance, spatial=spatial))


def _images(name):
    return nchw_to_nhwc(fixture()[0][f"in/{name}"])


def max_err(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


def test_fixture_is_the_lpips_vgg_reference():
    arrays, meta = fixture()
    assert meta["kind"] == "LPIPS v0.1 vgg"
    # The fixture also stores the lin weights it ran with; they are the file's weights.
    lin = load_torch_file(fixture_path("lpips_v0.1_vgg_lin.pth"))
    for k in range(5):
        np.testing.assert_array_equal(arrays[f"lin/lin{k}.model.1.weight"], lin[f"lin{k}.model.1.weight"])


@pytest.mark.parametrize("a,b,out", [("x0", "x1", "dist"), ("x2", "x3", "dist_23")])
def test_distance_matches_official_lpips(a, b, out):
    expected = fixture()[0][f"out/{out}"]  # (N, 1, 1, 1)
    got = distance_fn(False)(model(), _images(a), _images(b))
    assert got.shape == (expected.shape[0],) and got.dtype == jnp.float32
    assert max_err(got, expected.reshape(-1)) <= DIST_ATOL


def test_distance_of_an_image_to_itself_is_zero_as_official():
    expected = fixture()[0]["out/dist_same"].reshape(-1)
    np.testing.assert_array_equal(expected, 0.0)
    got = distance_fn(False)(model(), _images("x0"), _images("x0"))
    assert max_err(got, expected) <= DIST_ATOL


def test_spatial_map_matches_official_spatial_true():
    expected = fixture()[0]["out/spatial"]  # (N, 1, H, W)
    got = distance_fn(True)(model(), _images("x0"), _images("x1"))
    assert got.shape == nchw_to_nhwc(expected).shape
    assert max_err(got, nchw_to_nhwc(expected)) <= SPATIAL_ATOL


def test_gradient_wrt_x0_matches_official_backward():
    # d sum(dist) / d x0[i] depends on pair i alone, so one pair checks the backward pass at a third of the cost.
    expected = nchw_to_nhwc(fixture()[0]["out/grad_x0"])[:1]
    x1 = _images("x1")[:1]
    grad = jax.jit(jax.grad(lambda x0: jnp.sum(lpips.lpips_distance(model(), x0, x1))))(_images("x0")[:1])
    assert max_err(grad, expected) <= GRAD_RTOL * float(np.max(np.abs(expected)))


def test_vmap_over_single_pairs_equals_the_batched_call():
    x0, x1 = _images("x0"), _images("x1")
    batched = distance_fn(False)(model(), x0, x1)
    one_by_one = jax.jit(jax.vmap(lambda a, b: lpips.lpips_distance(model(), a[None], b[None])[0]))(x0, x1)
    np.testing.assert_allclose(np.asarray(one_by_one), np.asarray(batched), rtol=0, atol=1e-7)


def test_normalize_flag_maps_zero_one_images_to_minus_one_one():
    x0, x1 = _images("x2"), _images("x3")
    plain = distance_fn(False)(model(), x0, x1)
    from_unit = jax.jit(functools.partial(lpips.lpips_distance, normalize=True))(model(), (x0 + 1) / 2, (x1 + 1) / 2)
    np.testing.assert_allclose(np.asarray(from_unit), np.asarray(plain), rtol=1e-5, atol=1e-7)


def test_unit_normalize_gradient_is_finite_where_all_channels_are_zero():
    # Official normalize_tensor gives NaN gradients here (sqrt'(0) = inf times 0); jaxgan keeps the value and
    # returns the finite derivative of f / eps.
    f = jnp.zeros((1, 2, 2, 4)).at[0, 0, 0].set(jnp.array([3.0, 4.0, 0.0, 0.0]))
    value = lpips.unit_normalize(f)
    np.testing.assert_allclose(np.asarray(value[0, 0, 0]), [0.6, 0.8, 0, 0], rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(value[0, 1]), 0.0)
    grad = jax.grad(lambda f: jnp.sum(lpips.unit_normalize(f) * jnp.arange(4.0)))(f)
    assert bool(jnp.all(jnp.isfinite(grad)))


def test_inputs_that_are_not_matching_nhwc_rgb_batches_are_refused():
    x = jnp.zeros((1, 32, 32, 3))
    with pytest.raises(ValueError, match="same shape"):
        lpips.lpips_distance(model(), x, jnp.zeros((1, 32, 16, 3)))
    with pytest.raises(ValueError, match="NHWC"):
        lpips.lpips_distance(model(), jnp.zeros((1, 3, 32, 32)), jnp.zeros((1, 3, 32, 32)))
    with pytest.raises(ValueError, match=r"LPIPS \(vgg\) needs images of at least 16x16"):
        lpips.lpips_distance(model(), jnp.zeros((1, 15, 32, 3)), jnp.zeros((1, 15, 32, 3)))



def test_config_accepts_only_the_implemented_variants():
    assert lpips.LPIPSConfig() == lpips.LPIPSConfig(net="vgg", version="0.1")
    assert lpips.LPIPSConfig(net="alex").tap_channels == (64, 192, 384, 256, 256)  # spec §3.2
    assert lpips.LPIPSConfig().tap_channels == (64, 128, 256, 512, 512)
    with pytest.raises(ValueError, match="net must be one of"):
        lpips.LPIPSConfig(net="squeeze")
    with pytest.raises(ValueError, match="version must be one of"):
        lpips.LPIPSConfig(version="0.0")


def test_numpy_reference_in_the_test_helpers_is_the_official_lpips():
    """tests/helpers.naive_lpips_vgg (the numpy LPIPS that the EditGAN loss tests compare with) reproduces the
    official distance; one pair of each size keeps it quick."""
    arrays = fixture()[0]
    got = naive_lpips_vgg(_images("x0")[:1], _images("x1")[:1])
    assert max_err(got, arrays["out/dist"].reshape(-1)[:1]) <= DIST_ATOL  # measured 2e-9
    got = naive_lpips_vgg(_images("x2")[:1], _images("x3")[:1])  # not square: 6x5 at relu5_3
    assert max_err(got, arrays["out/dist_23"].reshape(-1)[:1]) <= DIST_ATOL
