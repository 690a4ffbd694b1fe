"""The torch.nn layers of pix2pixHD and EditGAN's encoder (jaxgan/ops/torch_layers.py) on hand-worked cases and against independent
numpy re-implementations of PyTorch's definitions (spec pix2pixhd_spade_lpips.md §1.6)."""

import numpy as np
import pytest

from jaxgan.ops.torch_layers import (avg_pool_3x3_s2, batch_norm, batch_statistics, conv2d, conv_transpose2d,
                                     instance_norm, max_pool_3x3_s2, reflection_pad, running_average)


def _nhwc(plane):
    return np.asarray(plane, np.float32)[None, :, :, None]


def test_reflection_pad_mirrors_about_the_edge_pixel():
    x = _nhwc([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    # nn.ReflectionPad2d(1): the edge row / column is the mirror, not repeated (numpy 'symmetric' would repeat it)
    expected = [[5, 4, 5, 6, 5],
                [2, 1, 2, 3, 2],
                [5, 4, 5, 6, 5],
                [8, 7, 8, 9, 8],
                [5, 4, 5, 6, 5]]
    np.testing.assert_array_equal(np.asarray(reflection_pad(x, 1))[0, :, :, 0], expected)


def test_avg_pool_counts_only_real_pixels_at_the_borders():
    x = _nhwc(np.arange(16).reshape(4, 4))
    # windows centred on (0,0), (0,2), (2,0), (2,2) of the zero-padded map, divided by their number of real pixels:
    # (0+1+4+5)/4, (1+2+3+5+6+7)/6, (4+5+8+9+12+13)/6, (5+6+7+9+10+11+13+14+15)/9
    np.testing.assert_allclose(np.asarray(avg_pool_3x3_s2(x))[0, :, :, 0], [[2.5, 4.0], [8.5, 10.0]], rtol=1e-7)


def test_avg_pool_of_an_odd_size_rounds_up_and_averages_the_corner():
    out = np.asarray(avg_pool_3x3_s2(_nhwc(np.arange(25).reshape(5, 5))))[0, :, :, 0]
    assert out.shape == (3, 3)
    assert out[2, 2] == pytest.approx((18 + 19 + 23 + 24) / 4)  # the window at (4, 4) holds 4 real pixels
    assert out[0, 0] == pytest.approx((0 + 1 + 5 + 6) / 4)


def test_avg_pool_of_a_constant_map_is_that_constant_everywhere():
    # count_include_pad=True would darken the borders (4/9 at the corners); this must not
    out = np.asarray(avg_pool_3x3_s2(np.full((1, 6, 8, 2), 3.0, np.float32)))
    np.testing.assert_allclose(out, 3.0, rtol=1e-7)


def test_instance_norm_uses_the_biased_variance_per_sample_and_channel():
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, (2, 5, 4, 3)).astype(np.float32)
    mean = x.mean(axis=(1, 2), keepdims=True, dtype=np.float64)
    var = ((x - mean) ** 2).mean(axis=(1, 2), keepdims=True)  # divides by H W, not H W - 1
    expected = (x - mean) / np.sqrt(var + 1e-5)
    np.testing.assert_allclose(np.asarray(instance_norm(x)), expected, atol=2e-6)


def test_instance_norm_of_a_constant_channel_is_zero():
    np.testing.assert_array_equal(np.asarray(instance_norm(np.full((1, 3, 3, 1), 7.0, np.float32))), 0.0)


def _scatter_conv_transpose(x, weight, bias, stride, padding, output_padding):
    """PyTorch's ConvTranspose2d by its definition: input pixel (i, j) adds x[i, j] * W[:, :, a, b] at output
    (i*stride - padding + a, j*stride - padding + b); the output is (H-1)*stride - 2*padding + k + output_padding."""
    n, h, w, cin = x.shape
    _, cout, k, _ = weight.shape
    out_h = (h - 1) * stride - 2 * padding + k + output_padding
    out_w = (w - 1) * stride - 2 * padding + k + output_padding
    out = np.zeros((n, out_h, out_w, cout), np.float64)
    for i in range(h):
        for j in range(w):
            for a in range(k):
                for b in range(k):
                    y, xx = i * stride - padding + a, j * stride - padding + b
                    if 0 <= y < out_h and 0 <= xx < out_w:
                        out[:, y, xx, :] += x[:, i, j, :].astype(np.float64) @ weight[:, :, a, b]
    return out + bias


@pytest.mark.parametrize("h,w", [(5, 6), (4, 4), (1, 3)])
def test_conv_transpose_matches_the_scatter_definition(h, w):
    rng = np.random.default_rng(h * 10 + w)
    x = rng.normal(size=(2, h, w, 3)).astype(np.float32)
    weight = rng.normal(size=(3, 4, 3, 3)).astype(np.float32)  # [I, O, k, k] as stored by PyTorch
    bias = rng.normal(size=(4,)).astype(np.float32)
    got = np.asarray(conv_transpose2d(x, weight, bias, stride=2, padding=1, output_padding=1))
    assert got.shape == (2, 2 * h, 2 * w, 4)
    np.testing.assert_allclose(got, _scatter_conv_transpose(x, weight, bias, 2, 1, 1), atol=1e-5)


def test_conv_transpose_of_one_pixel_places_the_unflipped_kernel():
    weight = np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3)
    x = np.zeros((1, 2, 2, 1), np.float32)
    x[0, 1, 1, 0] = 1.0  # input (1, 1) lands at output (2 - 1 + a, 2 - 1 + b) = rows / cols 1..3
    out = np.asarray(conv_transpose2d(x, weight, np.zeros(1, np.float32), stride=2, padding=1, output_padding=1))
    expected = np.zeros((4, 4), np.float32)
    expected[1:4, 1:4] = weight[0, 0]
    np.testing.assert_array_equal(out[0, :, :, 0], expected)


def test_conv2d_stride_and_padding_match_a_direct_sum():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1, 7, 6, 2)).astype(np.float32)
    weight = rng.normal(size=(3, 2, 4, 4)).astype(np.float32)  # [O, I, k, k]
    bias = rng.normal(size=(3,)).astype(np.float32)
    padded = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0))).astype(np.float64)
    out_h, out_w = (7 + 4 - 4) // 2 + 1, (6 + 4 - 4) // 2 + 1  # the discriminator's 4x4, stride 2, padding 2
    expected = np.zeros((1, out_h, out_w, 3))
    for y in range(out_h):
        for xx in range(out_w):
            patch = padded[0, 2 * y:2 * y + 4, 2 * xx:2 * xx + 4, :]  # [k, k, I]
            expected[0, y, xx] = np.einsum("abi,oiab->o", patch, weight) + bias
    np.testing.assert_allclose(np.asarray(conv2d(x, weight, bias, stride=2, padding=2)), expected, atol=1e-5)


def test_max_pool_3x3_s2_ignores_the_padding_and_rounds_the_size_up():
    x = _nhwc(-np.arange(25, dtype=np.float32).reshape(5, 5))  # all negative: a zero padding would win everywhere
    # F.max_pool2d(k=3, s=2, p=1) on 5x5 -> 3x3; each window's largest value is its top-left real pixel
    expected = [[0, -1, -3], [-5, -6, -8], [-15, -16, -18]]
    np.testing.assert_array_equal(np.asarray(max_pool_3x3_s2(x))[0, :, :, 0], expected)


def test_batch_norm_with_batch_statistics_and_the_running_update():
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, size=(2, 3, 4, 5)).astype(np.float32)
    weight, bias = rng.normal(size=5).astype(np.float32), rng.normal(size=5).astype(np.float32)
    mean, var = (np.asarray(a) for a in batch_statistics(x))
    x64 = x.astype(np.float64).reshape(-1, 5)
    np.testing.assert_allclose(mean, x64.mean(0), rtol=1e-6)
    np.testing.assert_allclose(var, x64.var(0), rtol=1e-5)  # biased: divides by N H W = 24
    y = np.asarray(batch_norm(x, weight, bias, mean, var)).reshape(-1, 5)
    np.testing.assert_allclose(y, (x64 - x64.mean(0)) / np.sqrt(x64.var(0) + 1e-5) * weight + bias, atol=2e-6)
    new_mean, new_var = running_average(np.zeros(5), np.ones(5), mean, var, 24)
    # PyTorch keeps the unbiased variance (divides by 23) in running_var, momentum 0.1
    np.testing.assert_allclose(new_var, 0.9 + 0.1 * x64.var(0, ddof=1), rtol=1e-5)
    np.testing.assert_allclose(new_mean, 0.1 * x64.mean(0), rtol=1e-5)


def test_batch_statistics_refuse_one_value_per_channel():
    with pytest.raises(ValueError, match="more than one value per channel"):
        batch_statistics(np.zeros((1, 1, 1, 4), np.float32))
