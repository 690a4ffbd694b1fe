"""`jaxgan train` as a job of two processes (one CPU device each) on localhost is bit for bit the one-process run with
two devices and the same global batch: the same networks, training state and logged losses, also when the job stops
and is resumed (slow-marked: its state read by process 0 alone and broadcast to the other). The two runs do the same
arithmetic: each device trains on the same half of every batch with the same random draws (keys fold in the device's
place on the mesh), and the all-reduce of two values is the same sum whichever process adds them. The regularisers
are off (their phases would only add compile time: what is distributed about them, the pmean of their gradients and
of the path-length mean, is Gmain's and Dmain's too)."""

import json

import numpy as np
import pytest

from tests.helpers import run_job, run_one_process

SNAPSHOT = ["--snapshot-kimg", "0.008", "--tick-kimg", "0.008"]  # every iteration of 8 images


def train_args(tmp_path, out, kimg, *more):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"preset": "tiny", "r1_gamma": 0, "pl_weight": 0}))
    return ["train", config, "--out", out, "--kimg", kimg, *SNAPSHOT, *more]


def arrays_of(run_dir):
    """{name: array} of the latest network checkpoint and the latest training state of a run directory."""
    import jax

    from jaxgan.checkpoint import load_checkpoint
    from jaxgan.train.run import load_state, state_dirs
    from jaxgan.train.stylegan2 import TrainConfig
    network = max(run_dir.glob("network-*"))
    models, _ = load_checkpoint(network, names=("G", "D"))
    found = {f"{network.name}/{name}{jax.tree_util.keystr(path)}": np.asarray(leaf) for name, model in models.items()
             for path, leaf in jax.tree_util.tree_leaves_with_path((model.params, model.buffers))}
    state_dir = state_dirs(run_dir)[-1]
    cfg = TrainConfig.from_dict(json.loads((run_dir / "training.json").read_text()))
    state = load_state(state_dir, cfg)
    found.update({f"{state_dir.name}{jax.tree_util.keystr(path)}": np.asarray(leaf)
                  for path, leaf in jax.tree_util.tree_leaves_with_path(state)})
    return found


def losses_of(run_dir):
    return [(t["iteration"], t["metrics"]) for t in map(json.loads, (run_dir / "log.jsonl").read_text().splitlines())]


def assert_same_runs(two, one):
    a, b = arrays_of(one), arrays_of(two)
    assert sorted(a) == sorted(b)
    for name in a:
        np.testing.assert_array_equal(b[name], a[name], err_msg=name)
    assert losses_of(two) == losses_of(one)
    assert [p.name for p in sorted(two.iterdir())] == [p.name for p in sorted(one.iterdir())]


def test_two_processes_train_what_one_process_trains(tmp_path):
    code, _, err = run_one_process(train_args(tmp_path, tmp_path / "one", 0.008), devices=2)
    assert code == 0, err
    results = run_job(train_args(tmp_path, tmp_path / "two", 0.008), devices_per_process=1)
    assert [r[0] for r in results] == [0, 0], [r[2][-2000:] for r in results]
    assert_same_runs(tmp_path / "two", tmp_path / "one")
    assert (tmp_path / "two" / "state-00000001").is_dir() and (tmp_path / "two" / "samples-init.png").is_file()


@pytest.mark.slow  # three runs of the job and one of a process (a minute more than the test above)
def test_a_job_stopped_and_resumed_trains_what_one_process_trains(tmp_path):
    code, _, err = run_one_process(train_args(tmp_path, tmp_path / "one", 0.016), devices=2)
    assert code == 0, err
    first = run_job(train_args(tmp_path, tmp_path / "two", 0.008), devices_per_process=1)
    assert [r[0] for r in first] == [0, 0], [r[2][-2000:] for r in first]
    second = run_job(train_args(tmp_path, tmp_path / "two", 0.016, "--resume"), devices_per_process=1)
    assert [r[0] for r in second] == [0, 0], [r[2][-2000:] for r in second]
    assert_same_runs(tmp_path / "two", tmp_path / "one")
    assert (tmp_path / "two" / "state-00000002").is_dir()


def test_a_refused_run_directory_stops_every_process(tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "file").write_text("x")
    results = run_job(train_args(tmp_path, busy, 0.008), devices_per_process=1, timeout=120)
    for code, _, err, _ in results:
        assert code == 1 and "already holds files" in err, err
