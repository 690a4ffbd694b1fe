"""upfirdn2d and its resampling helpers against a direct numpy transcription of its definition (zero-stuff, pad,
true convolution, decimate: `naive_upfirdn2d` in tests/helpers.py) and against the official reference path's
outputs (../shared/fixtures/upfirdn2d_ref_cases.npz)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.ops.upfirdn2d import downsample2d, filter2d, setup_filter, upfirdn2d, upsample2d
from tests.helpers import ASYMMETRIC, load_fixture, naive_upfirdn2d, nchw_to_nhwc


@pytest.fixture
def images():
    return np.asarray(jax.random.normal(jax.random.key(0), (2, 7, 6, 3)))


@pytest.mark.parametrize("up,down,pad", [(1, 1, (0, 0, 0, 0)), (2, 1, (2, 1, 2, 1)), (1, 2, (1, 1, 1, 1)),
                                         (2, 2, (1, 2, 0, 3)), (1, 1, (-1, 2, 1, -2)), (3, 1, (1, 1, 2, 2))])
@pytest.mark.parametrize("flip_filter", [False, True])
def test_upfirdn2d_matches_definition(images, up, down, pad, flip_filter):
    got = upfirdn2d(jnp.asarray(images), ASYMMETRIC, up=up, down=down, padding=pad, flip_filter=flip_filter,
                    gain=3.0)
    gain_2d = 3.0  # gain ** (ndim / 2) with a 2-D filter
    want = naive_upfirdn2d(images, ASYMMETRIC, up, down, pad, gain=gain_2d, flip_filter=flip_filter)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-4)


def test_separable_filter_equals_outer_product(images):
    taps = np.array([1, 2, 5, 2], np.float32)
    one_d = upfirdn2d(jnp.asarray(images), taps, up=2, padding=(2, 1, 2, 1), gain=4)
    two_d = upfirdn2d(jnp.asarray(images), np.outer(taps, taps), up=2, padding=(2, 1, 2, 1), gain=4)
    np.testing.assert_allclose(np.asarray(one_d), np.asarray(two_d), rtol=1e-5, atol=1e-5)


def test_setup_filter_matches_checkpoint_buffer():
    # The [4, 4] resample_filter buffer stored in stylegan2-ada checkpoints: outer([1,3,3,1]) / 64.
    expected = np.array([[1, 3, 3, 1], [3, 9, 9, 3], [3, 9, 9, 3], [1, 3, 3, 1]], np.float32) / 64
    np.testing.assert_array_equal(setup_filter([1, 3, 3, 1]), expected)
    assert setup_filter(np.ones(8)).shape == (8,)  # 8+ taps stay separable


def test_resampling_helpers_sizes_and_dc_gain(images):
    f = setup_filter([1, 3, 3, 1])
    flat = jnp.ones((1, 8, 8, 2))
    up = upsample2d(flat, f)
    assert up.shape == (1, 16, 16, 2)
    np.testing.assert_allclose(np.asarray(up)[:, 2:-2, 2:-2], 1.0, rtol=1e-6)  # gain up**2 keeps DC
    down = downsample2d(flat, f)
    assert down.shape == (1, 4, 4, 2)
    np.testing.assert_allclose(np.asarray(down)[:, 1:-1, 1:-1], 1.0, rtol=1e-6)
    assert filter2d(jnp.asarray(images), f).shape == images.shape
    want = naive_upfirdn2d(images, f, 2, 1, (2, 1, 2, 1), gain=4.0)
    np.testing.assert_allclose(np.asarray(upsample2d(jnp.asarray(images), f)), want, rtol=1e-5, atol=1e-5)


def test_upfirdn2d_gradient_is_its_adjoint(images):
    # upfirdn2d is linear, so <A x, y> == <x, A^T y> with A^T from jax.vjp.
    f = ASYMMETRIC
    x = jnp.asarray(images)
    out, vjp = jax.vjp(lambda v: upfirdn2d(v, f, up=2, down=1, padding=(1, 2, 2, 1)), x)
    y = jax.random.normal(jax.random.key(1), out.shape)
    (x_adj,) = vjp(y)
    np.testing.assert_allclose(float(jnp.sum(out * y)), float(jnp.sum(x * x_adj)), rtol=1e-4)


# ----------------------------------------------------------------------------------------------------------------
# The official reference path (`_upfirdn2d_ref`, impl='ref') on seeded inputs (upfirdn2d_ref_cases.npz)

REF_CASES = "upfirdn2d_ref_cases.npz"
HELPERS = {"upfirdn2d": upfirdn2d, "upsample2d": upsample2d, "downsample2d": downsample2d, "filter2d": filter2d}


@pytest.mark.parametrize("i,fn", [(0, "downsample2d"), (1, "upsample2d"), (2, "filter2d"), (3, "upfirdn2d"),
                                  (4, "upfirdn2d"), (5, "upfirdn2d"), (6, "downsample2d")],
                         ids=["downsample2d", "upsample2d", "filter2d-asymmetric-3x4",
                              "up2-down2-pad2103-flip-gain3-asymmetric-4x3", "separable-8-taps-up21-down12",
                              "negative-padding-crop", "downsample2d-pad1-flip-gain2-odd-size"])
def test_matches_the_official_reference_path(i, fn):
    # Each case is the official call (meta.cases[i].call) with its keyword arguments as recorded, on NHWC data.
    data, meta = load_fixture(REF_CASES)
    case = meta["cases"][i]
    assert case["fn"] == fn
    got = HELPERS[fn](jnp.asarray(nchw_to_nhwc(data[f"in/x{i}"])), data[f"in/f{i}"], **case["kwargs"])
    want = nchw_to_nhwc(data[f"out/y{i}"])
    assert got.shape == want.shape
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)


def official_helper_call(fn, f, factor, padding):
    """(up, down, padding [x0, x1, y0, y1], gain factor) of the upfirdn2d call that the official helper `fn`
    makes for filter `f` (width fw = last axis, height fh), resampling factor s and extra padding [x0, x1, y0, y1]:
    stylegan2-ada-pytorch torch_utils/ops/upfirdn2d.py upsample2d :337-343, downsample2d :376-382, filter2d :298-304
    (../shared/specs/stylegan2.md, the helper table)."""
    fh, fw = f.shape
    x0, x1, y0, y1 = padding
    s = factor
    if fn == "upsample2d":
        return s, 1, [x0 + (fw + s - 1) // 2, x1 + (fw - s) // 2, y0 + (fh + s - 1) // 2, y1 + (fh - s) // 2], s * s
    if fn == "downsample2d":
        return 1, s, [x0 + (fw - s + 1) // 2, x1 + (fw - s) // 2, y0 + (fh - s + 1) // 2, y1 + (fh - s) // 2], 1
    return 1, 1, [x0 + fw // 2, x1 + (fw - 1) // 2, y0 + fh // 2, y1 + (fh - 1) // 2], 1


# Heights x widths odd x even and even x odd, so that a padding off by one shows in whichever rounding it changes
# (the fixture's [4, 4] filter hides a lost `+ 1` in downsample2d, (4 - 2 + 1) // 2 == (4 - 2) // 2).
HELPER_FILTERS = {"3x4": ASYMMETRIC, "4x3": np.ascontiguousarray(ASYMMETRIC.T)}


@pytest.mark.parametrize("fn,factor", [("upsample2d", 2), ("upsample2d", 3), ("downsample2d", 2),
                                       ("downsample2d", 3), ("filter2d", None)])
@pytest.mark.parametrize("filter_name", list(HELPER_FILTERS))
def test_resampling_helpers_pad_and_scale_as_the_official_ones(images, fn, factor, filter_name):
    # Extra padding, different on every side (a swapped side shows), with flip and gain.
    f, padding = HELPER_FILTERS[filter_name], (2, 0, 1, 3)
    kwargs = {} if factor is None else {"up" if fn == "upsample2d" else "down": factor}
    got = HELPERS[fn](jnp.asarray(images), f, padding=padding, flip_filter=True, gain=1.5, **kwargs)
    up, down, pad, gain = official_helper_call(fn, f, factor or 1, padding)
    want = naive_upfirdn2d(images, f, up, down, pad, gain=1.5 * gain, flip_filter=True)
    assert got.shape == want.shape
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-4)
