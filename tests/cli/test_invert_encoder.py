"""`jaxgan invert --space w+ --encoder`: EditGAN's encoder-initialised embedding from the command line, on the
rosinality fixture generator and the fixture encoder trained for it (editgan_encoder_res64.pth). The photo is read
as EditGAN reads it (whole image, bicubic, no crop), so `--steps 1` (no update) writes the official encoder latent
of editgan_embed_trace_res64.npz; a short run logs the encoder term and lowers the loss; misuse is refused."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from jaxgan.cli import main
from jaxgan.cli.common import LPIPS_ENV
from tests.helpers import assert_refused, convert_once, fixture_path, load_fixture, lpips_checkpoint

PHOTO = "images/astronaut.png"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], env={LPIPS_ENV: None})


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    G = convert_once("rosinality", tmp_path_factory, fixture_path("rosinality_G_res64.pt"))[0]
    E = convert_once("editgan-encoder", tmp_path_factory, fixture_path("editgan_encoder_res64.pth"), "--kind",
                     "editgan-encoder")[0]
    return G, E, lpips_checkpoint(tmp_path_factory)[0]


def test_one_step_writes_the_official_encoder_latent(checkpoints, tmp_path):
    G, E, L = checkpoints
    data, _ = load_fixture("editgan_embed_trace_res64.npz")
    result = run("invert", G, fixture_path(PHOTO), "--lpips", L, "--space", "w+", "--encoder", E, "--steps", 1,
                 "--outdir", tmp_path)
    assert result.exit_code == 0, result.output
    ws = np.load(tmp_path / "astronaut_ws.npy")
    assert ws.shape == (10, 64)
    # batch statistics of one 64 px image amplify rounding (tests/models/test_encoder_parity.py)
    np.testing.assert_allclose(ws, data["out/w_init"][0], rtol=0, atol=2e-4)
    doc = json.loads((tmp_path / "invert.json").read_text())
    assert doc["settings"]["updates"] == 0 and doc["settings"]["encoder"] == str(E)


@pytest.mark.slow  # a longer check that CI skips (`pytest -m slow` runs it)
def test_a_short_run_adds_the_encoder_term_and_improves(checkpoints, tmp_path):
    G, E, L = checkpoints
    result = run("invert", G, fixture_path(PHOTO), "--lpips", L, "--space", "w+", "--encoder", E, "--steps", 4,
                 "--outdir", tmp_path)
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "invert.json").read_text())
    assert doc["loss_names"] == ["lpips", "mse", "encoder", "loss"]
    data, _ = load_fixture("editgan_embed_trace_res64.npz")
    start = data["out/w_init"][0]
    assert np.abs(np.load(tmp_path / "astronaut_ws.npy") - start).max() > 1e-3  # it moved from the encoder's W+
    final = doc["images"][0]["final_losses"]
    # the official trace's first loss is 10 p + mse + enc of w_init; three updates at lr ~0.1 lower it
    assert final["loss"] < data["out/loss"][0]


def test_encoder_misuse_is_refused(checkpoints, tmp_path):
    G, E, L = checkpoints
    result = run("invert", G, fixture_path(PHOTO), "--lpips", L, "--encoder", E, "--outdir", tmp_path / "a")
    assert_refused(result, "--encoder goes with --space w+", tmp_path / "a", exit_code=2)
    # the fixture encoder gives 10 x 64 W+; the stylegan2-ada fixture generator takes 10 x 64 as well, but a
    # generator checkpoint is not an encoder
    result = run("invert", G, fixture_path(PHOTO), "--lpips", L, "--space", "w+", "--encoder", G, "--outdir",
                 tmp_path / "b")
    assert_refused(result, "editgan-encoder", tmp_path / "b")
