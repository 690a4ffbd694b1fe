"""The implementation switch (jaxgan/ops/implementation.py): the table, explicit choices, the context manager
(also across jax.jit's cache) and the fallback for calls a kernel does not cover. No kernel runs here."""

import jax
import jax.numpy as jnp
import pytest

from jaxgan.ops import implementation as impl


def test_default_is_xla_everywhere_until_a_gpu_benchmark_says_otherwise():
    for op, decision in impl.DECISIONS.items():
        assert (decision.gpu, decision.cpu) == ("xla", "xla"), op
        assert impl.resolve(op, None) == "xla"


def test_explicit_choice_wins_and_bad_names_are_refused():
    assert impl.resolve("upfirdn2d", "pallas") == "pallas"
    with impl.use_implementation("pallas"):
        assert impl.resolve("upfirdn2d", "xla") == "xla"
        assert impl.resolve("upfirdn2d", None) == "pallas"
    with pytest.raises(ValueError, match="implementation must be"):
        impl.resolve("upfirdn2d", "triton")
    with pytest.raises(ValueError, match="implementation must be"):
        impl.use_implementation("cuda")
    with pytest.raises(KeyError, match="no implementation decision"):
        impl.resolve("conv", None)


def test_uncovered_calls_fall_back_only_for_the_default():
    with impl.use_implementation("pallas"):
        assert impl.resolve("epilogue", None, supported=False) == "xla"
    with pytest.raises(ValueError, match="does not cover this call: 2-D"):
        impl.resolve("epilogue", "pallas", supported=False, why_unsupported="2-D")


def test_set_default_is_process_wide_and_restorable():
    try:
        impl.set_default_implementation("pallas")
        assert impl.current_default() == "pallas" and impl.resolve("point_tracking", None) == "pallas"
    finally:
        impl.set_default_implementation(None)
    assert impl.current_default() is None


def test_context_is_part_of_the_jit_cache_key():
    traced_with = []

    @jax.jit
    def f(x):
        traced_with.append(impl.resolve("upfirdn2d", None))
        return x + 1

    f(jnp.ones(2))
    with impl.use_implementation("pallas"):
        f(jnp.ones(2))
    f(jnp.ones(2))
    assert traced_with == ["xla", "pallas"]  # retraced under the context, the first trace reused after it
