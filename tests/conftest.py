"""Test setup: 4 simulated CPU devices, set before JAX initialises. Shared helpers live in tests/helpers.py."""

import os

os.environ.setdefault("JAX_NUM_CPU_DEVICES", "4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pytest  # noqa: E402

pytest.register_assert_rewrite("tests.helpers")  # its asserts (assert_refused, ...) report values as a test's do

# The longest files (measured with --durations on the 2-core CI machine, 60-260 s each) run first. With `-n 2
# --dist loadfile` a worker takes whole files in collection order, so one of these collected last (tests/train/ is)
# would leave the other worker idle for minutes at the end of the run.
LONGEST_FIRST = (
    "scripts/test_gpu_check.py", "distributed/test_pti_job.py", "distributed/test_train_job.py",
    "distributed/test_editgan_job.py",
    "serve/test_pti_sessions.py", "train/test_stylegan2.py", "train/test_encoder.py", "distributed/test_invert_job.py",
    "serve/test_editor.py", "cli/test_invert_pti.py", "cli/test_editgan.py", "cli/test_stylegan3.py",
    "edit/test_pti_official.py", "serve/test_stylegan3_serving.py", "serve/test_editor_editgan.py",
    "cli/test_train_encoder.py", "serve/test_lifecycle.py", "distributed/test_generate_job.py",
)


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}

    def place(item):
        relative = item.nodeid.split("::")[0].removeprefix("tests/")
        return rank.get(relative, len(rank))
    items.sort(key=place)  # stable: every other test keeps its place
