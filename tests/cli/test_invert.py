"""`jaxgan invert` end to end on the 64 px stylegan2-ada fixture: targets rendered by the generator itself at known
latents, inverted in both spaces with a few steps; the written files, their shapes, the JSON summary, the
reconstruction against what the saved latent (and noise) renders, notes and refusals that write nothing.

One run per space (module-scoped: each compiles its own inversion step, the bulk of this file's time).
"""

import functools
import json

import jax
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from jaxgan.cli import main
from jaxgan.cli.common import LPIPS_ENV
from jaxgan.edit import invert_outputs
from tests.helpers import FILES_HINT, assert_refused, generator_checkpoint, lpips_checkpoint

STEPS = 4
NAMES = ["face", "face-2"]  # dir1/face.png and dir2/face.png
NOISE_KEYS = {f"synthesis.b{res}.conv{k}.noise_const" for res in (8, 16, 32, 64) for k in (0, 1)} | {
    "synthesis.b4.conv1.noise_const"}


@jax.jit
def render(G, ws):
    """The generator's image of ws [1, num_ws, w_dim] with its (stored or replaced) noise maps, compiled once."""
    from jaxgan.models import stylegan2
    return stylegan2.synthesis(G, ws, noise_mode="const")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], env={LPIPS_ENV: None})


@pytest.fixture(scope="module")
def generator(tmp_path_factory):
    from jaxgan.checkpoint import load_checkpoint
    return load_checkpoint(generator_checkpoint(tmp_path_factory), names=("G",))[0]["G"]


@pytest.fixture(scope="module")
def setup(generator, tmp_path_factory):
    """Checkpoints and two targets: the generator's images of the z of seeds 1 and 2 (as `jaxgan generate --seeds`),
    the second stored as RGBA with an opaque alpha channel, under the same file name in two folders."""
    from jaxgan import sampling
    from jaxgan.models import stylegan2
    ckpt = generator_checkpoint(tmp_path_factory)
    lpips = lpips_checkpoint(tmp_path_factory)[0]
    root = tmp_path_factory.mktemp("invert")
    ws = np.asarray(stylegan2.mapping(generator, sampling.z_from_seeds([1, 2], generator.config.z_dim)))
    rgb = [sampling.to_uint8(np.asarray(render(generator, w[None])))[0] for w in ws]
    targets = [root / "dir1" / "face.png", root / "dir2" / "face.png"]
    for path in targets:
        path.parent.mkdir()
    Image.fromarray(rgb[0]).save(targets[0])
    Image.fromarray(np.concatenate([rgb[1], np.full((64, 64, 1), 255, np.uint8)], axis=-1), "RGBA").save(targets[1])
    return {"ckpt": ckpt, "lpips": lpips, "root": root, "targets": targets, "pixels": rgb}


def invert_run(setup, tmp_path_factory, space):
    out = tmp_path_factory.mktemp(f"inverted_{space}") / "out"
    result = run("invert", setup["ckpt"], *setup["targets"], "--lpips", setup["lpips"], "--space", space,
                 "--steps", STEPS, "--seed", 3, "--outdir", out)
    assert result.exit_code == 0, result.output
    return {"out": out, "result": result, "space": space, "doc": json.loads((out / "invert.json").read_text())}


@pytest.fixture(scope="module")
def run_w(setup, tmp_path_factory):
    return invert_run(setup, tmp_path_factory, "w")


@pytest.fixture(scope="module")
def run_wplus(setup, tmp_path_factory):
    return invert_run(setup, tmp_path_factory, "w+")


@pytest.fixture(scope="module", params=["w", "w+"])
def both(request):
    return request.getfixturevalue("run_w" if request.param == "w" else "run_wplus")


def test_outputs_exist_with_their_shapes(setup, both):
    out, space = both["out"], both["space"]
    roles = ["latent", "image", "target", "comparison", "loss_plot"] + (["noise"] if space == "w" else [])
    expected = {"invert.json"} | {name + invert_outputs.SUFFIXES[role] for name in NAMES for role in roles}
    assert {p.name for p in out.iterdir()} == expected
    for name, pixels in zip(NAMES, setup["pixels"]):
        ws = np.load(out / f"{name}_ws.npy")
        assert ws.shape == (10, 64) and ws.dtype == np.float32 and np.all(np.isfinite(ws))
        if space == "w":  # the projector's one w, repeated for every layer
            np.testing.assert_array_equal(ws, np.broadcast_to(ws[0], ws.shape))
        else:
            assert not np.array_equal(ws[0], ws[-1])
        recon = np.asarray(Image.open(out / f"{name}_recon.png"))
        target = np.asarray(Image.open(out / f"{name}_target.png"))
        assert recon.shape == target.shape == (64, 64, 3) and recon.dtype == np.uint8
        np.testing.assert_array_equal(target, pixels)  # 64 px already: the crop and resize change nothing
        np.testing.assert_array_equal(np.asarray(Image.open(out / f"{name}_compare.png")),
                                      np.concatenate([target, recon], axis=1))
        plot = Image.open(out / f"{name}_loss.png")
        assert plot.mode == "RGB" and plot.size[0] == invert_outputs.PLOT_WIDTH
        if space == "w":
            noise = np.load(out / f"{name}_noise.npz")
            assert set(noise.files) == NOISE_KEYS
            for key in noise.files:
                res = int(key.split(".")[1][1:])
                assert noise[key].shape == (res, res) and noise[key].dtype == np.float32
                assert abs(float(noise[key].mean())) < 1e-4  # renormalised after every step


def test_summary_json(setup, both):
    doc, space = both["doc"], both["space"]
    assert doc["checkpoint"] == str(setup["ckpt"]) and doc["lpips_checkpoint"] == str(setup["lpips"])
    settings = doc["settings"]
    assert (settings["space"], settings["steps"], settings["seed"]) == (space, STEPS, 3)
    assert settings["method"] == ("projector" if space == "w" else "w+ embedding")
    assert settings["updates"] == (STEPS if space == "w" else STEPS - 1)
    assert settings["config"]["steps"] == STEPS
    assert doc["loss_names"] == (["lpips", "noise_reg", "loss"] if space == "w" else ["lpips", "mse", "loss"])
    assert [entry["name"] for entry in doc["images"]] == NAMES
    for entry, target in zip(doc["images"], setup["targets"]):
        assert entry["source"] == str(target)
        assert 0 < entry["lpips"] < 1 and entry["mse"] > 0
        assert entry["psnr"] == pytest.approx(-10 * np.log10(entry["mse"]), abs=1e-3)
        assert set(entry["final_losses"]) == set(doc["loss_names"])
        assert entry["outputs"] == invert_outputs.output_names(entry["name"], with_noise=space == "w")
        for file_name in entry["outputs"].values():
            assert (both["out"] / file_name).is_file()
    # stdout: one line per image, then where everything went; stderr: the note on the RGBA target
    stdout = both["result"].stdout.splitlines()
    assert [line.split(":")[0] for line in stdout[:2]] == NAMES and "PSNR" in stdout[0]
    assert stdout[-1] == f"wrote 2 inversions and invert.json to {both['out']}"
    assert f"note: {setup['targets'][1]}: the alpha channel is dropped" in both["result"].stderr


def test_reconstruction_is_what_the_saved_latent_renders(generator, run_w, run_wplus):
    """NAME_recon.png is the saved latent's image, with the saved noise maps for the projector (the recipe in the
    README) and the generator's stored noise for the W+ embedding (as `jaxgan generate --ws` renders it)."""
    from jaxgan import sampling
    from jaxgan.edit import invert
    stored = [np.asarray(n) for n in invert.noise_buffers(generator)]
    for inverted in (run_w, run_wplus):
        out = inverted["out"]
        for name in NAMES:
            G = generator
            if inverted["space"] == "w":
                noise = np.load(out / f"{name}_noise.npz")
                maps = [noise[k] for k in noise.files]
                assert not any(np.array_equal(a, b) for a, b in zip(maps, stored))  # optimised, not the stored maps
                G = invert.with_noise(generator, maps)
            image = sampling.to_uint8(np.asarray(render(G, np.load(out / f"{name}_ws.npy")[None])))[0]
            recon = np.asarray(Image.open(out / f"{name}_recon.png")).astype(int)
            assert np.abs(recon - image).max() <= 1


def test_stems_are_made_unique():
    assert invert_outputs.unique_names(["a/x.png", "b/x.png", "x-2.png", "X.jpg", "y.png"]) == [
        "x", "x-3", "x-2", "X-4", "y"]


def test_loss_plot_handles_empty_and_non_finite_series():
    for series in ({"loss": np.zeros(0), "lpips": np.zeros(0)}, {"loss": np.array([1.0, np.nan, 2.0])},
                   {"loss": np.array([3.0])}, {"loss": np.array([1e4, 1e3, 2.0]), "lpips": np.array([0.5, 0.4, 0.3])}):
        plot = invert_outputs.loss_plot(series, "title")
        assert plot.dtype == np.uint8 and plot.shape[1:] == (invert_outputs.PLOT_WIDTH, 3)
        assert (plot < 255).any()


# ----------------------------------------------------------------------------------------------------------------
# Refusals: one line, non-zero exit, nothing written


@pytest.fixture(scope="module")
def four_channel_checkpoint(tmp_path_factory):
    """A (zero-weight) generator of 4-channel images."""
    import dataclasses
    from jaxgan.checkpoint import save_checkpoint
    from jaxgan.models import stylegan2
    cfg = stylegan2.GeneratorConfig(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=4,
                                    channels=(8, 8, 8), mapping_layers=1)
    G = stylegan2.abstract_model(cfg)
    zeros = functools.partial(jax.tree_util.tree_map, lambda s: np.zeros(s.shape, s.dtype))
    G = dataclasses.replace(G, params=zeros(G.params), buffers=zeros(G.buffers))
    return save_checkpoint(tmp_path_factory.mktemp("rgba_G") / "ck", {"G": G})


def test_bad_inputs_are_refused(setup, four_channel_checkpoint, tmp_path):
    ckpt, lpips, target = setup["ckpt"], setup["lpips"], setup["targets"][0]
    text = tmp_path / "text.png"
    text.write_text("not an image")
    out = tmp_path / "out"
    for args, message in [
        ((ckpt, target, text, "--lpips", lpips), "text.png: not an image Pillow can read"),
        ((ckpt, tmp_path / "missing.png", "--lpips", lpips), "missing.png: no such file"),
        ((ckpt, target), "no LPIPS checkpoint given"),
        ((ckpt, target, "--lpips", ckpt), "holds no LPIPS model (it holds D, G)"),
        ((ckpt, target, "--lpips", tmp_path), "is not a jaxgan LPIPS checkpoint"),
        ((lpips, target, "--lpips", lpips), "has no model 'G'"),
        ((four_channel_checkpoint, target, "--lpips", lpips), "generators with 4 channels are not supported"),
    ]:
        result = run("invert", *args, "--steps", 1, "--outdir", out)
        assert_refused(result, message, out)
        if "LPIPS" in message:
            assert FILES_HINT in result.output
    assert_refused(run("invert", ckpt, "--lpips", lpips, "--outdir", out), "Missing argument 'IMAGES...'", out,
                   exit_code=2)
    assert_refused(run("invert", ckpt, target, "--lpips", lpips, "--steps", 0, "--outdir", out), "--steps", out,
                   exit_code=2)


def test_invert_help_lists_the_interface():
    result = CliRunner().invoke(main, ["invert", "--help"])
    assert result.exit_code == 0
    for text in ("--lpips", "--space", "--steps", "--seed", "--outdir", "--batch-size", "projector.py", "EditGAN",
                 "1000 for w", "500 for w+", "JAXGAN_LPIPS"):
        assert text in result.output
