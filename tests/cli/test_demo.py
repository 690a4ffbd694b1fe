"""The bundled demo model from the command line: `demo` names it on every command and draws faces, a missing bundle
is a one-line error, `jaxgan demo` writes its samples and its drag offline (what ships: tests/test_demo.py)."""

import json

import numpy as np
from click.testing import CliRunner
from PIL import Image

from jaxgan import demo
from jaxgan.cli import main
from jaxgan.cli.common import CHECKPOINT
from jaxgan.demo import DEMO_NAME, bundled_checkpoint
from tests.helpers import assert_refused, lpips_checkpoint


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_demo_names_the_bundled_model_on_every_command(tmp_path):
    assert CHECKPOINT.convert(DEMO_NAME, None, None) == bundled_checkpoint()
    result = run("generate", "demo", "--seeds", "0-3", "--trunc", "0.7", "--outdir", tmp_path)
    assert result.exit_code == 0, result.output
    images = np.stack([np.asarray(Image.open(tmp_path / f"seed{s:04d}.png")) for s in range(4)])
    resolution = json.loads((bundled_checkpoint() / "jaxgan.json").read_text())["models"]["G"]["config"][
        "img_resolution"]
    assert images.shape == (4, resolution, resolution, 3)
    # Trained faces, not noise: images differ from seed to seed, and neighbouring pixels are strongly correlated
    # (a random-weight generator gives blotches with far weaker structure at this scale).
    assert np.abs(images[0].astype(int) - images[1].astype(int)).mean() > 5
    x = images.astype(np.float64)
    corr = np.corrcoef(x[:, :, 1:].ravel(), x[:, :, :-1].ravel())[0, 1]
    assert corr > 0.8, corr


def test_missing_checkpoints_and_a_missing_bundle_are_one_line_errors(tmp_path, monkeypatch):
    result = run("generate", tmp_path / "nope", "--seeds", "0", "--outdir", tmp_path / "out")
    assert_refused(result, "does not exist", tmp_path / "out", exit_code=2)
    monkeypatch.setattr(demo, "BUNDLED_DIR", tmp_path / "stripped")
    result = run("generate", "demo", "--seeds", "0", "--outdir", tmp_path / "out")
    assert_refused(result, "bundled demo model is missing", tmp_path / "out", exit_code=2)
    result = run("demo", "--outdir", tmp_path / "out")
    assert_refused(result, "bundled demo model is missing", tmp_path / "out")


def test_demo_writes_samples_and_a_drag(tmp_path):
    result = run("demo", "--outdir", tmp_path / "out")
    assert result.exit_code == 0, result.output
    samples, dragged = tmp_path / "out" / "samples", tmp_path / "out" / "drag"
    assert (samples / "grid.png").is_file() and len(list(samples.glob("seed*.png"))) == 16
    assert sorted(p.name for p in dragged.iterdir()) == ["drag.gif", "drag.json", "drag.png", "drag_ws.npy"]
    summary = json.loads((dragged / "drag.json").read_text())
    settings = demo.demo_settings(json.loads((bundled_checkpoint() / "jaxgan.json").read_text()))["drag"]
    start = np.array([[int(v) for v in settings["points"].split(",")]])
    target = np.array([[int(v) for v in settings["targets"].split(",")]])
    # The handle ends nearer its target than it started.
    assert np.abs(np.array(summary["final_points"]) - target).sum() < np.abs(start - target).sum(), summary
    assert "demo done" in result.output and str(dragged / "drag.gif") in result.output


def test_invert_demo_with_the_bundled_encoder_starts_from_its_w_plus(tmp_path, tmp_path_factory):
    """`jaxgan invert demo face.png --space w+ --encoder demo --steps 1`: the bundled encoder's W+ of the photo, with
    the running BatchNorm statistics its checkpoint recommends (no --encoder-bn needed at 32 px)."""
    from jaxgan.checkpoint import load_model
    from jaxgan.data import toyfaces
    from jaxgan.edit.invert import EmbedConfig
    from jaxgan.images import load_image
    from jaxgan.models import encoder
    face = tmp_path / "face.png"
    Image.fromarray(toyfaces.render_batch(toyfaces.batch_seeds(3, 0, 1), 64).images[0]).save(face)  # resized
    result = run("invert", "demo", face, "--space", "w+", "--encoder", "demo", "--steps", 1, "--lpips",
                 lpips_checkpoint(tmp_path_factory)[0], "--outdir", tmp_path / "out")
    assert result.exit_code == 0, result.output
    E = load_model(bundled_checkpoint(), "editgan-encoder")
    target = load_image(face, 32, 3, fit=EmbedConfig.image_fit)
    want = np.asarray(encoder.encode_each(E, target[None], batch_norm="running"))[0]
    np.testing.assert_allclose(np.load(tmp_path / "out" / "face_ws.npy"), want, rtol=0, atol=1e-5)
    settings = json.loads((tmp_path / "out" / "invert.json").read_text())["settings"]
    assert settings["config"]["encoder_batch_norm"] == "running"
