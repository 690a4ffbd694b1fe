"""`jaxgan generate` end to end on a converted official fixture: seeds, z and ws inputs, truncation, PNG parity with
the official uint8 conversion, refusals, and the console script (conversions: tests/cli/test_convert.py)."""

import subprocess
import sys

import click
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from jaxgan.cli import main
from jaxgan.cli.common import parse_seeds
from tests.helpers import fixture_path, load_fixture, nchw_to_nhwc

ATOL = 1e-4


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result


@pytest.fixture(scope="module")
def pkl_checkpoint(tmp_path_factory):
    dst = tmp_path_factory.mktemp("ck") / "sg2ada"
    result = run("convert", fixture_path("sg2ada_res64.pkl"), dst)
    assert result.exit_code == 0, result.output
    assert "G: stylegan2-generator 64x64" in result.output and "D: stylegan2-discriminator" in result.output
    return dst


def official_uint8(images_nhwc):
    """generate.py's conversion of the float reference."""
    return np.clip(images_nhwc * np.float32(127.5) + np.float32(128), 0, 255).astype(np.uint8)


def assert_png_matches_official(png, reference_float):
    """Identical to the official uint8 conversion, except where the float reference lies within the float32
    tolerance (1e-4, i.e. 0.0128 grey levels) of a quantisation boundary: there truncation of an O(1e-6) rounding
    difference may go either way, and only by one level."""
    got = np.asarray(Image.open(png)).astype(int)
    want = official_uint8(reference_float).astype(int)
    scaled = reference_float.astype(np.float64) * 127.5 + 128
    near_boundary = np.abs(scaled - np.round(scaled)) <= ATOL * 127.5
    differ = got != want
    assert not np.any(differ & ~near_boundary), f"{png.name}: pixels differ away from a rounding boundary"
    assert np.all(np.abs(got - want)[differ] == 1)
    return int(differ.sum())


def test_parse_seeds():
    assert parse_seeds("0-3,12") == [0, 1, 2, 3, 12]
    for bad in ("", "a", "-1", "3-x"):
        with pytest.raises(click.BadParameter):
            parse_seeds(bad)


def test_convert_then_generate_seeds_writes_pngs_grid_and_raw(pkl_checkpoint, tmp_path):
    out = tmp_path / "out"
    result = run("generate", pkl_checkpoint, "--seeds", "0-3", "--outdir", out, "--grid", "--raw", out / "raw.npy")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["grid.png", "raw.npy", "seed0000.png", "seed0001.png",
                                                     "seed0002.png", "seed0003.png"]
    raw = np.load(out / "raw.npy")
    assert raw.shape == (4, 64, 64, 3) and raw.dtype == np.float32
    for seed in range(4):  # each PNG is exactly the official conversion of the raw output
        np.testing.assert_array_equal(np.asarray(Image.open(out / f"seed{seed:04d}.png")), official_uint8(raw[seed]))
    assert Image.open(out / "grid.png").size == (128, 128)


def test_generate_from_ws_matches_official_images_and_pngs(pkl_checkpoint, tmp_path):
    data, _ = load_fixture("sg2ada_G_res64.npz")
    np.save(tmp_path / "ws.npy", data["out/ws_psi1"])
    out = tmp_path / "out"
    result = run("generate", pkl_checkpoint, "--ws", tmp_path / "ws.npy", "--outdir", out, "--raw", tmp_path / "r.npy")
    assert result.exit_code == 0, result.output
    reference = nchw_to_nhwc(data["out/img_const"])
    assert np.abs(np.load(tmp_path / "r.npy") - reference).max() <= ATOL
    boundary_pixels = sum(assert_png_matches_official(out / f"img{i:04d}.png", reference[i]) for i in range(4))
    assert boundary_pixels <= 10  # measured: 3 of 49152 values


def test_generate_from_z_with_truncation_matches_official(pkl_checkpoint, tmp_path):
    data, _ = load_fixture("sg2ada_G_res64.npz")
    np.save(tmp_path / "z.npy", data["in/z"])
    np.save(tmp_path / "ws.npy", data["out/ws_psi05_cut2"])
    args = ["--outdir", tmp_path / "a", "--trunc", "0.5", "--trunc-cutoff", "2", "--raw", tmp_path / "a.npy"]
    assert run("generate", pkl_checkpoint, "--z", tmp_path / "z.npy", *args).exit_code == 0
    assert run("generate", pkl_checkpoint, "--ws", tmp_path / "ws.npy", "--outdir", tmp_path / "b",
               "--raw", tmp_path / "b.npy").exit_code == 0
    assert np.abs(np.load(tmp_path / "a.npy") - np.load(tmp_path / "b.npy")).max() <= ATOL


@pytest.mark.parametrize("args,message", [
    ([], "exactly one of --seeds, --z, --ws"),
    (["--seeds", "x"], "is not a seed list"),
    (["--seeds", "0", "--class", "1"], "unconditional"),
    (["--seeds", "0", "--trunc-cutoff", "99"], "exceeds num_ws"),
    (["--seeds", "0", "--translate", "0.1,0"], "has no input transform"),  # StyleGAN3's option
])
def test_generate_rejects_bad_input_with_one_line(pkl_checkpoint, tmp_path, args, message):
    result = CliRunner().invoke(main, ["generate", str(pkl_checkpoint), "--outdir", str(tmp_path / "o"), *args])
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_generate_on_a_non_checkpoint_directory(tmp_path):
    result = CliRunner().invoke(main, ["generate", str(tmp_path), "--seeds", "0", "--outdir", str(tmp_path / "o")])
    assert result.exit_code == 1 and "not a jaxgan checkpoint" in result.output


def test_console_script_help():
    result = subprocess.run([sys.executable, "-m", "jaxgan", "generate", "--help"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and "--seeds" in result.stdout and "--noise-mode" in result.stdout


# ----------------------------------------------------------------------------------------------------------------
# Options reach the images: --noise-mode, --noise-seed, --fused-modconv, --class, and grid.png's content


def test_noise_mode_none_matches_the_official_img_none(pkl_checkpoint, tmp_path):
    """out/img_none = G.synthesis(ws_psi1, noise_mode='none'): no noise at all, unlike the stored const noise
    (the two fixture images differ by up to 6)."""
    data, _ = load_fixture("sg2ada_G_res64.npz")
    np.save(tmp_path / "ws.npy", data["out/ws_psi1"])
    result = run("generate", pkl_checkpoint, "--ws", tmp_path / "ws.npy", "--noise-mode", "none",
                 "--outdir", tmp_path / "out", "--raw", tmp_path / "r.npy")
    assert result.exit_code == 0, result.output
    assert np.abs(np.load(tmp_path / "r.npy") - nchw_to_nhwc(data["out/img_none"])).max() <= ATOL


def test_fused_modconv_gives_the_official_images_as_the_default_does(pkl_checkpoint, tmp_path):
    """fused_modconv changes the order of operations only: the official fused (img_const) and unfused
    (img_const_unfused) outputs agree to 1e-5, and so must --fused-modconv and the default."""
    data, _ = load_fixture("sg2ada_G_res64.npz")
    np.save(tmp_path / "ws.npy", data["out/ws_psi1"])
    for name, extra in (("fused", ["--fused-modconv"]), ("default", [])):
        result = run("generate", pkl_checkpoint, "--ws", tmp_path / "ws.npy", *extra, "--outdir", tmp_path / name,
                     "--raw", tmp_path / f"{name}.npy")
        assert result.exit_code == 0, result.output
    fused, default = np.load(tmp_path / "fused.npy"), np.load(tmp_path / "default.npy")
    assert np.abs(fused - nchw_to_nhwc(data["out/img_const"])).max() <= ATOL
    assert np.abs(fused - nchw_to_nhwc(data["out/img_const_unfused"])).max() <= ATOL
    assert np.abs(fused - default).max() <= 1e-5


def test_noise_seed_draws_the_random_noise(pkl_checkpoint, tmp_path):
    """--noise-mode random: the same --noise-seed gives the same images, another seed other images, and neither
    is the const-noise image of the same seeds."""
    raws = {}
    for name, args in (("a", ["--noise-seed", "3"]), ("b", ["--noise-seed", "3"]), ("c", ["--noise-seed", "4"])):
        result = run("generate", pkl_checkpoint, "--seeds", "0-3", "--noise-mode", "random", *args,
                     "--outdir", tmp_path / name, "--raw", tmp_path / f"{name}.npy")
        assert result.exit_code == 0, result.output
        raws[name] = np.load(tmp_path / f"{name}.npy")
    result = run("generate", pkl_checkpoint, "--seeds", "0-3", "--outdir", tmp_path / "const",
                 "--raw", tmp_path / "const.npy")
    assert result.exit_code == 0, result.output
    const = np.load(tmp_path / "const.npy")
    np.testing.assert_array_equal(raws["a"], raws["b"])
    for i in range(4):  # every image changes with the noise seed, and random noise is not the stored noise
        assert np.abs(raws["a"][i] - raws["c"][i]).max() > 0.05
        assert np.abs(raws["a"][i] - const[i]).max() > 0.05


def test_grid_png_is_the_pngs_tiled_row_by_row(pkl_checkpoint, tmp_path):
    """5 images: 3 columns (ceil(sqrt(5))), 2 rows, filled row by row, the sixth cell black. --batch-size 1 runs
    them in chunks of 4 (one per device), the shape the other tests compile."""
    out = tmp_path / "out"
    result = run("generate", pkl_checkpoint, "--seeds", "0-4", "--grid", "--batch-size", "1", "--outdir", out)
    assert result.exit_code == 0, result.output
    tiles = [np.asarray(Image.open(out / f"seed{s:04d}.png")) for s in range(5)]
    expected = np.zeros((2 * 64, 3 * 64, 3), np.uint8)
    for i, tile in enumerate(tiles):
        row, col = i // 3, i % 3
        expected[row * 64:(row + 1) * 64, col * 64:(col + 1) * 64] = tile
    np.testing.assert_array_equal(np.asarray(Image.open(out / "grid.png")), expected)
    assert not np.array_equal(tiles[1], tiles[3])  # the tiles are distinguishable, so the order is checked


@pytest.fixture(scope="module")
def conditional_checkpoint(tmp_path_factory):
    """The 32 px conditional fixture generator (c_dim 5) saved as a jaxgan checkpoint."""
    from jaxgan.checkpoint import save_checkpoint
    from tests.helpers import generator_fixture
    G = generator_fixture("sg2ada_G_res32_cond.npz")[0]
    return save_checkpoint(tmp_path_factory.mktemp("cond") / "cond", {"G": G})


@pytest.mark.parametrize("class_idx", [0, 3])
def test_class_labels_the_conditional_generator(conditional_checkpoint, tmp_path, class_idx):
    """Fixture row i has z_i and the one-hot label of class i; --class K labels every z with class K, so row K of
    the output is the official out/img_const row K and the other rows (other z, class K) are not theirs."""
    data, _ = load_fixture("sg2ada_G_res32_cond.npz")
    assert np.array_equal(data["in/c"], np.eye(5, dtype=np.float32)[:4])
    np.save(tmp_path / "z.npy", data["in/z"])
    result = run("generate", conditional_checkpoint, "--z", tmp_path / "z.npy", "--class", class_idx,
                 "--outdir", tmp_path / "out", "--raw", tmp_path / "r.npy")
    assert result.exit_code == 0, result.output
    raw, reference = np.load(tmp_path / "r.npy"), nchw_to_nhwc(data["out/img_const"])
    assert np.abs(raw[class_idx] - reference[class_idx]).max() <= ATOL
    for i in set(range(4)) - {class_idx}:
        assert np.abs(raw[i] - reference[i]).max() > 0.05
