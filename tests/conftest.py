"""Test setup: 4 simulated CPU devices, set before JAX initialises. Shared helpers live in tests/helpers.py."""

import os

os.environ.setdefault("JAX_NUM_CPU_DEVICES", "4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pytest  # noqa: E402

pytest.register_assert_rewrite("tests.helpers")  # its asserts (assert_refused, ...) report values as a test's do
