"""jaxgan LPIPS (v0.1, alex) against outputs of the official `lpips` 0.1.4 code (../shared/fixtures), as PTI's
tuning loss uses it (`lpips.LPIPS(net='alex')`).

lpips_alex_fixture.npz holds `LPIPS(net='alex')` results on a seeded random AlexNet trunk (alexnet_random_trunk.pth,
torchvision's `alexnet().features` naming) with the released v0.1 lin weights (lpips_v0.1_alex_lin.pth): distances at
64x64 and 96x80, the `retPerLayer` terms, the spatial maps and the gradient. The weights are put into the model here
by name (features.N.* as stored, lin{k}.model.1.weight -> lin{k}.weight), independently of the converter, so these
tests check the model maths alone (tests/checkpoints_convert/test_lpips.py tests the converter). Tolerances as the
vgg parity test: 1e-6 max abs on distances and per-layer terms, 1e-5 on the spatial maps, 1e-3 relative (to the
largest entry) on the gradient. Fixture arrays are NCHW.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from checkpoints_convert.keymap import fill_model
from checkpoints_convert.torch_reader import load_torch_file
from jaxgan.models import lpips
from tests.helpers import fixture_path, load_fixture, nchw_to_nhwc

DIST_ATOL = 1e-6
SPATIAL_ATOL = 1e-5
GRAD_RTOL = 1e-3
CFG = lpips.LPIPSConfig(net="alex")


@functools.cache
def model():
    trunk = load_torch_file(fixture_path("alexnet_random_trunk.pth"))
    lin = load_torch_file(fixture_path("lpips_v0.1_alex_lin.pth"))
    tensors = {k: np.asarray(v, np.float32) for k, v in trunk.items()}
    tensors.update({f"lin{k}.weight": np.asarray(lin[f"lin{k}.model.1.weight"]) for k in range(5)})
    return fill_model(lpips.abstract_model(CFG), tensors)


@functools.cache
def fixture():
    data, meta = load_fixture("lpips_alex_fixture.npz")
    return {k: data[k] for k in data.files if k != "meta"}, meta


@functools.cache
def distance_fn(spatial: bool):
    return jax.jit(functools.partial(lpips.lpips_distance, spatial=spatial))


def _images(name):
    return nchw_to_nhwc(fixture()[0][f"in/{name}"])


def max_err(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


def test_fixture_is_the_lpips_alex_reference():
    arrays, meta = fixture()
    assert meta["kind"] == "LPIPS v0.1 alex"
    lin = load_torch_file(fixture_path("lpips_v0.1_alex_lin.pth"))
    for k in range(5):
        np.testing.assert_array_equal(arrays[f"lin/lin{k}.model.1.weight"], lin[f"lin{k}.model.1.weight"])


def test_taps_have_the_official_sizes_and_widths():
    # FIXTURES.md: at 64 px the taps (features 1, 4, 7, 9, 11) are 15, 7, 3, 3, 3 px; widths 64, 192, 384, 256, 256.
    taps = jax.eval_shape(lambda m, x: m.module().features(x), model(), jax.ShapeDtypeStruct((2, 64, 64, 3),
                                                                                             jnp.float32))
    assert [t.shape for t in taps] == [(2, s, s, c) for s, c in zip((15, 7, 3, 3, 3), (64, 192, 384, 256, 256))]


@pytest.mark.parametrize("a,b,out", [("x0", "x1", "dist"), ("x2", "x3", "dist_23")])
def test_distance_matches_official_lpips(a, b, out):
    expected = fixture()[0][f"out/{out}"]  # (N, 1, 1, 1)
    got = distance_fn(False)(model(), _images(a), _images(b))
    assert got.shape == (expected.shape[0],) and got.dtype == jnp.float32
    assert max_err(got, expected.reshape(-1)) <= DIST_ATOL


def test_per_layer_terms_match_official_ret_per_layer():
    expected = fixture()[0]["out/dist_layers"]  # (5, N)
    got = jax.jit(lpips.lpips_layer_distances)(model(), _images("x0"), _images("x1"))
    assert got.shape == expected.shape
    assert max_err(got, expected) <= DIST_ATOL


def test_distance_of_an_image_to_itself_is_zero_as_official():
    expected = fixture()[0]["out/dist_same"].reshape(-1)
    np.testing.assert_array_equal(expected, 0.0)
    got = distance_fn(False)(model(), _images("x0"), _images("x0"))
    assert max_err(got, expected) <= DIST_ATOL


@pytest.mark.parametrize("a,b,out", [("x0", "x1", "spatial"), ("x2", "x3", "spatial_23")])
def test_spatial_map_matches_official_spatial_true(a, b, out):
    expected = nchw_to_nhwc(fixture()[0][f"out/{out}"])  # (N, 1, H, W) -> (N, H, W, 1)
    got = distance_fn(True)(model(), _images(a), _images(b))
    assert got.shape == expected.shape
    assert max_err(got, expected) <= SPATIAL_ATOL


def test_gradient_wrt_x0_matches_official_backward():
    expected = nchw_to_nhwc(fixture()[0]["out/grad_x0"])  # d sum(dist) / d x0
    x1 = _images("x1")
    grad = jax.jit(jax.grad(lambda x0: jnp.sum(lpips.lpips_distance(model(), x0, x1))))(_images("x0"))
    assert max_err(grad, expected) <= GRAD_RTOL * float(np.max(np.abs(expected)))


def test_smallest_image_is_31_pixels():
    # 31 px: floor((31 + 4 - 11) / 4) + 1 = 7 rows after the 11x11 stride-4 conv, 3 after the first 3x3 stride-2
    # pool, 1 after the second (relu3 ... relu5); 30 px: 6, then 2, then nothing.
    def tap_rows(size):
        taps = jax.eval_shape(lambda m, x: m.module().features(x), model(),
                              jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32))
        return [t.shape[1] for t in taps]
    assert tap_rows(31) == [7, 3, 1, 1, 1] and tap_rows(30) == [6, 2, 0, 0, 0]
    assert CFG.min_size == 31
    x = jnp.asarray(_images("x0")[:1, :31, :31])
    assert np.isfinite(float(lpips.lpips_distance(model(), x, -x)[0]))
    with pytest.raises(ValueError, match=r"LPIPS \(alex\) needs images of at least 31x31"):
        lpips.lpips_distance(model(), x[:, :30], x[:, :30])
