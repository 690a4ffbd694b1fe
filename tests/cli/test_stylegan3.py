"""StyleGAN3 through the command line, from a fresh conversion: `jaxgan convert` of the official snapshot pickle
(sg3_t_res64.pkl), `jaxgan generate` with gen_images.py's --translate / --rotate against the official images, and
`jaxgan drag` reproducing DragGAN's StyleGAN3 trace (draggan_sg3_trace_lr5e-2.npz) from a checkpoint whose stored
input transform is not the identity (the renderer, and so the CLI, replaces it with the identity on load)."""

import numpy as np
import pytest
from click.testing import CliRunner

from jaxgan.cli import main
from tests.helpers import convert_once, fixture_path, load_fixture, nchw_to_nhwc

SG3_TRACE = "draggan_sg3_trace_lr5e-2.npz"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def sg3_checkpoint(tmp_path_factory):
    return convert_once("sg3-t-pkl", tmp_path_factory, fixture_path("sg3_t_res64.pkl"))


def load_generator_of(ckpt):
    from jaxgan.cli.common import load_generator
    return load_generator(ckpt)


def test_convert_reads_the_snapshot_generator_and_discriminator(sg3_checkpoint):
    from jaxgan.checkpoint import load_model, read_sidecar
    from jaxgan.nn.leaves import selected_leaves, selected_names
    ckpt, result = sg3_checkpoint
    assert "G: stylegan3-generator 64x64, c_dim 0, config T (3x3 convs, 14 layers)" in result.output
    assert "D: stylegan2-discriminator" in result.output
    sidecar = read_sidecar(ckpt)
    assert sidecar["source"]["converted"] == {"G": "G_ema", "D": "D"}
    assert sidecar["source"]["repository"] == "stylegan3"
    data, _ = load_fixture("sg3_t_res64.npz")  # its params are the pickle's G_ema
    G = load_model(ckpt, name="G")
    every = (lambda name: True)
    for tree in (G.params, G.buffers):
        for name, leaf in zip(selected_names(tree, every), selected_leaves(tree, every)):
            np.testing.assert_array_equal(np.asarray(leaf), data[f"param/{name}"], err_msg=name)
    assert load_model(ckpt, "stylegan2-discriminator", name="D").config.conv_clamp == 256


def test_generate_with_the_fixture_transform_gives_the_official_images(sg3_checkpoint, tmp_path):
    """The fixture's stored transform is inv(make_transform((0.13, -0.07), 11 deg)): generate with those options
    sets that very buffer, as gen_images.py; without them, the identity (another image)."""
    ckpt, _ = sg3_checkpoint
    data, meta = load_fixture("sg3_t_res64.npz")
    assert meta["input_transform"]["user_transform"].startswith("make_transform(translate=[0.13, -0.07], angle=11.0")
    np.save(tmp_path / "ws.npy", data["out/ws_psi1"])
    moved = run("generate", ckpt, "--ws", tmp_path / "ws.npy", "--translate", "0.13,-0.07", "--rotate", 11,
                "--outdir", tmp_path / "a", "--raw", tmp_path / "a.npy")
    assert moved.exit_code == 0, moved.output
    assert np.abs(np.load(tmp_path / "a.npy") - nchw_to_nhwc(data["out/img"])).max() <= 1e-4
    plain = run("generate", ckpt, "--ws", tmp_path / "ws.npy", "--outdir", tmp_path / "b", "--raw", tmp_path / "b.npy")
    assert plain.exit_code == 0, plain.output
    assert np.abs(np.load(tmp_path / "b.npy") - nchw_to_nhwc(data["out/img"])).max() > 0.05
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [f"img{i:04d}.png" for i in range(4)]


@pytest.mark.parametrize("args,message", [
    (["--translate", "1"], "is not two numbers"),
    (["--translate", "0,1", "--fused-modconv"], "--fused-modconv is for StyleGAN2"),
])
def test_generate_refuses_bad_transform_options(sg3_checkpoint, tmp_path, args, message):
    ckpt, _ = sg3_checkpoint
    result = run("generate", ckpt, "--seeds", 0, "--outdir", tmp_path / "o", *args)
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "o").exists()


def test_drag_reproduces_the_official_stylegan3_trace(tmp_path):
    from checkpoints_convert.stylegan2_pkl import convert_state_dict
    from jaxgan.checkpoint import save_checkpoint
    data, meta = load_fixture(SG3_TRACE)
    tensors = {k[len("param/"):]: data[k] for k in data.files if k.startswith("param/")}
    assert not np.allclose(tensors["synthesis.input.transform"], np.eye(3))  # the pickle's, replaced on load
    G = convert_state_dict("Generator", meta["init_kwargs"], tensors)
    ckpt = save_checkpoint(tmp_path / "ck", {"G": G}, {"source": SG3_TRACE})
    from PIL import Image
    Image.fromarray(np.where(data["mask"] == 0, 255, 0).astype(np.uint8), "L").save(tmp_path / "mask.png")
    points = ";".join(f"{r},{c}" for r, c in data["init_points"])
    targets = ";".join(f"{r},{c}" for r, c in data["targets"])
    result = run("drag", ckpt, "--seed", 0, "--trunc", 0.7, "--points", points, "--targets", targets, "--mask",
                 tmp_path / "mask.png", "--lr", 0.05, "--steps", 20, "--r1", 3, "--r2", 12, "--feature-idx", 5,
                 "--trace", tmp_path / "T.npz", "--outdir", tmp_path / "drag")
    assert result.exit_code == 0, result.output
    trace = np.load(tmp_path / "T.npz")
    np.testing.assert_allclose(trace["ws"][0], data["w0"][0], atol=1e-5, rtol=0)  # w0 as the renderer builds it
    np.testing.assert_array_equal(trace["points"][:20], data["points"])  # measured: identical at every step
    np.testing.assert_allclose(trace["losses"][:20], data["losses"], atol=2e-4)  # measured <= 3.2e-5
    assert trace["ws"].shape == (21, 16, 64)
    assert {p.name for p in (tmp_path / "drag").iterdir()} >= {"drag.png", "drag_ws.npy", "drag.json"}


@pytest.mark.parametrize("space", [pytest.param("w", marks=pytest.mark.slow), "w+"])  # CI: w+ (the editor's)
def test_invert_a_stylegan3_image_in_both_spaces(sg3_checkpoint, tmp_path_factory, space):
    """The projector (w) and EditGAN's embedding (w+) are generic: on a StyleGAN3 image (no noise maps to
    optimise) they run, write the usual files, and bring the reconstruction closer than where they start."""
    import json

    from PIL import Image

    from jaxgan.cli.common import LPIPS_ENV
    from tests.helpers import lpips_checkpoint
    ckpt, _ = sg3_checkpoint
    root = tmp_path_factory.mktemp(f"sg3_invert_{space}")
    assert run("generate", ckpt, "--seeds", 5, "--trunc", 0.7, "--outdir", root).exit_code == 0
    result = CliRunner().invoke(main, [str(a) for a in (
        "invert", ckpt, root / "seed0005.png", "--lpips", lpips_checkpoint(tmp_path_factory)[0], "--space", space,
        "--steps", 4, "--outdir", root / "out")], env={LPIPS_ENV: None})
    assert result.exit_code == 0, result.output
    ws = np.load(root / "out" / "seed0005_ws.npy")
    assert ws.shape == (16, 64) and np.all(np.isfinite(ws))
    assert {p.name for p in (root / "out").iterdir()} == {"invert.json"} | {
        f"seed0005_{suffix}" for suffix in ("ws.npy", "recon.png", "target.png", "compare.png", "loss.png")}
    (entry,) = json.loads((root / "out" / "invert.json").read_text())["images"]
    # Where both start: the image of the mean w (the projector's start; the embedding's is near it), in LPIPS.
    import jax

    from jaxgan.checkpoint import load_model
    from jaxgan.edit.invert import w_statistics
    from jaxgan.models import generators, lpips
    G = load_generator_of(ckpt)
    w_avg = np.broadcast_to(w_statistics(G, samples=1000)[0], (1, 16, 64))
    start = np.clip(np.asarray(jax.jit(generators.synthesis)(G, w_avg)), -1, 1)
    target = np.asarray(Image.open(root / "seed0005.png"), np.float32)[None] / 127.5 - 1
    L = load_model(lpips_checkpoint(tmp_path_factory)[0], "lpips")
    start_lpips = float(jax.jit(lpips.lpips_distance)(L, start, target)[0])
    assert entry["lpips"] < 0.8 * start_lpips, (entry["lpips"], start_lpips)
