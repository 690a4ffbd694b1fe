"""Test setup: 4 simulated CPU devices (set before JAX initialises) and the shared fixtures folder."""

import os

os.environ.setdefault("JAX_NUM_CPU_DEVICES", "4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"


def fixture_path(name: str) -> Path:
    path = FIXTURES / name
    if not path.exists():
        pytest.skip(f"parity fixture {path} is absent (expected ../shared/fixtures beside the project root)")
    return path


def load_fixture(name: str):
    """(arrays, meta) of a fixture .npz; PyTorch NCHW arrays are left as stored."""
    data = np.load(fixture_path(name))
    return data, json.loads(str(data["meta"]))


def nchw_to_nhwc(x):
    return np.transpose(x, (0, 2, 3, 1))
