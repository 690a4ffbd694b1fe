"""`jaxgan train` from the command line: presets and config files, and one-line refusals of bad runs before any
compilation (the training itself is covered by tests/train/test_stylegan2.py)."""

import json

import pytest
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


@pytest.mark.slow  # a longer check that CI skips (`pytest -m slow` runs it)
def test_a_short_run_takes_every_option_and_writes_a_network_that_generates(tmp_path):
    """The tiny preset from a config file that turns the regularisers and style mixing off (only the Gmain and Dmain
    phases compile: about a minute of CPU instead of two; tests/train/test_stylegan2.py trains with them) and sets
    a batch size and seed that the command line overrides. Batch 16 to 0.048 kimg = 3 iterations of 16 images.
    Ticks every 0.032 kimg: after iteration 2 (32 images) and at the end (48). Snapshots every 0.032 kimg: the
    training state after iterations 2 and 3 (the last two are kept), a network named by whole kimg (000000, the
    last one written)."""
    import numpy as np
    from PIL import Image

    config_file = tmp_path / "tiny.json"
    config_file.write_text(json.dumps({"preset": "tiny", "r1_gamma": 0, "pl_weight": 0, "style_mixing_prob": 0,
                                       "batch_size": 8, "seed": 3}))
    out = tmp_path / "run"
    result = run("train", config_file, "--out", out, "--kimg", "0.048", "--snapshot-kimg", "0.032", "--tick-kimg",
                 "0.032", "--batch-size", 16, "--seed", 7)
    assert result.exit_code == 0, result.output
    config = json.loads((out / "training.json").read_text())
    assert config["batch_size"] == 16 and config["seed"] == 7  # the command line wins over the file
    assert config["resolution"] == 32 and config["g_channels"] == [32, 32, 16, 8] and config["pl_weight"] == 0
    ticks = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [(t["iteration"], t["kimg"]) for t in ticks] == [(2, 0.032), (3, 0.048)]
    assert all(np.isfinite(t["metrics"]["G_loss"]) and np.isfinite(t["metrics"]["D_loss"]) for t in ticks)
    assert sorted(p.name for p in out.glob("state-*")) == ["state-00000002", "state-00000003"]
    assert sorted(p.name for p in out.glob("samples-*.png")) == ["samples-000000.png", "samples-init.png"]
    network = out / "network-000000"
    record = json.loads((network / "jaxgan.json").read_text())["training"]
    assert record["iterations"] == 3 and record["kimg"] == 0.048 and record["config"] == config
    samples = run("generate", network, "--seeds", "0-1", "--outdir", tmp_path / "samples")
    assert samples.exit_code == 0, samples.output
    # samples-000000.png tiles G_ema's images of seeds 0..31 (psi 1, const noise) 6 to a row: seeds 0 and 1 are
    # the first two tiles, and the exported network must draw them (up to a grey level where float32 rounding
    # differs between the two programs)
    grid = np.asarray(Image.open(out / "samples-000000.png")).astype(int)
    for seed in (0, 1):
        pixels = np.asarray(Image.open(tmp_path / "samples" / f"seed{seed:04d}.png")).astype(int)
        assert pixels.shape == (32, 32, 3) and pixels.std() > 0
        tile = grid[:32, 32 * seed:32 * (seed + 1)]
        assert np.abs(pixels - tile).max() <= 1 and (pixels != tile).mean() < 0.01


def test_a_batch_the_devices_cannot_split_is_refused_before_the_run_directory_is_made(tmp_path):
    """Batch 4 on the 4 test devices is one image per device, but the path-length batch halves it
    (pl_batch_shrink 2): refused in one line, and no training.json left behind to block the next try."""
    assert_refused(run("train", "tiny", "--out", tmp_path / "run", "--kimg", "0.01", "--batch-size", 4),
                   "must be a positive multiple of pl_batch_shrink (2)", tmp_path / "run")
