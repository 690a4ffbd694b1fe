"""conv2d_resample's fast paths against loop-level numpy versions of torch conv2d / conv_transpose2d + FIR.

The weights are asymmetric so that a wrong spatial flip or a swapped in/out axis cannot pass.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.ops.conv2d_resample import conv2d_resample
from jaxgan.ops.upfirdn2d import setup_filter, upfirdn2d
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



def autodiff_reference(x, w, case):
    """The same convolution as plain lax and upfirdn2d ops (differentiated by autodiff), per test case."""
    dims = ("NHWC", "OIHW", "NHWC")
    if case == "plain":
        return jax.lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=dims)
    if case == "up":  # transposed conv (stride 2, weight flipped), then the FIR with padding 1 and gain 4
        y = jax.lax.conv_general_dilated(x, jnp.flip(w, (2, 3)), (1, 1), ((2, 2), (2, 2)), lhs_dilation=(2, 2),
                                         dimension_numbers=dims)
        return upfirdn2d(y, FIR, padding=1, gain=4)
    y = upfirdn2d(x, FIR, padding=2)  # down: the FIR (padding 1 folded with the filter's 1), then stride 2
    return jax.lax.conv_general_dilated(y, w, (2, 2), ((0, 0), (0, 0)), dimension_numbers=dims)


CASES = {"plain": dict(padding=1), "up": dict(up=2, padding=1, f=FIR, flip_weight=False),
         "down": dict(down=2, padding=1, f=FIR)}


@pytest.mark.parametrize("case", CASES)
def test_gradients_are_autodiffs(data, case):
    """conv2d_resample's convolutions have their own backward rule (weight copies made late); its gradients, and
    the gradients of those (second order), are autodiff's of the same ops."""
    x, w3, _ = data
    x, w3 = jnp.asarray(x, jnp.float32), jnp.asarray(w3, jnp.float32)
    ours = functools.partial(conv2d_resample, **CASES[case])
    reference = functools.partial(autodiff_reference, case=case)
    np.testing.assert_allclose(np.asarray(ours(x, w3)), np.asarray(reference(x, w3)), rtol=1e-5, atol=1e-5)
    g = jax.random.normal(jax.random.key(5), ours(x, w3).shape)

    def grads(conv):
        return jax.grad(lambda x, w: jnp.sum(conv(x, w) * g), argnums=(0, 1))

    def second(conv):
        return jax.grad(lambda x, w: sum(jnp.sum(jnp.square(d)) for d in grads(conv)(x, w)), argnums=(0, 1))
    for a, b in zip(grads(ours)(x, w3) + second(ours)(x, w3), grads(reference)(x, w3) + second(reference)(x, w3)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("differentiate", [False, True])
def test_weight_copies_are_made_when_their_layer_runs(differentiate):
    """6 convolutions with 256 x 256 3x3 weights (program arguments) on tiny activations, forward or its gradient:
    as plain lax ops XLA's CPU schedule reorders every weight for the convolution (and again for its backward) at
    the start and holds all the copies (measured: 6 forward, 12 with the gradient); here a copy is made when its
    layer runs, so about one is alive at a time."""
    weights = [jax.random.normal(jax.random.key(i), (256, 256, 3, 3)) for i in range(6)]
    x = jax.random.normal(jax.random.key(9), (1, 4, 4, 256))

    def temporaries(conv):
        def loss(x, weights):
            for w in weights:
                x = jnp.tanh(conv(x, w))
            return jnp.sum(x)
        fn = jax.grad(loss) if differentiate else loss
        return jax.jit(fn).lower(x, weights).compile().memory_analysis().temp_size_in_bytes
    copy = 256 * 256 * 9 * 4
    assert temporaries(lambda x, w: autodiff_reference(x, w, "plain")) >= 5 * copy
    assert temporaries(lambda x, w: conv2d_resample(x, w, padding=1)) <= 1.5 * copy
