"""`jaxgan editgan edit` and `apply --refine` as a job of two processes (one CPU device each) on localhost equal one
process with two devices: every per-edit file, the summary latents and the summary JSON.

Four edits put two on each device in both runs, so every program has the same shape in both and the results are
bit for bit the same. `apply` refines only the latents whose images show the vector's classes, so the processes
agree on how many rows each feeds the refinement: tested with a class that only process 0's images show. (The case
of every latent refined is slow-marked: its rows are the edit job's.)
"""

import json

import numpy as np
import pytest
from PIL import Image

from tests.helpers import editgan_checkpoints, lpips_checkpoint, output_files, run_job, run_one_process

STEPS = 3
EDITS = 4


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The EditGAN-layout generator and classifiers, four W+ latents, one target segmentation and one region."""
    from jaxgan import sampling
    from jaxgan.checkpoint import load_model
    from jaxgan.models import stylegan2
    G, S = editgan_checkpoints(tmp_path_factory)
    root = tmp_path_factory.mktemp("editgan_job")
    generator = load_model(G, "stylegan2-generator")
    z = sampling.z_from_seeds(list(range(EDITS)), generator.config.z_dim)
    ws = np.array(stylegan2.mapping(generator, z, truncation_psi=0.7))
    ws[2:] *= -5  # latents whose images show no pixel of class 11 (the first two show a few)
    np.save(root / "ws.npy", ws)
    target = np.full((64, 64), 4, np.uint8)  # only the region's pixels matter
    Image.fromarray(target).save(root / "target.png")
    region = np.zeros((64, 64), np.uint8)
    region[20:36, 16:40] = 255
    Image.fromarray(region).save(root / "region.png")
    return {"G": G, "S": S, "lpips": lpips_checkpoint(tmp_path_factory)[0], "root": root}


def edit_args(setup, outdir):
    return ["editgan", "edit", setup["G"], "--seg", setup["S"], "--lpips", setup["lpips"], "--ws",
            setup["root"] / "ws.npy", "--target-seg", setup["root"] / "target.png", "--region",
            setup["root"] / "region.png", "--steps", STEPS, "--outdir", outdir]


def apply_args(setup, vector, outdir, *extra):
    return ["editgan", "apply", setup["G"], "--seg", setup["S"], "--vector", vector, "--ws", setup["root"] / "ws.npy",
            "--refine", STEPS, "--lpips", setup["lpips"], "--outdir", outdir, *extra]


def assert_same_files(folder, reference):
    got, want = output_files(folder), output_files(reference)
    assert sorted(got) == sorted(want)
    for name, value in want.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(got[name], value, err_msg=name)
        else:
            assert got[name] == value, name


def run_both(args_of, tmp_path):
    """(the one-process output folder, the job's), after checking both exited cleanly."""
    code, out, err = run_one_process(args_of(tmp_path / "one"), devices=2)
    assert code == 0, err
    results = run_job(args_of(tmp_path / "job"), devices_per_process=1)
    for i, (code, out, err, _) in enumerate(results):
        assert code == 0, f"process {i}: {err}"
    return tmp_path / "one", tmp_path / "job", results


@pytest.fixture(scope="module")
def edits(setup, tmp_path_factory):
    return run_both(lambda outdir: edit_args(setup, outdir), tmp_path_factory.mktemp("edits"))


@pytest.mark.slow  # with the apply job, 150 s on 2 cores: beyond CI's budget
def test_an_edit_job_of_two_processes_equals_one_process(edits):
    one, job, results = edits
    assert_same_files(job, one)
    assert len(json.loads((one / "edit.json").read_text())["edits"]) == EDITS
    assert "process 0 of 2: wrote 2 edits" in results[0][1] and "process 1 of 2: wrote 2 edits" in results[1][1]


@pytest.mark.slow
@pytest.mark.parametrize("rows_differ", [False, True],
                         ids=["every-latent-refined", "one-process-refines-none"])
def test_an_apply_job_of_two_processes_equals_one_process(setup, edits, tmp_path, rows_differ):
    """Refinement of every latent, or (--class-ids 11 at --scale 0) of process 0's two only: the other process
    then feeds the refinement padding alone, and the processes still run one program."""
    one, _, _ = edits
    extra = ["--class-ids", "11", "--scale", "0"] if rows_differ else []
    one_apply, job_apply, _ = run_both(lambda outdir: apply_args(setup, one / "ws0000_vector.npz", outdir, *extra),
                                       tmp_path)
    assert_same_files(job_apply, one_apply)
    refined = [e["refined_region_pixels"] > 0 for e in json.loads((one_apply / "apply.json").read_text())["images"]]
    assert refined == ([True, True, False, False] if rows_differ else [True] * EDITS)
