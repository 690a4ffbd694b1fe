"""`jaxgan drag` end to end on the official DragGAN trace (lr 5e-2): parity of the tracked points, the outputs, job
files against single sessions, chaining through the written latent, and refusals that write nothing."""

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from jaxgan.cli import main
from jaxgan.edit import drag_outputs
from jaxgan.latents import read_latent
from tests.helpers import assert_refused, fixture_path

FIXTURE = "draggan_trace_lr5e-2.npz"
POINTS, TARGETS = "128,99;58,179", "128,130;69,158"  # the fixture's init_points and targets, (row, col)


def run(*args):
    return CliRunner().invoke(main, ["drag", *map(str, args)])


def save_mask_png(path, renderer_mask):
    """The PNG a user paints for the renderer's mask (1 = fixed): white where it may move."""
    Image.fromarray(np.where(renderer_mask == 0, 255, 0).astype(np.uint8), "L").save(path)
    return path


@pytest.fixture(scope="session")
def official(tmp_path_factory):
    """The fixture's generator as a jaxgan checkpoint, its mask as a PNG, and the fixture's arrays."""
    from checkpoints_convert.stylegan2_pkl import convert_state_dict
    from jaxgan.checkpoint import save_checkpoint
    data = np.load(fixture_path(FIXTURE))
    meta = json.loads(str(data["meta"]))
    G = convert_state_dict("Generator", meta["init_kwargs"],
                           {k[6:]: data[k] for k in data.files if k.startswith("param/")})
    root = tmp_path_factory.mktemp("drag")
    ckpt = save_checkpoint(root / "ck", {"G": G}, {"source": FIXTURE})
    assert data["init_points"].tolist() == [[128, 99], [58, 179]] and data["targets"].tolist() == [[128, 130],
                                                                                                   [69, 158]]
    return {"ckpt": ckpt, "mask": save_mask_png(root / "mask.png", data["mask"]), "data": data, "root": root}


@pytest.fixture(scope="module")
def official_run(official, tmp_path_factory):
    """The acceptance command: the fixture's drag through the CLI, 20 steps at lr 5e-2."""
    out = tmp_path_factory.mktemp("official_run")
    result = run(official["ckpt"], "--seed", 0, "--trunc", 0.7, "--points", POINTS, "--targets", TARGETS,
                 "--mask", official["mask"], "--lr", 0.05, "--steps", 20, "--trace", out / "T.npz",
                 "--outdir", out / "drag")
    assert result.exit_code == 0, result.output
    return {"out": out / "drag", "trace": dict(np.load(out / "T.npz")), "output": result.output}


def test_cli_reproduces_the_official_lr5e2_trace(official, official_run):
    data, trace = official["data"], official_run["trace"]
    np.testing.assert_allclose(trace["ws"][0], data["ws"][0, 0], atol=1e-5, rtol=0)  # w0 as the renderer builds it
    np.testing.assert_array_equal(trace["points"][:10], data["points"][:10])
    assert np.abs(trace["points"][-1] - data["points"][-1]).max() <= 2
    np.testing.assert_allclose(trace["losses"][:3], data["losses"][:3], rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(trace["targets"], data["targets"])
    # 20 updates, then the closing observation of the final latent (no update)
    assert trace["points"].shape == (21, 2, 2) and trace["losses"].shape == (21, 4)
    assert trace["ws"].shape == (21, 14, 512) and trace["ws"].dtype == np.float32
    assert trace["updated"].tolist() == [True] * 20 + [False] and not trace["stop"].any()


def test_outputs_are_well_formed(official, official_run):
    out, trace = official_run["out"], official_run["trace"]
    assert sorted(p.name for p in out.iterdir()) == ["drag.gif", "drag.json", "drag.png", "drag_ws.npy"]
    png = Image.open(out / "drag.png")
    assert png.size == (256, 256) and png.mode == "RGB"
    gif = Image.open(out / "drag.gif")
    assert gif.size == (256, 256) and gif.n_frames == len(trace["points"]) == 21
    ws = np.load(out / "drag_ws.npy")
    assert ws.shape == (14, 512) and ws.dtype == np.float32
    np.testing.assert_array_equal(ws, trace["ws"][-1])  # the latent of the closing observation
    summary = json.loads((out / "drag.json").read_text())
    assert summary["final_points"] == trace["points"][-1].tolist()
    assert summary["points"] == [[128, 99], [58, 179]] and summary["targets"] == [[128, 130], [69, 158]]
    distances = np.linalg.norm(trace["points"][-1] - trace["targets"], axis=-1)
    np.testing.assert_allclose(summary["distances"], distances, atol=1e-4)
    assert summary["stop_reason"] == "step limit" and summary["steps"] == 20 and summary["observations"] == 21
    assert summary["start"] == {"seed": 0, "trunc": 0.7}
    assert summary["checkpoint"] == str(official["ckpt"])
    settings = summary["settings"]
    assert settings["mask_used"] and settings["lr"] == 0.05 and settings["max_steps"] == 20
    assert (settings["space"], settings["r1"], settings["r2"], settings["feature_idx"]) == ("w+", 3, 12, 5)
    assert summary["outputs"]["latent"] == "drag_ws.npy" and summary["outputs"]["trace"].endswith("T.npz")
    assert "step limit after 20 steps" in official_run["output"]


def test_drag_continues_from_the_written_latent(official, official_run, tmp_path):
    """--ws takes drag_ws.npy back: the next session starts exactly where the last one ended. An all-white mask
    (everything may move) is ignored, with a note, as the official renderer ignores it."""
    white = tmp_path / "white.png"
    Image.new("L", (256, 256), 255).save(white)
    final = official_run["trace"]["points"][-1]
    points = ";".join(f"{y},{x}" for y, x in final)
    result = run(official["ckpt"], "--ws", official_run["out"] / "drag_ws.npy", "--points", points,
                 "--targets", TARGETS, "--mask", white, "--steps", 0, "--trace", tmp_path / "t.npz",
                 "--outdir", tmp_path / "next")
    assert result.exit_code == 0, result.output
    assert "the mask is white everywhere" in result.output
    trace = np.load(tmp_path / "t.npz")
    np.testing.assert_array_equal(trace["ws"][0], np.load(official_run["out"] / "drag_ws.npy"))
    np.testing.assert_array_equal(trace["points"][0], final)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "next" / "drag.png")),
                                  np.asarray(Image.open(official_run["out"] / "drag.png")))
    summary = json.loads((tmp_path / "next" / "drag.json").read_text())
    assert summary["steps"] == 0 and summary["observations"] == 1 and not summary["settings"]["mask_used"]
    assert summary["start"] == {"ws": str(official_run["out"] / "drag_ws.npy")}


@pytest.mark.slow  # a longer check that CI skips (`pytest -m slow` runs it)
def test_jobs_match_single_sessions(official, official_run, tmp_path):
    """Three jobs with different starts, point counts, masks, spaces and step budgets run as one batched program,
    each giving the trace of the same session run alone."""
    data = official["data"]
    top = np.ones((256, 256), np.float32)
    top[:128] = 0  # the top half may move
    save_mask_png(tmp_path / "top.png", top)
    np.save(tmp_path / "w0.npy", data["w0"])  # (1, num_ws, w_dim)
    jobs = [
        {"name": "a", "seed": 0, "points": [[128, 99], [58, 179]], "targets": [[128, 130], [69, 158]],
         "mask": str(official["mask"]), "lr": 0.05, "steps": 2, "trace": True},
        {"name": "b", "seed": 1, "trunc": 0.5, "points": [[100, 100]], "targets": [[100, 120]], "space": "w",
         "lr": 0.05, "steps": 1, "trace": True},
        {"name": "c", "ws": "w0.npy", "points": [[60, 60], [200, 30]], "targets": [[50, 80], [200, 10]],
         "mask": "top.png", "lr": 0.02, "lambda_mask": 5, "steps": 3, "trace": True},
    ]
    (tmp_path / "jobs.json").write_text(json.dumps({"jobs": jobs}))
    result = run(official["ckpt"], "--jobs", tmp_path / "jobs.json", "--outdir", tmp_path / "many")
    assert result.exit_code == 0, result.output

    singles = {
        "a": ["--seed", 0, "--points", POINTS, "--targets", TARGETS, "--mask", official["mask"], "--lr", 0.05,
              "--steps", 2],
        "b": ["--seed", 1, "--trunc", 0.5, "--points", "100,100", "--targets", "100,120", "--space", "w",
              "--lr", 0.05, "--steps", 1],
        "c": ["--ws", tmp_path / "w0.npy", "--points", "60,60;200,30", "--targets", "50,80;200,10",
              "--mask", tmp_path / "top.png", "--lr", 0.02, "--lambda-mask", 5, "--steps", 3],
    }
    for name, args in singles.items():
        folder = tmp_path / "many" / name
        assert sorted(p.name for p in folder.iterdir()) == ["drag.gif", "drag.json", "drag.png", "drag_trace.npz",
                                                            "drag_ws.npy"]
        alone = run(official["ckpt"], *args, "--trace", tmp_path / f"{name}.npz", "--outdir", tmp_path / name)
        assert alone.exit_code == 0, alone.output
        batched, single = np.load(folder / "drag_trace.npz"), np.load(tmp_path / f"{name}.npz")
        assert batched["points"].shape == single["points"].shape
        np.testing.assert_array_equal(batched["points"], single["points"])
        np.testing.assert_array_equal(batched["targets"], single["targets"])
        np.testing.assert_allclose(batched["ws"], single["ws"], atol=1e-5, rtol=0)
        assert batched["losses"].shape == (len(batched["points"]), batched["points"].shape[1] + 2)
        summary = json.loads((folder / "drag.json").read_text())
        assert summary["name"] == name and summary["outputs"]["trace"] == "drag_trace.npz"
        assert summary["steps"] == jobs["abc".index(name)]["steps"]
    np.testing.assert_array_equal(np.load(tmp_path / "many" / "a" / "drag_trace.npz")["points"],
                                  official_run["trace"]["points"][:3])
    assert json.loads((tmp_path / "many" / "b" / "drag.json").read_text())["settings"]["space"] == "w"


# ----------------------------------------------------------------------------------------------------------------
# Refusals: one line, non-zero exit, nothing written


@pytest.fixture(scope="module")
def bad_files(official, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    Image.new("L", (64, 64), 255).save(folder / "small.png")
    np.save(folder / "bad_ws.npy", np.zeros((3, 5), np.float32))
    return folder


@pytest.mark.parametrize("args,message", [
    (["--seed", 0, "--points", "1;2", "--targets", "1,2"], "is not a list of row,col pixel pairs"),
    (["--seed", 0, "--points", POINTS, "--targets", "1,2"], "2 points but 1 targets"),
    (["--seed", 0, "--points", "300,10", "--targets", "1,2"], "[(300, 10)] lie outside the 256x256 image"),
    (["--seed", 0, "--points", "-1,10", "--targets", "1,2"], "lie outside the 256x256 image"),
    (["--seed", 0, "--points", POINTS, "--targets", TARGETS, "--mask", "{bad}/small.png"],
     "is 64x64 pixels, but the generator's images are 256x256"),
    (["--seed", 0, "--ws", "{bad}/bad_ws.npy", "--points", POINTS, "--targets", TARGETS],
     "exactly one of --seed and --ws"),
    (["--points", POINTS, "--targets", TARGETS], "exactly one of --seed and --ws"),
    (["--seed", 0], "--points and --targets are required"),
    (["--ws", "{bad}/bad_ws.npy", "--trunc", 0.5, "--points", POINTS, "--targets", TARGETS],
     "--trunc applies to --seed"),
    (["--ws", "{bad}/bad_ws.npy", "--points", POINTS, "--targets", TARGETS], "has shape (3, 5)"),
    (["--seed", 0, "--points", POINTS, "--targets", TARGETS, "--feature-idx", 9], "feature_idx 9 is out of range"),
    (["--seed", 0, "--points", POINTS, "--targets", TARGETS, "--lr", 0], "--lr"),
    (["--jobs", "{bad}/bad_ws.npy", "--points", POINTS], "cannot be combined with --jobs"),
])
def test_bad_arguments_are_refused(official, bad_files, tmp_path, args, message):
    args = [str(a).replace("{bad}", str(bad_files)) for a in args]
    result = run(official["ckpt"], *args, "--outdir", tmp_path / "out", "--trace", tmp_path / "t.npz")
    assert_refused(result, message, tmp_path / "out", tmp_path / "t.npz", exit_code=None)


GOOD_JOB = {"name": "a", "seed": 0, "points": [[128, 99]], "targets": [[128, 130]]}


@pytest.mark.parametrize("bad_job,message", [
    ({"name": "a", "seed": 1, "points": [[1, 2]], "targets": [[3, 4]]}, "job 'a': the name is used twice"),
    ({"name": "A", "seed": 1, "points": [[1, 2]], "targets": [[3, 4]]}, "job 'A': the name is used twice"),
    ({"name": "b", "seed": 1, "points": [[300, 5]], "targets": [[3, 4]]}, "job 'b': points [(300, 5)] lie outside"),
    ({"name": "b", "seed": 1, "points": [[1, 2], [5, 6]], "targets": [[3, 4]]}, "job 'b': 2 points but 1 targets"),
    ({"name": "b", "seed": 1, "points": [[1, 2]], "targets": [[3, 4]], "mask": "small.png"},
     "job 'b': the mask"),
    ({"name": "b", "seed": 1, "points": [[1, 2]], "targets": [[3, 4]], "mask": "none.png"},
     "job 'b': 'mask' file"),
    ({"name": "b", "seed": 1, "points": [[1, 2]], "targets": [[3, 4]], "stpes": 3}, "job 'b': unknown fields ['stpes']"),
    ({"name": "b", "points": [[1, 2]], "targets": [[3, 4]]}, "job 'b': give exactly one of 'seed' and 'ws'"),
    ({"name": "b", "seed": 1, "points": [[1.5, 2]], "targets": [[3, 4]]}, "job 'b': 'points' must hold integer"),
    ({"name": "b", "seed": 1, "points": [[1, 2]], "targets": [[3, 4]], "steps": -1}, "job 'b': 'steps' must be >= 0"),
    ({"name": "b", "ws": "bad_ws.npy", "points": [[1, 2]], "targets": [[3, 4]]}, "job 'b': the latent"),
    ({"name": "../b", "seed": 1, "points": [[1, 2]], "targets": [[3, 4]]}, "job #1: 'name' must be a folder name"),
    ("not a job", "job #1 is not a JSON object"),
])
def test_bad_jobs_are_refused_before_anything_runs(official, bad_files, tmp_path, bad_job, message):
    jobs = bad_files / f"jobs_{tmp_path.name}.json"
    jobs.write_text(json.dumps({"jobs": [GOOD_JOB, bad_job]}))
    result = run(official["ckpt"], "--jobs", jobs, "--outdir", tmp_path / "out")
    assert_refused(result, message, tmp_path / "out", exit_code=None)


def test_a_job_file_must_hold_a_list_of_jobs(official, tmp_path):
    (tmp_path / "jobs.json").write_text(json.dumps([GOOD_JOB]))
    result = run(official["ckpt"], "--jobs", tmp_path / "jobs.json", "--outdir", tmp_path / "out")
    assert_refused(result, 'expected an object {"jobs": [...]}', tmp_path / "out")


# ----------------------------------------------------------------------------------------------------------------
# Input helpers


def test_parse_points():
    assert drag_outputs.parse_points("128,99; 58, 179;") == [(128, 99), (58, 179)]
    for bad in ("", "1", "1,2,3", "a,b", "1.5,2", ";"):
        with pytest.raises(ValueError, match="row,col"):
            drag_outputs.parse_points(bad)


def test_mask_png_white_is_movable_alpha_ignored(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[:, 4:, :3] = 255          # right half white: may move
    rgba[2, 6, :3] = 100           # a dark pixel inside it: fixed
    rgba[..., 3] = 0               # fully transparent everywhere: alpha does not matter
    Image.fromarray(rgba, "RGBA").save(tmp_path / "m.png")
    mask = drag_outputs.load_mask(tmp_path / "m.png", 8)
    expected = np.ones((8, 8), np.float32)
    expected[:, 4:] = 0
    expected[2, 6] = 1
    assert mask.dtype == np.float32
    np.testing.assert_array_equal(mask, expected)
    with pytest.raises(ValueError, match="is 8x8 pixels, but the generator's images are 16x16"):
        drag_outputs.load_mask(tmp_path / "m.png", 16)
    # the server's mask.png: white where the renderer's mask is 0 (may move), read back to the same mask
    pixels = drag_outputs.mask_pixels(mask)
    assert pixels.dtype == np.uint8 and pixels[0, 0] == 0 and pixels[0, 5] == 255 and pixels[2, 6] == 0
    np.testing.assert_array_equal(drag_outputs.mask_of(Image.fromarray(pixels), 8), mask)


@pytest.mark.parametrize("shape", [(4, 6), (1, 4, 6), (6,), (1, 6)])
def test_latent_shapes(tmp_path, shape):
    ws = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
    np.save(tmp_path / "w.npy", ws)
    got = read_latent(tmp_path / "w.npy", num_ws=4, w_dim=6)
    assert got.shape == (4, 6) and got.dtype == np.float32
    np.testing.assert_array_equal(got, np.broadcast_to(ws.reshape(-1, 6), (4, 6)))


def test_drag_help_lists_the_interface():
    result = subprocess.run([sys.executable, "-m", "jaxgan", "drag", "--help"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0
    for option in ("--seed", "--ws", "--points", "--targets", "--mask", "--space", "--steps", "--lr", "--r1",
                   "--r2", "--lambda-mask", "--feature-idx", "--jobs", "--outdir", "--trace"):
        assert option in result.stdout


def test_gif_has_one_frame_per_step_even_when_images_repeat_and_caps_its_size():
    import io
    images = np.zeros((3, 600, 600, 1), np.uint8)  # identical frames, one channel, above the GIF size cap
    points = np.array([[[100, 100]], [[110, 120]], [[120, 140]]])
    buffer = io.BytesIO()
    drag_outputs.gif_writer(images, points, np.array([[300, 500]]))(buffer)
    gif = Image.open(io.BytesIO(buffer.getvalue()))
    assert gif.n_frames == 3 and gif.size == (drag_outputs.GIF_MAX_SIZE,) * 2


def test_gif_enlarges_small_images_by_a_whole_factor_with_markers_at_pixel_centres():
    import io
    images = np.full((2, 64, 64, 3), 128, np.uint8)  # 64 px -> 4x blocks, 256 px frames
    images[:, 10, 20] = (0, 255, 0)  # one green pixel: its 4x4 block must survive the enlargement intact
    points = np.array([[[40, 8]], [[40, 8]]])
    buffer = io.BytesIO()
    drag_outputs.gif_writer(images, points, np.array([[40, 56]]))(buffer)
    gif = Image.open(io.BytesIO(buffer.getvalue()))
    assert gif.n_frames == 2 and gif.size == (256, 256)
    frame = np.asarray(gif.convert("RGB"))
    assert np.all(frame[40:44, 80:84] == (0, 255, 0)) and np.all(frame[39, 80:84] == 128)
    # Markers sit at the centres of their pixels' blocks: handle (40, 8) -> (161.5, 33.5), target (40, 56) ->
    # (161.5, 225.5); scaling the coordinates alone would put them at (160, 32) and (160, 224). (PIL rasterises the
    # disc half a pixel up-left: measured centroid (161, 33).)
    for color, centre in ((drag_outputs.HANDLE_COLOR, (161.5, 33.5)), (drag_outputs.TARGET_COLOR, (161.5, 225.5))):
        rows, cols = np.nonzero(np.all(frame == color, axis=-1))
        assert abs(rows.mean() - centre[0]) <= 0.5 and abs(cols.mean() - centre[1]) <= 0.5, (rows.mean(), cols.mean())
