"""StyleGAN3's filtered leaky ReLU (jaxgan/ops/filtered_lrelu.py) against the official reference path's four steps
(`_filtered_lrelu_ref`) written out in numpy: bias, zero-stuff + pad + up-FIR with gain up^2, leaky ReLU times the
gain and clamped, down-FIR and decimation (tests/helpers.naive_upfirdn2d), with the T configs' separable filters
and the R configs' 2-D down filter. The layer-level parity with the official generator follows with StyleGAN3."""

import jax
import numpy as np
import pytest

from jaxgan.ops.filtered_lrelu import filtered_lrelu
from tests.helpers import naive_upfirdn2d


def naive_filtered_lrelu(x, fu, fd, b, up, down, padding, gain, slope, clamp):
    as_2d = (lambda f: np.ones((1, 1)) if f is None else (np.outer(f, f) if np.ndim(f) == 1 else np.asarray(f)))
    x = np.asarray(x, np.float64) + (0 if b is None else np.asarray(b, np.float64))
    x = naive_upfirdn2d(x, as_2d(fu), up, 1, padding, gain=up ** 2)
    x = np.where(x >= 0, x, x * slope) * gain
    if clamp is not None:
        x = np.clip(x, -clamp, clamp)
    return naive_upfirdn2d(x, as_2d(fd), 1, down, (0, 0, 0, 0))


def lowpass(taps, seed):
    f = np.abs(np.random.default_rng(seed).normal(size=taps)) + 0.1
    return (f / f.sum()).astype(np.float32)


CASES = {
    # a T layer: 2x up and down with 12-tap separable filters, the padding that keeps the size, bias and clamp
    "up2_down2": dict(fu=lowpass(12, 1), fd=lowpass(12, 2), up=2, down=2, padding=(11, 10, 11, 10), clamp=0.5),
    # the critically sampled layers upsample 4x
    "up4_down2": dict(fu=lowpass(24, 3), fd=lowpass(12, 4), up=4, down=2, padding=(20, 21, 19, 22), clamp=None),
    # an R layer's radial (2-D) down filter
    "radial_down": dict(fu=lowpass(12, 5), fd=np.outer(lowpass(6, 6), lowpass(6, 7)), up=2, down=2,
                        padding=(8, 7, 8, 7), clamp=0.8),
    # no filters: bias + leaky ReLU + gain + clamp only (ToRGB-like use with slope 1 aside)
    "plain": dict(fu=None, fd=None, up=1, down=1, padding=0, clamp=0.3),
}


@pytest.mark.parametrize("name", CASES)
def test_filtered_lrelu_matches_the_official_reference_steps(name):
    case = CASES[name]
    x = np.random.default_rng(0).normal(size=(2, 9, 7, 3)).astype(np.float32)
    b = np.array([0.3, -0.2, 0.1], np.float32)
    got = jax.jit(lambda x: filtered_lrelu(x, case["fu"], case["fd"], b, case["up"], case["down"],
                                           case["padding"], clamp=case["clamp"]))(x)
    pad = case["padding"] if case["padding"] != 0 else (0, 0, 0, 0)
    want = naive_filtered_lrelu(x, case["fu"], case["fd"], b, case["up"], case["down"], pad, np.sqrt(2), 0.2,
                                case["clamp"])
    # the official shape rule
    fu_w = 1 if case["fu"] is None else case["fu"].shape[-1]
    fd_w = 1 if case["fd"] is None else case["fd"].shape[-1]
    out_w = (7 * case["up"] + pad[0] + pad[1] - (fu_w - 1) - (fd_w - 1) + (case["down"] - 1)) // case["down"]
    out_h = (9 * case["up"] + pad[2] + pad[3] - (fu_w - 1) - (fd_w - 1) + (case["down"] - 1)) // case["down"]
    assert got.shape == want.shape == (2, out_h, out_w, 3)
    np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=1e-5 * max(1.0, np.abs(want).max()))
    if name == "plain":  # unfiltered, the clamp bounds the output itself
        assert np.abs(np.asarray(got)).max() == pytest.approx(case["clamp"])


def test_an_explicit_pallas_request_is_refused_until_a_kernel_exists():
    with pytest.raises(ValueError, match="Pallas filtered_lrelu kernel does not cover this call"):
        filtered_lrelu(np.zeros((1, 4, 4, 1), np.float32), implementation="pallas")
