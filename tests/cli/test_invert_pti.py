"""`jaxgan invert --method pti`: a real photo through PTI from the command line, on the 64 px stylegan2-ada fixture
pickle with the fixture LPIPS networks (random VGG16 / AlexNet trunks, released lin weights). Checked: the files, the
tuning improving both LPIPS and PSNR over the pivot, the tuned generator loading in `jaxgan generate` and giving the
reconstruction back from the pivot, `--pivot` repeating the tuning exactly, and misuse refused."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from jaxgan.checkpoint import read_sidecar
from jaxgan.cli import main
from jaxgan.cli.common import LPIPS_ALEX_ENV, LPIPS_ENV
from tests.helpers import (assert_refused, fixture_path, generator_checkpoint, lpips_alex_checkpoint,
                           lpips_checkpoint)

PHOTO = "images/chelsea.png"
SHORT = ("--pivot-steps", 3, "--tune-steps", 4)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], env={LPIPS_ENV: None, LPIPS_ALEX_ENV: None})


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return (generator_checkpoint(tmp_path_factory), lpips_checkpoint(tmp_path_factory)[0],
            lpips_alex_checkpoint(tmp_path_factory)[0])


@pytest.fixture(scope="module")
def tuned(checkpoints, tmp_path_factory):
    G, L, A = checkpoints
    out = tmp_path_factory.mktemp("pti")
    result = run("invert", G, fixture_path(PHOTO), "--lpips", L, "--method", "pti", "--lpips-alex", A, *SHORT,
                 "--outdir", out)
    assert result.exit_code == 0, result.output
    return out, result


def test_pti_writes_the_pivot_the_tuned_generator_and_improves_the_reconstruction(checkpoints, tuned):
    G, L, A = checkpoints
    out, result = tuned
    for suffix in ("_ws.npy", "_recon.png", "_pivot.png", "_target.png", "_compare.png", "_loss.png"):
        assert (out / f"chelsea{suffix}").is_file(), suffix
    assert np.load(out / "chelsea_ws.npy").shape == (10, 64)
    doc = json.loads((out / "invert.json").read_text())
    entry = doc["images"][0]
    assert doc["settings"]["method"] == "pti" and doc["settings"]["config"]["tune_steps"] == 4
    assert doc["loss_names"] == ["mse", "lpips", "loss"]
    # Tuning lowers what it minimises (LPIPS-AlexNet + MSE): the alex distance falls and PSNR rises. (With the
    # fixtures' random trunks the VGG distance is no perceptual measure and need not follow.)
    assert entry["lpips_alex"] < entry["before"]["lpips_alex"], entry
    assert entry["psnr"] > entry["before"]["psnr"], entry
    assert entry["updates"] == 4 and not entry["stopped_early"]  # LPIPS stays far above 0.06 in 4 steps
    assert "chelsea: LPIPS (vgg)" in result.output and "LPIPS (alex)" in result.output
    sidecar = read_sidecar(out / "chelsea_G")
    assert sidecar["source"]["kind"] == "pti" and sidecar["source"]["image"] == str(fixture_path(PHOTO).resolve())
    assert sidecar["source"]["checkpoint"] == str(G.resolve()) and sidecar["source"]["pivot"] == "chelsea_ws.npy"
    assert sidecar["pti"]["after"] == {k: entry[k] for k in ("lpips", "lpips_alex", "mse", "psnr")}


def test_the_tuned_generator_reproduces_the_reconstruction_in_generate(tuned, tmp_path):
    out, _ = tuned
    result = run("generate", out / "chelsea_G", "--ws", out / "chelsea_ws.npy", "--outdir", tmp_path)
    assert result.exit_code == 0, result.output
    written = sorted(tmp_path.glob("*.png"))
    assert len(written) == 1
    generated = np.asarray(Image.open(written[0]))
    recon = np.asarray(Image.open(out / "chelsea_recon.png"))
    assert np.abs(generated.astype(int) - recon).max() <= 1  # the same image (uint8 rounding aside)
    assert np.abs(generated.astype(int) - np.asarray(Image.open(out / "chelsea_pivot.png"))).max() > 1


def test_a_given_pivot_skips_the_search_and_repeats_the_tuning(checkpoints, tuned, tmp_path):
    G, L, A = checkpoints
    out, _ = tuned
    result = run("invert", G, fixture_path(PHOTO), "--lpips", L, "--method", "pti", "--lpips-alex", A,
                 "--pivot", out / "chelsea_ws.npy", "--tune-steps", 4, "--outdir", tmp_path)
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.load(tmp_path / "chelsea_ws.npy"), np.load(out / "chelsea_ws.npy"))
    # The tuning depends on the image's key and its pivot alone: the same tuned generator.
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "chelsea_recon.png")),
                                  np.asarray(Image.open(out / "chelsea_recon.png")))
    doc = json.loads((tmp_path / "invert.json").read_text())
    assert doc["settings"]["pivot"] == "given" and "pivot_loss_names" not in doc


def test_pti_misuse_is_refused(checkpoints, tuned, tmp_path):
    G, L, A = checkpoints
    out, _ = tuned
    photo = fixture_path(PHOTO)
    assert_refused(run("invert", G, photo, "--lpips", L, "--method", "pti", "--outdir", tmp_path / "a"),
                   "alex", tmp_path / "a")
    assert_refused(run("invert", G, photo, "--lpips", L, "--method", "pti", "--lpips-alex", L, "--outdir",
                       tmp_path / "b"), "alex", tmp_path / "b")
    assert_refused(run("invert", G, photo, "--lpips", L, "--method", "pti", "--lpips-alex", A, "--steps", 3,
                       "--outdir", tmp_path / "c"), "--pivot-steps", tmp_path / "c", exit_code=2)
    assert_refused(run("invert", G, photo, photo, "--lpips", L, "--method", "pti", "--lpips-alex", A, "--pivot",
                       out / "chelsea_ws.npy", "--outdir", tmp_path / "d"), "one per image", tmp_path / "d",
                   exit_code=2)
    assert_refused(run("invert", G, photo, "--lpips", L, "--tune-steps", 3, "--outdir", tmp_path / "e"),
                   "--method pti", tmp_path / "e", exit_code=2)
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((3, 7), np.float32))
    assert_refused(run("invert", G, photo, "--lpips", L, "--method", "pti", "--lpips-alex", A, "--pivot", bad,
                       "--outdir", tmp_path / "f"), "pivot", tmp_path / "f")


def test_the_photo_recipe_pti_then_drag_runs_on_the_tuned_generator(tuned, tmp_path):
    """README recipe: photo -> PTI -> drag, on the tuned generator from its pivot."""
    out, _ = tuned
    result = run("drag", out / "chelsea_G", "--ws", out / "chelsea_ws.npy", "--points", "30,30", "--targets",
                 "34,36", "--steps", 2, "--outdir", tmp_path)
    assert result.exit_code == 0, result.output
    moved = np.load(tmp_path / "drag_ws.npy")
    assert moved.shape == (1, 10, 64) or moved.shape == (10, 64)
    assert np.abs(moved.reshape(10, 64) - np.load(out / "chelsea_ws.npy")).max() > 0  # the pivot was dragged
    summary = json.loads((tmp_path / "drag.json").read_text())
    assert summary["start"]["ws"].endswith("chelsea_ws.npy")
