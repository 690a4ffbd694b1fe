"""jaxgan's EditGAN encoder against the official `FPNEncoder` (../shared/fixtures/editgan_encoder_res64.npz).

The fixture ran `FPNEncoder(3, n_latent=10)` (reduced widths, official structure) on three 64 px images in train mode
(batch statistics, the official behaviour), on the first image alone, in eval mode (running statistics) and on two
40 x 56 images (non-integer upsample-add ratios). The encoder is read from the official `.pth` file through the
converter. Tolerances: W+ max abs 1e-4 (FIXTURES.md); the pyramid maps reach |p| ~ 34, so they are compared relative
to their largest value (measured 1.2e-5); the input gradient relative to its largest value, 1e-3. A single 64 px
image alone is the worst case: its batch statistics in c5 come from 2 x 2 positions, which amplifies float32
rounding 500-900 times (the fixture's `meta.sensitivity`), so it gets 2e-4 (measured 7e-5 to 1.1e-4 depending on
how XLA compiles the convolutions).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from checkpoints_convert.editgan_encoder import convert_editgan_encoder
from jaxgan.models import encoder
from tests.helpers import fixture_path, load_fixture, nchw_to_nhwc

W_ATOL = 1e-4
SINGLE_IMAGE_ATOL = 2e-4
MAP_RTOL = 5e-5
GRAD_RTOL = 1e-3
encode = jax.jit(encoder.encode, static_argnames=("batch_norm", "return_pyramid"))


@pytest.fixture(scope="module")
def fixture():
    data, meta = load_fixture("editgan_encoder_res64.npz")
    E = convert_editgan_encoder(fixture_path("editgan_encoder_res64.pth"))[0]["E"]
    return data, meta, E


def _assert_close_to_scale(got, expected, rtol):
    scale = np.max(np.abs(expected))
    assert np.max(np.abs(np.asarray(got) - expected)) <= rtol * scale


def test_config_is_read_from_the_tensor_shapes(fixture):
    data, meta, E = fixture
    widths = meta["widths"]
    assert E.config == encoder.EncoderConfig(num_ws=meta["num_ws"], w_dim=widths["style"], base_width=widths["base"],
                                             fpn_dim=widths["fpn"], head_dim=widths["head"])


def test_w_plus_and_pyramid_match_official_train_mode_batch(fixture):
    data, meta, E = fixture
    ws, (p2, p3, p4) = encode(E, nchw_to_nhwc(data["in/img"]), return_pyramid=True)
    np.testing.assert_allclose(np.asarray(ws), data["out/w_plus_train_bn"], atol=W_ATOL, rtol=0)
    for name, got in (("p2", p2), ("p3", p3), ("p4", p4)):
        _assert_close_to_scale(got, nchw_to_nhwc(data[f"out/{name}"]), MAP_RTOL)


def test_a_batch_of_one_matches_official_single_image_call_and_encode_each(fixture):
    data, meta, E = fixture
    images = nchw_to_nhwc(data["in/img"])
    single = np.asarray(encode(E, images[:1]))
    np.testing.assert_allclose(single, data["out/w_plus_train_bn_single"], atol=SINGLE_IMAGE_ATOL, rtol=0)
    # batch statistics make the batch matter: the official single-image code is not row 0 of the batch's
    assert np.max(np.abs(data["out/w_plus_train_bn_single"][0] - data["out/w_plus_train_bn"][0])) > 10 * W_ATOL
    each = np.asarray(jax.jit(encoder.encode_each)(E, images))
    np.testing.assert_allclose(each[:1], data["out/w_plus_train_bn_single"], atol=SINGLE_IMAGE_ATOL, rtol=0)
    # each image alone, bit for bit, whatever it is batched with
    np.testing.assert_array_equal(np.asarray(jax.jit(encoder.encode_each)(E, images[::-1]))[::-1], each)


def test_running_statistics_match_official_eval_mode(fixture):
    data, meta, E = fixture
    ws, (_, _, p4) = encode(E, nchw_to_nhwc(data["in/img"]), batch_norm="running", return_pyramid=True)
    np.testing.assert_allclose(np.asarray(ws), data["out/w_plus_eval_bn"], atol=W_ATOL, rtol=0)
    _assert_close_to_scale(p4, nchw_to_nhwc(data["out/p4_eval_bn"]), MAP_RTOL)


def test_non_integer_upsample_ratios_match_official(fixture):
    data, meta, E = fixture
    ws = encode(E, nchw_to_nhwc(data["in/img_odd"]))
    np.testing.assert_allclose(np.asarray(ws), data["out/w_plus_train_bn_odd"], atol=W_ATOL, rtol=0)


def test_input_gradient_matches_official_train_mode(fixture):
    data, meta, E = fixture
    projection = jnp.asarray(data["in/grad_projection"])
    grad = jax.jit(jax.grad(lambda x: jnp.sum(encoder.encode(E, x) * projection)))(nchw_to_nhwc(data["in/img"]))
    _assert_close_to_scale(grad, nchw_to_nhwc(data["out/grad_img"]), GRAD_RTOL)
