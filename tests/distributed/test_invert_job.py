"""`jaxgan invert` (the projector) as a job of two processes (two CPU devices each) on localhost equals one process
with four devices, file for file and in invert.json; a run stopped part way is finished by --skip-existing with the
same files and summary (there in one process: the job's agreement on what is done is generate's, tested beside it).

Five photos at one per device make a full batch of four, bit for bit the same in both runs, and a last batch of
one, which one process runs on a one-device mesh while the job runs it on all four devices beside padding: the same
arithmetic in another compiled program, equal to float32 rounding (measured: 1 ulp in a fifth of one noise map)."""

import json

import numpy as np
import pytest
from PIL import Image

from tests.helpers import generator_checkpoint, lpips_checkpoint, output_files, run_job, run_one_process

STEPS = 3


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Five photos (random pixels: what they show does not matter here) and the checkpoints."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    photos = []
    for i in range(5):
        path = root / f"photo{i}.png"
        Image.fromarray(rng.integers(0, 256, (72, 64, 3), dtype=np.uint8)).save(path)  # cropped to 64 x 64
        photos.append(path)
    return {"ckpt": generator_checkpoint(tmp_path_factory), "lpips": lpips_checkpoint(tmp_path_factory)[0],
            "photos": photos}


def args_of(setup, outdir):
    return ["invert", setup["ckpt"], *setup["photos"], "--lpips", setup["lpips"], "--steps", STEPS, "--seed", 5,
            "--batch-size", 1, "--outdir", outdir]


@pytest.fixture(scope="module")
def one_process(setup, tmp_path_factory):
    outdir = tmp_path_factory.mktemp("one") / "out"
    code, out, err = run_one_process(args_of(setup, outdir), devices=4)
    assert code == 0, err
    return outdir


def assert_close_json(got, want, path="invert.json"):
    """Equal documents, numbers within float32 rounding of the last batch (the summary rounds to 6 decimals)."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(want), path
        for key in want:
            assert_close_json(got[key], want[key], f"{path}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want)):
            assert_close_json(g, w, f"{path}[{i}]")
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-5, abs=2e-6), path
    else:
        assert got == want, path


def assert_same_outputs(folder, reference):
    got, want = output_files(folder, documents=False), output_files(reference, documents=False)
    assert sorted(got) == sorted(want)
    for name in want:
        if name.startswith("photo4"):  # the last batch: another program, the same arithmetic, float32 rounding
            tolerance = 1 if name.endswith(".png") else 1e-4  # apart, grown by Adam's steps (measured: 2.2e-5)
            np.testing.assert_allclose(got[name].astype(np.float64), want[name], atol=tolerance, err_msg=name)
        else:
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    assert_close_json(json.loads((folder / "invert.json").read_text()),
                      json.loads((reference / "invert.json").read_text()))


def test_two_processes_write_what_one_process_writes(setup, one_process, tmp_path):
    results = run_job(args_of(setup, tmp_path / "two"))
    for code, out, err, _ in results:
        assert code == 0, err
    # batches of 4 (one image per device): process 0 inverts photos 0, 1 and 4, process 1 photos 2 and 3
    assert "process 0 of 2: wrote 3 inversions and invert.json" in results[0][1]
    assert "process 1 of 2: wrote 2 inversions to" in results[1][1]
    assert "photo2: LPIPS" in results[1][1] and "photo2: LPIPS" not in results[0][1]
    assert_same_outputs(tmp_path / "two", one_process)


@pytest.mark.slow  # CI keeps generate's --skip-existing job
def test_skip_existing_finishes_a_stopped_run(setup, one_process, tmp_path):
    import shutil
    outdir = tmp_path / "out"
    shutil.copytree(one_process, outdir)
    for name in ("photo1_ws.npy", "photo3_loss.png", "photo4_recon.png", "photo4_ws.npy"):
        (outdir / name).unlink()  # as if the run had stopped with these three photos unfinished
    doc = json.loads((outdir / "invert.json").read_text())
    doc["images"] = [e for e in doc["images"] if e["name"] in ("photo0", "photo2")]
    (outdir / "invert.json").write_text(json.dumps(doc))
    code, out, err = run_one_process(args_of(setup, outdir) + ["--skip-existing"], devices=4)  # the rule is
    assert code == 0, err  # the same in a job of several processes (tests/distributed/test_generate_job.py)
    assert "wrote 3 inversions and invert.json" in out and "(2 there already)" in out
    assert_same_outputs(outdir, one_process)
