"""`jaxgan train` from the command line: presets and config files, and one-line refusals of bad runs before any
compilation (the training itself is covered by tests/train/test_stylegan2.py)."""

import json

from click.testing import CliRunner

from jaxgan.cli import main
from tests.helpers import assert_refused


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_help_names_the_presets():
    result = run("train", "--help")
    assert result.exit_code == 0
    assert "toyfaces64" in result.output and "--resume" in result.output


def test_bad_runs_are_refused_in_one_line(tmp_path):
    assert_refused(run("train", "nope", "--out", tmp_path / "a"), "neither a preset", tmp_path / "a")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "something.txt").write_text("x")
    result = run("train", "tiny", "--out", busy, "--kimg", "0.01")
    assert result.exit_code == 1 and "pass --resume" in result.output
    assert sorted(p.name for p in busy.iterdir()) == ["something.txt"]
    assert_refused(run("train", "tiny", "--out", tmp_path / "b", "--resume"), "holds no training run",
                   tmp_path / "b")
    assert_refused(run("train", "tiny", "--out", tmp_path / "c", "--kimg", "0"), "must be positive",
                   tmp_path / "c", exit_code=2)
    config = tmp_path / "bad.json"
    config.write_text(json.dumps({"preset": "tiny", "resolution": 16, "g_channels": [8, 8, 8], "d_channels": [8, 8, 8]}))
    assert_refused(run("train", config, "--out", tmp_path / "d"), "toyfaces are drawn at", tmp_path / "d")
