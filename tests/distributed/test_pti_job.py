"""`jaxgan invert --method pti` as a job of two processes (one CPU device each) on localhost equals one process with
two devices: every image's files, its tuned generator and invert.json, bit for bit. The job runs each batch on a
mesh of both processes' devices, each process feeding its rows, so every device runs the program and the rows it
runs in the one-process run; a batch's tuning stops on both processes at once. Process 0 writes every tuned
generator, process 1's sent to it (`pti.tuned_generators`)."""


import numpy as np
import pytest
from PIL import Image

from tests.helpers import (generator_checkpoint, lpips_alex_checkpoint, lpips_checkpoint, output_files, run_job,
                           run_one_process)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("pti_photos")
    rng = np.random.default_rng(1)
    photos = []
    for i in range(4):  # two batches of two (one photo per device)
        photos.append(root / f"photo{i}.png")
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(photos[-1])
    return {"ckpt": generator_checkpoint(tmp_path_factory), "lpips": lpips_checkpoint(tmp_path_factory)[0],
            "alex": lpips_alex_checkpoint(tmp_path_factory)[0], "photos": photos}


def args_of(setup, outdir):
    return ["invert", setup["ckpt"], *setup["photos"], "--lpips", setup["lpips"], "--method", "pti", "--lpips-alex",
            setup["alex"], "--pivot-steps", 2, "--tune-steps", 2, "--batch-size", 1, "--outdir", outdir]


@pytest.mark.slow  # 100 s on 2 cores; CI's invert job covers the batch plan and the gathers
def test_a_pti_job_of_two_processes_equals_one_process(setup, tmp_path):
    code, out, err = run_one_process(args_of(setup, tmp_path / "one"), devices=2)
    assert code == 0, err
    results = run_job(args_of(setup, tmp_path / "job"), devices_per_process=1)
    for i, (code, out, err, _) in enumerate(results):
        assert code == 0, f"process {i}: {err}"
    # process 0 tunes photos 0 and 2, process 1 photos 1 and 3; process 0 writes every tuned generator
    assert "process 0 of 2: wrote 2 pivots, 4 tuned generators and invert.json" in results[0][1]
    assert "process 1 of 2: wrote 2 pivots to" in results[1][1] and "process 0 writes the tuned" in results[1][1]
    got, want = (output_files(tmp_path / name, checkpoint_kind="stylegan2-generator") for name in ("job", "one"))
    assert sorted(got) == sorted(want) and any(name.startswith("photo3_G/") for name in want)
    for name, value in want.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(got[name], value, err_msg=name)
        else:
            assert got[name] == value, name


@pytest.mark.slow
def test_a_process_that_holds_no_photo_takes_part_and_writes_none(setup, tmp_path):
    """One photo over two processes: process 1 feeds only a padding row to every program (it must take part in
    each), writes nothing, and the job's files are the one-process run's up to float32 rounding (the job runs the
    photo beside a padding row on two devices, one process on one device: the README's last-batch exception)."""
    args = args_of({**setup, "photos": setup["photos"][:1]}, tmp_path / "job")
    results = run_job(args, devices_per_process=1)
    for i, (code, out, err, _) in enumerate(results):
        assert code == 0, f"process {i}: {err}"
    assert "process 0 of 2: wrote 1 pivot, 1 tuned generator and invert.json" in results[0][1]
    assert "process 1 of 2: wrote 0 pivots to" in results[1][1]
    code, out, err = run_one_process(args_of({**setup, "photos": setup["photos"][:1]}, tmp_path / "one"), devices=2)
    assert code == 0, err
    got, want = (output_files(tmp_path / name, checkpoint_kind="stylegan2-generator") for name in ("job", "one"))
    assert sorted(got) == sorted(want)
    np.testing.assert_allclose(got["photo0_ws.npy"], want["photo0_ws.npy"], atol=1e-5)
    assert [e["name"] for e in got["invert.json"]["images"]] == ["photo0"]
    assert abs(got["invert.json"]["images"][0]["lpips"] - want["invert.json"]["images"][0]["lpips"]) < 1e-4
