"""conv2d_resample's fast paths against loop-level numpy versions of torch conv2d / conv_transpose2d + FIR.

The weights are asymmetric so that a wrong spatial flip or a swapped in/out axis cannot pass.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.ops.conv2d_resample import conv2d_resample
from jaxgan.ops.upfirdn2d import setup_filter
from tests.helpers import naive_conv2d, naive_conv_transpose2d, naive_upfirdn2d

FIR = setup_filter([1, 3, 3, 1])


@pytest.fixture
def data():
    k1, k2, k3 = jax.random.split(jax.random.key(3), 3)
    x = np.asarray(jax.random.normal(k1, (2, 6, 5, 4)), np.float64)
    w3 = np.asarray(jax.random.normal(k2, (3, 4, 3, 3)), np.float64)
    w1 = np.asarray(jax.random.normal(k3, (3, 4, 1, 1)), np.float64)
    return x, w3, w1


def run(x, w, **kw):
    return np.asarray(conv2d_resample(jnp.asarray(x, jnp.float32), jnp.asarray(w, jnp.float32), **kw))


def test_plain_3x3_is_torch_conv2d(data):
    x, w3, _ = data
    np.testing.assert_allclose(run(x, w3, padding=1), naive_conv2d(x, w3, pad=1), rtol=1e-4, atol=1e-4)
    # flip_weight=False is a true convolution
    np.testing.assert_allclose(run(x, w3, padding=1, flip_weight=False), naive_conv2d(x, w3[:, :, ::-1, ::-1], pad=1),
                               rtol=1e-4, atol=1e-4)


def test_up2_is_transposed_conv_then_fir(data):
    # SynthesisLayer conv0: up=2, padding=1, flip_weight=False -> conv_transpose2d with the unflipped [I, O] weight,
    # then FIR with pad (1, 1) and gain 4 (spec stylegan2.md §1.1 table).
    x, w3, _ = data
    want = naive_upfirdn2d(naive_conv_transpose2d(x, w3.transpose(1, 0, 2, 3), 2), FIR, 1, 1, (1, 1, 1, 1), gain=4.0)
    got = run(x, w3, f=FIR, up=2, padding=1, flip_weight=False)
    assert got.shape == (2, 12, 10, 3)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_down2_is_fir_then_strided_conv(data):
    # Discriminator conv1: FIR pad (2, 2), then a stride-2 VALID 3x3 correlation.
    x, w3, _ = data
    want = naive_conv2d(naive_upfirdn2d(x, FIR, 1, 1, (2, 2, 2, 2)), w3, stride=2)
    got = run(x, w3, f=FIR, down=2, padding=1)
    assert got.shape == (2, 3, 2, 3)  # 6x5 input: FIR pad 2 -> 7x6, 3x3 stride 2 -> 3x2
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_1x1_down_and_up_fast_paths(data):
    x, _, w1 = data
    want_down = naive_conv2d(naive_upfirdn2d(x, FIR, 1, 2, (1, 1, 1, 1)), w1)
    np.testing.assert_allclose(run(x, w1, f=FIR, down=2), want_down, rtol=1e-4, atol=1e-4)
    want_up = naive_upfirdn2d(naive_conv2d(x, w1), FIR, 2, 1, (2, 1, 2, 1), gain=4.0)
    np.testing.assert_allclose(run(x, w1, f=FIR, up=2, flip_weight=False), want_up, rtol=1e-4, atol=1e-4)
