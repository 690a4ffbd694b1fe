"""`jaxgan lpips`, `jaxgan pix2pixhd` and `jaxgan drag --jobs` as jobs of two processes on localhost: the same
distances, images and drags as one process with as many devices (the same rows per device in both runs)."""

import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from jaxgan.cli import main
from tests.helpers import fixture_path, lpips_checkpoint, run_job, run_one_process


@pytest.mark.slow  # CI runs the generate, invert and train jobs; these share their machinery
def test_lpips_distances_of_a_job_are_those_of_one_process(tmp_path, tmp_path_factory):
    lpips = lpips_checkpoint(tmp_path_factory)[0]
    rng = np.random.default_rng(1)
    paths = []
    for i in range(5):
        paths.append(tmp_path / f"im{i}.png")
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(paths[-1])
    args = ["lpips", "--lpips", lpips, *paths, "--batch-size", 1]
    code, one, err = run_one_process(args, devices=4)
    assert code == 0, err
    results = run_job(args)
    assert [r[0] for r in results] == [0, 0], [r[2][-2000:] for r in results]
    lines = results[0][1].splitlines()  # Gloo's connection notes go to stderr
    assert lines == one.splitlines() and len(lines) == 4
    assert results[1][1] == ""  # process 0 prints the distances


@pytest.fixture(scope="module")
def pix2pixhd_checkpoint(tmp_path_factory):
    dst = tmp_path_factory.mktemp("p2p") / "label2city_small"
    result = CliRunner().invoke(main, ["convert", str(fixture_path("pix2pixhd_small_latest_net_G.pth")), str(dst),
                                       "--kind", "pix2pixhd", "--label-nc", "35"])
    assert result.exit_code == 0, result.output
    return dst


@pytest.mark.slow
def test_pix2pixhd_images_of_a_job_are_those_of_one_process(pix2pixhd_checkpoint, tmp_path):
    labels, insts = tmp_path / "labels", tmp_path / "insts"
    labels.mkdir()
    insts.mkdir()
    for name in ("a", "b", "c", "d"):
        shutil.copy(fixture_path("pix2pixhd_small_label.png"), labels / f"{name}.png")
        shutil.copy(fixture_path("pix2pixhd_small_inst.png"), insts / f"{name}.png")
    args = ["pix2pixhd", pix2pixhd_checkpoint, "--labels", labels, "--inst", insts]
    code, _, err = run_one_process(args + ["--outdir", tmp_path / "one"], devices=4)
    assert code == 0, err
    results = run_job(args + ["--outdir", tmp_path / "two"])
    assert [r[0] for r in results] == [0, 0], [r[2][-2000:] for r in results]
    assert "process 0 of 2: wrote 2 images" in results[0][1] and "process 1 of 2: wrote 2 images" in results[1][1]
    one, two = sorted((tmp_path / "one").iterdir()), sorted((tmp_path / "two").iterdir())
    assert [p.name for p in one] == [p.name for p in two] and len(one) == 8
    for a, b in zip(one, two):
        np.testing.assert_array_equal(np.asarray(Image.open(b)), np.asarray(Image.open(a)), err_msg=a.name)


@pytest.mark.slow  # 50 s on 2 cores: DragGAN's step compiled by three processes
def test_drag_jobs_of_a_job_are_those_of_one_process(tmp_path, tmp_path_factory):
    """Three drag sessions on the 64 px fixture generator over two processes of one device each (process 0 runs
    two, process 1 one beside a padding row) equal one process of two devices, file for file."""
    import json

    from tests.helpers import generator_checkpoint
    jobs = [{"name": "a", "seed": 0, "points": [[32, 20]], "targets": [[32, 30]], "steps": 3, "trace": True},
            {"name": "b", "seed": 1, "points": [[20, 20], [40, 44]], "targets": [[24, 20], [40, 40]], "steps": 2,
             "space": "w", "trace": True},
            {"name": "c", "seed": 2, "points": [[10, 50]], "targets": [[16, 50]], "steps": 4, "trace": True}]
    (tmp_path / "jobs.json").write_text(json.dumps({"jobs": jobs}))
    args = ["drag", generator_checkpoint(tmp_path_factory), "--jobs", tmp_path / "jobs.json"]
    code, _, err = run_one_process(args + ["--outdir", tmp_path / "one"], devices=2)
    assert code == 0, err
    results = run_job(args + ["--outdir", tmp_path / "two"], devices_per_process=1)
    assert [r[0] for r in results] == [0, 0], [r[2][-2000:] for r in results]
    assert "(2 sessions)" in results[0][1] and "(1 session)" in results[1][1]
    for name in "abc":
        one, two = sorted((tmp_path / "one" / name).iterdir()), sorted((tmp_path / "two" / name).iterdir())
        assert [p.name for p in one] == [p.name for p in two] == ["drag.gif", "drag.json", "drag.png",
                                                                  "drag_trace.npz", "drag_ws.npy"]
        for a, b in zip(one, two):
            assert a.read_bytes() == b.read_bytes(), a
