"""`jaxgan train-encoder` end to end on a tiny random 32 px generator and a tiny encoder (the training itself is
covered by tests/train/test_encoder.py): refusals in one line before anything is written, a short run that writes
a loadable encoder checkpoint, and its sidecar."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from jaxgan.cli import main
from tests.helpers import assert_refused

TINY_ENCODER = ("--base-width", 4, "--stage-blocks", "1,1,1,1", "--fpn-dim", 16, "--head-dim", 16)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def generator(tmp_path_factory):
    import jax

    from jaxgan.checkpoint import save_checkpoint
    from jaxgan.models import stylegan2
    cfg = stylegan2.GeneratorConfig(z_dim=16, c_dim=0, w_dim=16, img_resolution=32, img_channels=3,
                                    channels=(16, 16, 16, 8), mapping_layers=2)
    G = stylegan2.init_generator(cfg, jax.random.key(0))
    return save_checkpoint(tmp_path_factory.mktemp("tinyG") / "G", {"G": G})


def image_folder(root, count):
    """`count` random 40 x 24 photos (stretched to 32 x 32 on reading)."""
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)).save(root / f"{i}.png")
    return root


def test_bad_input_is_refused_in_one_line(generator, tmp_path):
    assert_refused(run("train-encoder", generator, "--out", tmp_path / "a", "--images", tmp_path / "none"),
                   "is not a folder of images", tmp_path / "a")
    (tmp_path / "empty").mkdir()
    assert_refused(run("train-encoder", generator, "--out", tmp_path / "b", "--images", tmp_path / "empty"),
                   "holds no images", tmp_path / "b")
    few = image_folder(tmp_path / "few", 3)
    assert_refused(run("train-encoder", generator, "--out", tmp_path / "c", "--images", few, "--batch-size", 4),
                   "fewer than one batch", tmp_path / "c")
    assert_refused(run("train-encoder", generator, "--out", tmp_path / "d", "--resume"), "holds no encoder training",
                   tmp_path / "d")
    assert_refused(run("train-encoder", generator, "--out", tmp_path / "e", "--stage-blocks", "1,1"),
                   "four positive block counts", tmp_path / "e")
    assert_refused(run("train-encoder", generator, "--out", tmp_path / "f", "--head-convs", "1,1,1"),
                   "reduce images of at most 8 px to 1 x 1; the generator makes 32 px images", tmp_path / "f")
    assert_refused(run("train-encoder", generator, "--out", tmp_path / "g", "--head-convs", "1,x"),
                   "is not 3 counts like 5,6,7", tmp_path / "g", exit_code=2)  # a usage error
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x.txt").write_text("x")
    assert_refused(run("train-encoder", generator, "--out", busy), "pass --resume")
    assert sorted(p.name for p in busy.iterdir()) == ["x.txt"]


def test_a_short_run_writes_a_loadable_encoder(generator, tmp_path):
    from jaxgan.checkpoint import load_model, read_sidecar
    images = image_folder(tmp_path / "photos", 4)
    out = tmp_path / "run"
    # 4 images in one batch: epoch = iteration; with no warm-up, the second iteration (epoch 1) has a real step.
    result = run("train-encoder", generator, "--out", out, "--images", images, "--iterations", 2, "--batch-size", 4,
                 "--warmup-epochs", 0, "--log-every", 1, "--seed", 3, "--head-convs", "1,2,3", *TINY_ENCODER)
    assert result.exit_code == 0, result.output
    assert "the LPIPS loss terms are dropped" in result.output
    E = load_model(out / "encoder", "editgan-encoder")
    assert (E.config.num_ws, E.config.w_dim, E.config.base_width, E.config.stage_blocks) == (8, 16, 4, (1, 1, 1, 1))
    assert E.config.head_convs == (1, 2, 3)  # the heads of a 32 px encoder (the official 5, 6, 7 end at 512 px)
    training = read_sidecar(out / "encoder")["training"]
    assert training["generator"] == str(generator) and training["iterations"] == 2 and training["lpips"] is False
    assert training["config"]["seed"] == 3 and training["config"]["batch_size"] == 4
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [("real_loss" in entry["terms"]) for entry in log] == [False, True]
    # Resuming with other settings is refused before anything runs.
    assert_refused(run("train-encoder", generator, "--out", out, "--images", images, "--iterations", 3,
                       "--batch-size", 4, "--warmup-epochs", 0, "--seed", 4, "--head-convs", "1,2,3", "--resume",
                       *TINY_ENCODER),
                   "other settings")
