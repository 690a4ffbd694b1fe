"""`jaxgan.distributed` in one process: the job description's checks, SLURM detection, and the collectives'
one-process forms (jobs of several processes: tests/distributed/)."""

import numpy as np
import pytest

from jaxgan import distributed
from jaxgan.distributed import JobConfig


@pytest.mark.parametrize("cfg, message", [
    (JobConfig(num_processes=2), "needs all of --coordinator, --num-processes and --process-id"),
    (JobConfig(coordinator="host", num_processes=2, process_id=0), "is not HOST:PORT"),
    (JobConfig(coordinator="host:port", num_processes=2, process_id=0), "is not HOST:PORT"),
    (JobConfig(coordinator="host:1234", num_processes=0, process_id=0), "at least 1"),
    (JobConfig(coordinator="host:1234", num_processes=2, process_id=2), r"not in \[0, 2\)"),
])
def test_an_incomplete_or_inconsistent_job_is_refused(cfg, message):
    with pytest.raises(ValueError, match=message):
        distributed.initialize(cfg)


def test_one_process_starts_no_runtime():
    assert distributed.initialize(JobConfig()) is False  # the test run is no SLURM step of several tasks
    assert distributed.initialize(JobConfig(coordinator="127.0.0.1:1", num_processes=1, process_id=0)) is False
    assert distributed.process_count() == 1 and distributed.is_primary() and distributed.describe() == ""


def test_slurm_steps_of_several_tasks_are_detected():
    assert distributed.slurm_tasks({}) == 1
    assert distributed.slurm_tasks({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "4"}) == 1  # sbatch's shell, not srun
    assert distributed.slurm_tasks({"SLURM_STEP_ID": "0", "SLURM_NTASKS": "4"}) == 4
    assert distributed.slurm_tasks({"SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "2", "SLURM_NTASKS": "4"}) == 2
    assert distributed.slurm_tasks({"SLURM_STEP_ID": "0", "SLURM_NTASKS": "x"}) == 1


def test_the_collectives_of_one_process_are_identities():
    assert distributed.allgather_objects({"a": [1, 2.5]}) == [{"a": [1, 2.5]}]
    np.testing.assert_array_equal(distributed.any_true([True, False]), [True, False])
    tree = distributed.broadcast_from_primary({"w": np.arange(3, dtype=np.float32)})
    np.testing.assert_array_equal(tree["w"], [0, 1, 2])
    assert distributed.primary_result(lambda: 5) == 5
    with pytest.raises(ValueError, match="refused"):
        distributed.primary_result(lambda: (_ for _ in ()).throw(OSError("refused")))
    assert not distributed.lost_peer(RuntimeError("Gloo all-reduce failed: Connection reset by peer"))
