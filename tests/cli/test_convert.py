"""`jaxgan convert` of the official generator files: a rosinality .pt that then generates, and refusals of a malicious
or a truncated pickle that leave nothing behind (the stylegan2-ada pickle's conversion is exercised in
tests/cli/test_generate.py; the other --kind conversions with their commands: test_lpips.py, test_editgan.py,
test_pix2pixhd.py)."""

import os
import pickle

import numpy as np
from click.testing import CliRunner

from jaxgan.cli import main
from tests.helpers import fixture_path, load_fixture, nchw_to_nhwc

ATOL = 1e-4


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result


def test_rosinality_pt_converts_and_generates(tmp_path):
    data, _ = load_fixture("rosinality_G_res64.npz")
    assert run("convert", fixture_path("rosinality_G_res64.pt"), tmp_path / "ck").exit_code == 0
    np.save(tmp_path / "w.npy", data["in/w"])  # (N, w_dim): broadcast to every layer
    result = run("generate", tmp_path / "ck", "--ws", tmp_path / "w.npy", "--outdir", tmp_path / "out",
                 "--raw", tmp_path / "raw.npy")
    assert result.exit_code == 0, result.output
    assert np.abs(np.load(tmp_path / "raw.npy") - nchw_to_nhwc(data["out/img_from_w"])).max() <= ATOL


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_nothing_changes(tmp_path):
    marker = tmp_path / "pwned"
    src = tmp_path / "evil.pkl"
    src.write_bytes(pickle.dumps({"G_ema": _Exploit(marker)}))
    before = sorted(p.name for p in tmp_path.iterdir())
    result = CliRunner().invoke(main, ["convert", str(src), str(tmp_path / "ck")])
    assert result.exit_code == 1
    assert "system" in result.output and "not on the allow-list" in result.output
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no checkpoint, no partial directory


def test_truncated_pickle_is_refused(tmp_path):
    src = tmp_path / "cut.pkl"
    src.write_bytes(fixture_path("sg2ada_res64.pkl").read_bytes()[:100_000])
    result = CliRunner().invoke(main, ["convert", str(src), str(tmp_path / "ck")])
    assert result.exit_code == 1 and "cut.pkl" in result.output
    assert not (tmp_path / "ck").exists()
