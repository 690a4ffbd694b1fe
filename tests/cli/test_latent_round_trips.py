"""Whatever jaxgan writes as a latent, `jaxgan generate --ws` reads back as the same image: the dragged latent of
`jaxgan drag` renders as its drag.png, the W+ latent of `jaxgan invert` as its NAME_recon.png (issue 15, bug 1:
a (num_ws, w_dim) latent was read as num_ws separate w vectors)."""

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from jaxgan.cli import main
from jaxgan.cli.common import LPIPS_ENV
from tests.helpers import generator_checkpoint, lpips_checkpoint


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args], env={LPIPS_ENV: None})
    assert result.exit_code == 0, result.output
    return result


def pixels(path):
    return np.asarray(Image.open(path))


def test_a_dragged_latent_generates_the_drag_image(tmp_path):
    run("drag", "demo", "--seed", 0, "--points", "20,10", "--targets", "20,6", "--steps", 6, "--outdir",
        tmp_path / "d")
    assert np.load(tmp_path / "d" / "drag_ws.npy").shape == (8, 64)  # (num_ws, w_dim) of the bundled model
    result = run("generate", "demo", "--ws", tmp_path / "d" / "drag_ws.npy", "--outdir", tmp_path / "g")
    assert "wrote 1 images" in result.output
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == ["img0000.png"]
    np.testing.assert_array_equal(pixels(tmp_path / "g" / "img0000.png"), pixels(tmp_path / "d" / "drag.png"))


def test_a_dragged_latent_continues_as_the_start_of_another_drag(tmp_path):
    run("drag", "demo", "--seed", 3, "--points", "16,16", "--targets", "16,19", "--steps", 3, "--outdir",
        tmp_path / "a")
    run("drag", "demo", "--ws", tmp_path / "a" / "drag_ws.npy", "--points", "16,16", "--targets", "16,19",
        "--steps", 0, "--outdir", tmp_path / "b")  # no update: the closing observation renders the start
    np.testing.assert_array_equal(pixels(tmp_path / "b" / "drag.png"), pixels(tmp_path / "a" / "drag.png"))


@pytest.mark.parametrize("space", ["w+"])  # the projector's (w) image also needs its noise maps (README)
def test_an_inverted_latent_generates_its_reconstruction(tmp_path_factory, tmp_path, space):
    ckpt = generator_checkpoint(tmp_path_factory)
    lpips = lpips_checkpoint(tmp_path_factory)[0]
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "face.png")
    run("invert", ckpt, tmp_path / "face.png", "--lpips", lpips, "--space", space, "--steps", 3, "--outdir",
        tmp_path / "inv")
    run("generate", ckpt, "--ws", tmp_path / "inv" / "face_ws.npy", "--outdir", tmp_path / "g")
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == ["img0000.png"]
    np.testing.assert_array_equal(pixels(tmp_path / "g" / "img0000.png"), pixels(tmp_path / "inv" / "face_recon.png"))
