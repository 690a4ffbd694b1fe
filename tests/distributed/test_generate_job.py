"""`jaxgan generate` as a job of two processes (two CPU devices each) on localhost equals one process with four
devices file for file, each process writing its own share; --skip-existing finishes a partial output."""

import re

import numpy as np
import pytest
from PIL import Image

from tests.helpers import generator_checkpoint, run_job, run_one_process


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return generator_checkpoint(tmp_path_factory)


def pngs(folder):
    return {p.name: np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))}


def test_two_processes_write_what_one_process_writes(checkpoint, tmp_path):
    args = ["generate", checkpoint, "--seeds", "0-10", "--batch-size", "2", "--noise-mode", "random"]
    code, out, err = run_one_process(args + ["--outdir", tmp_path / "one"], devices=4)
    assert code == 0, err
    results = run_job(args + ["--outdir", tmp_path / "two"])
    for code, out, err, _ in results:
        assert code == 0, err
    assert "process 0 of 2: wrote 7 images" in results[0][1]  # 11 seeds in chunks of 8: rows 0-3 of each are
    assert "process 1 of 2: wrote 4 images" in results[1][1]  # process 0's, the last chunk's 3 are all its own
    one, two = pngs(tmp_path / "one"), pngs(tmp_path / "two")
    assert sorted(one) == sorted(two) == [f"seed{s:04d}.png" for s in range(11)]
    for name in one:
        np.testing.assert_array_equal(two[name], one[name], err_msg=name)
    assert "generating" in results[0][2] and "generating" not in results[1][2]  # one progress bar


def test_skip_existing_generates_only_the_missing_images(checkpoint, tmp_path):
    args = ["generate", checkpoint, "--seeds", "0-5", "--batch-size", "1", "--outdir", tmp_path]
    code, _, err = run_one_process(args, devices=1)
    assert code == 0, err
    full = pngs(tmp_path)
    for name in ("seed0001.png", "seed0004.png", "seed0005.png"):
        (tmp_path / name).unlink()
    results = run_job(args + ["--skip-existing"])
    assert [r[0] for r in results] == [0, 0], results
    assert "wrote 2 images to" in results[0][1] and "(3 there already)" in results[0][1]
    assert "wrote 1 images to" in results[1][1]
    again = pngs(tmp_path)
    assert sorted(again) == sorted(full)
    for name in full:
        np.testing.assert_array_equal(again[name], full[name], err_msg=name)
    code, out, _ = run_one_process(args + ["--skip-existing"], devices=1)
    assert code == 0 and "all 6 images are in" in out


def test_an_incomplete_job_description_is_refused(checkpoint, tmp_path):
    code, _, err = run_one_process(["generate", checkpoint, "--seeds", "0", "--outdir", tmp_path,
                                    "--num-processes", "2"], devices=1)
    assert code == 2 and "needs all of --coordinator, --num-processes and --process-id" in err
    assert not list(tmp_path.iterdir())


def test_a_killed_process_stops_the_job_with_an_error(checkpoint, tmp_path):
    """Process 1 is killed once the job has written its first image; process 0 must stop, with a non-zero exit and
    an error that says another process is gone, well within the heartbeat timeout (10 s) plus a margin, and every
    image on disk is whole. A hidden temporary file may remain only from a process that a signal ended (SIGKILL
    leaves no chance to remove one; JAX's distributed service may abort the survivor too); a process that stops
    with an error removes its own."""
    outdir = tmp_path / "out"
    args = ["generate", checkpoint, "--seeds", "0-399", "--batch-size", "1", "--outdir", outdir,
            "--heartbeat-timeout", "10"]
    results = run_job(args, timeout=120, kill_when=(1, lambda: outdir.is_dir() and any(outdir.glob("*.png"))))
    (code0, out0, err0, end0), (code1, *_) = results
    assert code1 == -9
    assert code0 not in (0, None), (out0, err0)
    assert end0 is not None and end0 < 60, end0
    assert ("another process of this job stopped" in err0
            or "JAX distributed service detected fatal errors" in err0), err0
    for png in outdir.glob("*.png"):
        Image.open(png).load()  # whole files only (written under a temporary name, then renamed)
    # Batch 1 on 2 x 2 devices: seeds go in chunks of 4, rows 0-1 of each are process 0's, rows 2-3 process 1's.
    leftovers = [int(re.fullmatch(r"\.seed(\d+)\.png\..+\.partial", p.name).group(1))
                 for p in outdir.glob(".*partial")]
    signalled = {i for i, code in enumerate((code0, code1)) if code < 0}
    assert all((seed % 4) // 2 in signalled for seed in leftovers), (leftovers, code0)
