"""`jaxgan lpips` and `jaxgan convert --kind lpips-vgg / lpips-alex` end to end: the printed distances are the
library's (`lpips_distance` on the same arrays), pairing, JSON output, notes, either trunk, checkpoints written
under the old kind name, and refusals that say which files to get.

The LPIPS checkpoints are converted from the fixtures' random VGG16 / AlexNet trunks and the real v0.1 lin weights
(distances are not perceptual, but the pipeline is the real one). `lpips_checkpoint`, `lpips_alex_checkpoint` and
`generator_checkpoint` (tests/helpers.py) convert once per worker process and are shared with
tests/cli/test_invert.py and tests/cli/test_editgan.py.
"""

import functools
import json
import shutil

import click
import jax
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from jaxgan.cli import main
from jaxgan.cli.common import LPIPS_ENV, load_lpips
from jaxgan.models.lpips import lpips_pairs
from jaxgan.images import load_rgb_pm1
from jaxgan.models.lpips import LPIPSConfig, lpips_distance
from tests.helpers import (ALEX_FILES_HINT, FILES_HINT, assert_refused, fixture_path, generator_checkpoint,
                           lpips_alex_checkpoint, lpips_checkpoint)


def run(*args, env=None):
    # LPIPS_ENV unset unless a test sets it, whatever the caller's environment holds
    return CliRunner().invoke(main, [str(a) for a in args], env={LPIPS_ENV: None, **(env or {})})


@pytest.fixture(scope="module")
def lpips_ckpt(tmp_path_factory):
    return lpips_checkpoint(tmp_path_factory)[0]


@pytest.fixture(scope="module")
def alex_ckpt(tmp_path_factory):
    return lpips_alex_checkpoint(tmp_path_factory)[0]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """64x64 crops of two photos, an exact copy, an RGBA copy, and images of other sizes."""
    folder = tmp_path_factory.mktemp("lpips_images")
    astronaut = np.asarray(Image.open(fixture_path("images/astronaut.png")).convert("RGB"))
    chelsea = np.asarray(Image.open(fixture_path("images/chelsea.png")).convert("RGB"))
    arrays = {"a": astronaut[100:164, 200:264], "b": astronaut[300:364, 100:164], "c": chelsea[100:164, 150:214],
              "small": chelsea[:32, :32], "tiny": chelsea[:8, :8], "tiny2": astronaut[:8, :8],
              "px30": chelsea[:30, :30], "px30b": astronaut[:30, :30]}
    paths = {}
    for name, array in arrays.items():
        paths[name] = folder / f"{name}.png"
        Image.fromarray(np.ascontiguousarray(array)).save(paths[name])
    paths["a_copy"] = folder / "a_copy.png"
    paths["a_copy"].write_bytes(paths["a"].read_bytes())
    rgba = np.concatenate([arrays["b"], np.full((64, 64, 1), 200, np.uint8)], axis=-1)
    paths["b_rgba"] = folder / "b_rgba.png"
    Image.fromarray(rgba, "RGBA").save(paths["b_rgba"])
    paths["text"] = folder / "text.png"
    paths["text"].write_text("not an image")
    return paths


@functools.cache
def _model(ckpt):
    from jaxgan.checkpoint import load_checkpoint
    return load_checkpoint(ckpt, names=("LPIPS",))[0]["LPIPS"]


_distance = jax.jit(lpips_distance)


def direct_distance(ckpt, path_a, path_b) -> float:
    """The library's LPIPS on the arrays the command reads (one pair, one device)."""
    return float(_distance(_model(ckpt), load_rgb_pm1(path_a)[None], load_rgb_pm1(path_b)[None])[0])


def lines(result):
    return [line.rsplit(" ", 2) for line in result.stdout.splitlines()]


@pytest.mark.parametrize("net,trunk_file", [("vgg", "vgg16-397923af.pth"), ("alex", "alexnet-owt-7be5be79.pth")])
def test_convert_lpips_summarises_the_checkpoint(tmp_path_factory, net, trunk_file):
    ckpt, result = (lpips_checkpoint if net == "vgg" else lpips_alex_checkpoint)(tmp_path_factory)
    assert f"LPIPS: lpips (LPIPS v0.1, {net} trunk)" in result.stdout and f"wrote {ckpt}" in result.stdout
    # the fixture's trunk is random, not torchvision's file: say so; its lin file is the released one: no note
    assert f"not torchvision's {trunk_file}" in result.stderr
    assert "not the released" not in result.stderr
    sidecar = json.loads((ckpt / "jaxgan.json").read_text())
    assert sidecar["models"] == {"LPIPS": {"kind": "lpips", "config": {"net": net, "version": "0.1"}}}
    assert sidecar["source"]["kind"] == f"lpips-{net}"


@pytest.mark.parametrize("args,message", [
    (["--kind", "lpips-vgg"], "--kind lpips-vgg needs --lin, the LPIPS lin-weight file lpips/weights/v0.1/vgg.pth"),
    (["--kind", "lpips-alex"], "--kind lpips-alex needs --lin, the LPIPS lin-weight file lpips/weights/v0.1/alex.pth"),
    (["--lin", "{lin}"], "--lin only goes with --kind lpips-vgg or lpips-alex"),
    (["--kind", "rosinality", "--lin", "{lin}"], "--lin only goes with --kind lpips-vgg or lpips-alex"),
])
def test_convert_lin_goes_with_lpips_only(tmp_path, args, message):
    lin = str(fixture_path("lpips_v0.1_vgg_lin.pth"))
    result = run("convert", fixture_path("vgg16_random_trunk_fp16.pth"), tmp_path / "ck",
                 *[a.replace("{lin}", lin) for a in args])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "ck").exists()


def test_two_images_print_the_library_distance(lpips_ckpt, images):
    expected = direct_distance(lpips_ckpt, images["a"], images["b"])
    assert expected > 0
    result = run("lpips", "--lpips", lpips_ckpt, images["a"], images["b"])
    assert result.exit_code == 0, result.output
    (a, b, text), = lines(result)
    assert (a, b) == (str(images["a"]), str(images["b"]))
    assert text == f"{float(text):.6f}" and abs(float(text) - expected) <= 5e-7 + 1e-6
    doc = json.loads(run("lpips", "--lpips", lpips_ckpt, "--json", images["a"], images["b"]).stdout)
    assert doc["lpips_checkpoint"] == str(lpips_ckpt) and doc["net"] == "vgg"
    (pair,) = doc["pairs"]
    assert (pair["a"], pair["b"]) == (str(images["a"]), str(images["b"]))
    assert abs(pair["distance"] - expected) <= 1e-6


def test_first_against_the_others_or_all_pairs(lpips_ckpt, images):
    paths = [images["a"], images["b"], images["c"], images["a_copy"]]
    result = run("lpips", "--lpips", lpips_ckpt, *paths)
    assert result.exit_code == 0, result.output
    got = lines(result)
    assert [(a, b) for a, b, _ in got] == [(str(paths[0]), str(p)) for p in paths[1:]]
    assert got[2][2] == "0.000000"  # identical images
    measured = {(a, b): float(text) for a, b, text in got}
    # every pair of three images: also three pairs, so the same compiled program
    paths = [images["a"], images["b"], images["a_copy"]]
    result = run("lpips", "--lpips", lpips_ckpt, "--all-pairs", "--json", *paths)
    assert result.exit_code == 0, result.output
    pairs = json.loads(result.stdout)["pairs"]
    assert [(p["a"], p["b"]) for p in pairs] == [(str(paths[i]), str(paths[j])) for i, j in lpips_pairs(3, True)]
    by_pair = {(p["a"], p["b"]): p["distance"] for p in pairs}
    assert by_pair[str(paths[0]), str(paths[2])] == 0.0
    assert by_pair[str(paths[1]), str(paths[2])] == pytest.approx(by_pair[str(paths[0]), str(paths[1])], abs=1e-6)
    assert abs(by_pair[str(paths[0]), str(paths[1])] - measured[str(paths[0]), str(paths[1])]) <= 5e-7 + 1e-6
    assert abs(measured[str(images["a"]), str(images["c"])]
               - direct_distance(lpips_ckpt, images["a"], images["c"])) <= 5e-7 + 1e-6


def test_an_alexnet_checkpoint_measures_with_its_trunk(alex_ckpt, lpips_ckpt, images):
    expected = direct_distance(alex_ckpt, images["a"], images["b"])
    assert abs(expected - direct_distance(lpips_ckpt, images["a"], images["b"])) > 1e-3  # another network
    result = run("lpips", "--lpips", alex_ckpt, "--json", images["a"], images["b"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["net"] == "alex" and abs(doc["pairs"][0]["distance"] - expected) <= 1e-6
    # alex needs 31 px where vgg needs 16: 30 px images are refused by alex only
    assert_refused(run("lpips", "--lpips", alex_ckpt, images["px30"], images["px30b"]),
                   "the images are 30x30 pixels; LPIPS (alex) needs at least 31x31")
    assert run("lpips", "--lpips", lpips_ckpt, images["px30"], images["px30b"]).exit_code == 0


def test_commands_that_need_the_vgg_trunk_refuse_an_alexnet_checkpoint(alex_ckpt, lpips_ckpt, images, tmp_path,
                                                                        tmp_path_factory):
    # the projector and the W+ embedding are LPIPS (vgg); the refusal comes before any work
    result = run("invert", generator_checkpoint(tmp_path_factory), images["a"], "--lpips", alex_ckpt, "--outdir",
                 tmp_path / "out")
    assert_refused(result, f"the LPIPS checkpoint {alex_ckpt} has the alex trunk; this needs LPIPS (vgg)",
                   tmp_path / "out")
    assert FILES_HINT in result.output
    # and the other way round, for a command that needs LPIPS (alex)
    with pytest.raises(click.ClickException, match=r"has the vgg trunk; this needs LPIPS \(alex\)") as refused:
        load_lpips(lpips_ckpt, net="alex")
    assert ALEX_FILES_HINT in refused.value.message
    assert load_lpips(alex_ckpt, net="alex").config.net == "alex"


def test_a_checkpoint_written_with_the_old_kind_name_still_loads(lpips_ckpt, images, tmp_path):
    from jaxgan.checkpoint import load_model, models_of_kind, read_sidecar
    legacy = tmp_path / "legacy"
    shutil.copytree(lpips_ckpt, legacy)
    sidecar_path = legacy / "jaxgan.json"
    sidecar = json.loads(sidecar_path.read_text())
    sidecar["models"]["LPIPS"]["kind"] = "lpips-vgg"  # what jaxgan wrote before LPIPS had a second trunk
    sidecar_path.write_text(json.dumps(sidecar))
    assert models_of_kind(read_sidecar(legacy), "lpips") == ["LPIPS"]
    assert load_model(legacy, "lpips").config == load_model(legacy, "lpips-vgg").config == LPIPSConfig()
    result = run("lpips", "--lpips", legacy, images["a"], images["b"])
    assert result.exit_code == 0, result.output
    (_, _, text), = lines(result)
    assert abs(float(text) - direct_distance(lpips_ckpt, images["a"], images["b"])) <= 5e-7 + 1e-6


def test_pairs():
    assert lpips_pairs(2, False) == lpips_pairs(2, True) == [(0, 1)]
    assert lpips_pairs(3, False) == [(0, 1), (0, 2)]
    assert lpips_pairs(3, True) == [(0, 1), (0, 2), (1, 2)]


def test_alpha_is_dropped_with_a_note_and_the_checkpoint_may_come_from_the_environment(lpips_ckpt, images):
    result = run("lpips", images["a"], images["b_rgba"], env={LPIPS_ENV: str(lpips_ckpt)})
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith(f"note: {images['b_rgba']}: the alpha channel is dropped")
    (_, _, text), = lines(result)
    assert abs(float(text) - direct_distance(lpips_ckpt, images["a"], images["b"])) <= 5e-7 + 1e-6


def test_missing_or_wrong_lpips_checkpoint_names_the_files_to_get(lpips_ckpt, images, tmp_path, tmp_path_factory):
    pair = (images["a"], images["b"])
    generator = generator_checkpoint(tmp_path_factory)
    for args, message in [((), "no LPIPS checkpoint given"),
                          (("--lpips", tmp_path / "nowhere"), "does not exist"),
                          (("--lpips", tmp_path), "is not a jaxgan LPIPS checkpoint"),
                          (("--lpips", fixture_path("lpips_v0.1_vgg_lin.pth")), "is a file, not a jaxgan LPIPS"),
                          (("--lpips", generator), "holds no LPIPS model (it holds D, G)")]:
        result = run("lpips", *args, *pair)
        assert_refused(result, message)
        assert FILES_HINT in result.output and "jaxgan convert vgg16-397923af.pth" in result.output
        assert "--kind lpips-vgg --lin vgg.pth" in result.output


def test_bad_images_are_refused(lpips_ckpt, images):
    for paths, message in [
        ((images["a"], images["small"]), f"{images['a']} is 64x64 pixels but {images['small']} is 32x32"),
        ((images["tiny"], images["tiny2"]), "needs at least 16x16"),
        ((images["a"], images["text"]), "not an image Pillow can read"),
        ((images["a"], images["a"].parent / "missing.png"), "missing.png: no such file"),
    ]:
        assert_refused(run("lpips", "--lpips", lpips_ckpt, *paths), message)
    assert_refused(run("lpips", "--lpips", lpips_ckpt, images["a"]), "give at least two images", exit_code=2)
