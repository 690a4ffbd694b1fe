"""jaxgan LPIPS (v0.1, both trunks) against outputs of the official `lpips` 0.1.4 code (../shared/fixtures).

lpips_vgg_fixture.npz holds `LPIPS(net='vgg')` results on a seeded random float16-exact VGG16 trunk
(vgg16_random_trunk_fp16.pth), lpips_alex_fixture.npz `LPIPS(net='alex')` results (PTI's tuning loss) on a seeded
random AlexNet trunk (alexnet_random_trunk.pth, torchvision's `alexnet().features` naming); both with the released
v0.1 lin weights (lpips_v0.1_{vgg,alex}_lin.pth): distances at 64x64 and 96x80, the spatial maps, the gradient, and
for alex the `retPerLayer` terms. The weights are put into the model here by name (features.N.* as stored,
lin{k}.model.1.weight -> lin{k}.weight), independently of the converter, so these tests check the model maths
alone; the converter is tested in tests/checkpoints_convert/test_lpips.py.

Tolerances: 1e-6 max abs on distances and per-layer terms, 1e-5 on the spatial maps, 1e-3 relative (to the largest
entry) on the gradient (FIXTURES.md). Spec §3.6 suggests 1e-5 for distances (values ~0.02-0.14); measured errors
are ~1e-8, and 1e-6 still catches a scaling-layer shift off by 0.001 in its last digit, which moves the vgg
distances by 2.5e-6 to 9.4e-6. Fixture arrays are NCHW.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from checkpoints_convert.keymap import fill_model
from checkpoints_convert.torch_reader import load_torch_file
from jaxgan.models import lpips
from tests.helpers import LPIPS_FIXTURE_FILES, fixture_path, load_fixture, naive_lpips_vgg, nchw_to_nhwc

DIST_ATOL = 1e-6
SPATIAL_ATOL = 1e-5
GRAD_RTOL = 1e-3
NETS = ("vgg", "alex")
FIXTURE_NAME = {"vgg": ("lpips_vgg_fixture.npz", "LPIPS v0.1 vgg"),
                "alex": ("lpips_alex_fixture.npz", "LPIPS v0.1 alex")}


@functools.cache
def model(net="vgg"):
    trunk_file, lin_file = LPIPS_FIXTURE_FILES[net]
    trunk = load_torch_file(fixture_path(trunk_file))
    lin = load_torch_file(fixture_path(lin_file))
    tensors = {k: np.asarray(v, np.float32) for k, v in trunk.items()}
    tensors.update({f"lin{k}.weight": np.asarray(lin[f"lin{k}.model.1.weight"]) for k in range(5)})
    return fill_model(lpips.abstract_model(lpips.LPIPSConfig(net=net)), tensors)


@functools.cache
def fixture(net="vgg"):
    data, meta = load_fixture(FIXTURE_NAME[net][0])
    return {k: data[k] for k in data.files if k != "meta"}, meta


@functools.cache
def distance_fn(spatial: bool):
    return jax.jit(functools.partial(lpips.lpips_distance, spatial=spatial))


def _images(name, net="vgg"):
    return nchw_to_nhwc(fixture(net)[0][f"in/{name}"])


def max_err(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


@pytest.mark.parametrize("net", NETS)
def test_fixture_is_the_official_lpips_reference(net):
    arrays, meta = fixture(net)
    assert meta["kind"] == FIXTURE_NAME[net][1]
    # The fixture also stores the lin weights it ran with; they are the file's weights.
    lin = load_torch_file(fixture_path(LPIPS_FIXTURE_FILES[net][1]))
    for k in range(5):
        np.testing.assert_array_equal(arrays[f"lin/lin{k}.model.1.weight"], lin[f"lin{k}.model.1.weight"])


@pytest.mark.parametrize("net", NETS)
@pytest.mark.parametrize("a,b,out", [("x0", "x1", "dist"), ("x2", "x3", "dist_23")])
def test_distance_matches_official_lpips(net, a, b, out):
    expected = fixture(net)[0][f"out/{out}"]  # (N, 1, 1, 1)
    got = distance_fn(False)(model(net), _images(a, net), _images(b, net))
    assert got.shape == (expected.shape[0],) and got.dtype == jnp.float32
    assert max_err(got, expected.reshape(-1)) <= DIST_ATOL


@pytest.mark.parametrize("net", NETS)
def test_distance_of_an_image_to_itself_is_zero_as_official(net):
    expected = fixture(net)[0]["out/dist_same"].reshape(-1)
    np.testing.assert_array_equal(expected, 0.0)
    got = distance_fn(False)(model(net), _images("x0", net), _images("x0", net))
    assert max_err(got, expected) <= DIST_ATOL


@pytest.mark.parametrize("net,a,b,out", [("vgg", "x0", "x1", "spatial"), ("alex", "x0", "x1", "spatial"),
                                         ("alex", "x2", "x3", "spatial_23")])
def test_spatial_map_matches_official_spatial_true(net, a, b, out):
    expected = nchw_to_nhwc(fixture(net)[0][f"out/{out}"])  # (N, 1, H, W) -> (N, H, W, 1)
    got = distance_fn(True)(model(net), _images(a, net), _images(b, net))
    assert got.shape == expected.shape
    assert max_err(got, expected) <= SPATIAL_ATOL


@pytest.mark.parametrize("net", NETS)
def test_gradient_wrt_x0_matches_official_backward(net):
    # d sum(dist) / d x0[i] depends on pair i alone, so one pair checks the backward pass at a fraction of the cost.
    expected = nchw_to_nhwc(fixture(net)[0]["out/grad_x0"])[:1]
    x1 = _images("x1", net)[:1]
    grad = jax.jit(jax.grad(lambda x0: jnp.sum(lpips.lpips_distance(model(net), x0, x1))))(_images("x0", net)[:1])
    assert max_err(grad, expected) <= GRAD_RTOL * float(np.max(np.abs(expected)))


def test_alex_per_layer_terms_match_official_ret_per_layer():
    expected = fixture("alex")[0]["out/dist_layers"]  # (5, N)
    got = jax.jit(lpips.lpips_layer_distances)(model("alex"), _images("x0", "alex"), _images("x1", "alex"))
    assert got.shape == expected.shape
    assert max_err(got, expected) <= DIST_ATOL


def test_alex_taps_have_the_official_sizes_and_widths():
    # FIXTURES.md: at 64 px the taps (features 1, 4, 7, 9, 11) are 15, 7, 3, 3, 3 px; widths 64, 192, 384, 256, 256.
    taps = jax.eval_shape(lambda m, x: m.module().features(x), model("alex"),
                          jax.ShapeDtypeStruct((2, 64, 64, 3), jnp.float32))
    assert [t.shape for t in taps] == [(2, s, s, c) for s, c in zip((15, 7, 3, 3, 3), (64, 192, 384, 256, 256))]


def test_smallest_alex_image_is_31_pixels():
    # 31 px: floor((31 + 4 - 11) / 4) + 1 = 7 rows after the 11x11 stride-4 conv, 3 after the first 3x3 stride-2
    # pool, 1 after the second (relu3 ... relu5); 30 px: 6, then 2, then nothing.
    def tap_rows(size):
        taps = jax.eval_shape(lambda m, x: m.module().features(x), model("alex"),
                              jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32))
        return [t.shape[1] for t in taps]
    assert tap_rows(31) == [7, 3, 1, 1, 1] and tap_rows(30) == [6, 2, 0, 0, 0]
    assert lpips.LPIPSConfig(net="alex").min_size == 31
    x = jnp.asarray(_images("x0", "alex")[:1, :31, :31])
    assert np.isfinite(float(lpips.lpips_distance(model("alex"), x, -x)[0]))
    with pytest.raises(ValueError, match=r"LPIPS \(alex\) needs images of at least 31x31"):
        lpips.lpips_distance(model("alex"), x[:, :30], x[:, :30])


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
