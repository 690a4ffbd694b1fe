"""`jaxgan drag` with default settings works on every generator (issue 15, bug 2: the official feature_idx 5 and
r1 3 were refused on generators below 128 px): the bundled 32 px model takes the settings its checkpoint
recommends, the 64 px fixture pickle the resolution rule; values given explicitly are still checked."""

import json

from click.testing import CliRunner

from jaxgan.cli import main
from tests.helpers import assert_refused, generator_checkpoint


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_the_readme_drag_example_works_on_the_bundled_model(tmp_path):
    result = run("drag", "demo", "--seed", 0, "--points", "20,10", "--targets", "20,6", "--outdir", tmp_path / "o")
    assert result.exit_code == 0, result.output
    settings = json.loads((tmp_path / "o" / "drag.json").read_text())["settings"]
    # the bundled checkpoint's demo job recommends these (jaxgan/assets/demo/jaxgan.json)
    assert (settings["r1"], settings["r2"], settings["feature_idx"], settings["lr"]) == (16.0, 48.0, 2, 0.01)
    assert (settings["patch_radius"], settings["search_radius"]) == (1, 3)


def test_default_settings_work_on_the_64px_fixture_pickle(tmp_path_factory, tmp_path):
    ckpt = generator_checkpoint(tmp_path_factory)
    result = run("drag", ckpt, "--seed", 0, "--points", "32,20", "--targets", "32,26", "--steps", 2, "--outdir",
                 tmp_path / "o")
    assert result.exit_code == 0, result.output
    settings = json.loads((tmp_path / "o" / "drag.json").read_text())["settings"]
    # the rule: 3 * 256 / 64 = 12, 12 * 256 / 64 = 48 (2 and 6 px radii), the last of 5 blocks
    assert (settings["r1"], settings["r2"], settings["feature_idx"], settings["lr"]) == (12.0, 48.0, 4, 0.001)
    assert (settings["patch_radius"], settings["search_radius"]) == (2, 6)


def test_explicit_values_that_cannot_work_are_refused(tmp_path_factory, tmp_path):
    ckpt = generator_checkpoint(tmp_path_factory)
    for args, message in [(["--r1", 3], "r1=3 (given for 512 px images) rounds to 0 px at 64 px"),
                          (["--feature-idx", 5], "feature_idx 5 is out of range")]:
        result = run("drag", ckpt, "--seed", 0, "--points", "32,20", "--targets", "32,26", *args, "--outdir",
                     tmp_path / "o")
        assert_refused(result, message, tmp_path / "o")
