"""bias_act: order (bias, activation, gain, clamp) and the official default slopes and gains."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.ops.bias_act import bias_act


def test_lrelu_default_gain_and_clamp():
    x = np.array([[-3.0, -0.5, 0.5, 300.0]], np.float32)
    b = np.array([1.0, 0.0, -1.0, 0.0], np.float32)
    got = np.asarray(bias_act(jnp.asarray(x), jnp.asarray(b), act="lrelu", clamp=256))
    pre = x + b
    want = np.where(pre >= 0, pre, 0.2 * pre) * np.sqrt(2)
    want = np.clip(want, -256, 256)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert got[0, 3] == 256  # clamped after the gain


def test_relu_and_linear_defaults():
    x = jnp.array([-2.0, 3.0])
    np.testing.assert_allclose(np.asarray(bias_act(x, act="relu")), [0.0, 3.0 * np.sqrt(2)], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(bias_act(x, act="linear", gain=2.0)), [-4.0, 6.0])


def test_bias_along_chosen_axis_and_custom_alpha():
    x = jnp.zeros((2, 3, 4))
    b = jnp.array([-1.0, 0.0, 1.0])
    got = np.asarray(bias_act(x, b, act="lrelu", alpha=0.1, gain=1.0, axis=1))
    np.testing.assert_allclose(got[:, 0], -0.1)
    np.testing.assert_allclose(got[:, 2], 1.0)


def test_unknown_activation_is_refused():
    with pytest.raises(ValueError, match="unknown activation"):
        bias_act(jnp.zeros(2), act="gelu_new")
