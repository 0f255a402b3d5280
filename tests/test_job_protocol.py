"""The pipe between the server and a job's worker (vae_core/jobs/protocol.py): a JobSpec crosses it whole, and a
message of a kind an end does not expect is refused in one place, receive(), naming the kinds it expects."""
from __future__ import annotations

import pytest

from vae_core.config import ModelConfig, TrainConfig
from vae_core.jobs import WORKERS, ProcessJob
from vae_core.jobs.fork_server import SPARE
from vae_core.jobs.protocol import (COMMANDS, REPORTS, Done, JobShape, JobSpec, Pause, ProtocolError, SetLr,
                                    SharedImages, Stop, Update, receive)

SMALL = ModelConfig(input_shape=(1, 8, 8), latent_dim=4, hidden_sizes=(32,))
QUICK = TrainConfig(epochs=2, batch_size=64, lr=3e-3, seed=0, lr_schedule="constant", lr_warmup_steps=0)


def test_a_job_spec_and_a_rehearsal_shape_cross_the_pipe_whole():
    spec = JobSpec(images=SharedImages("/dev/shm/vae-images-1-x", 128, "<f4", (1617, 1, 8, 8), mode="c"),
                   name="digits", source={"kind": "digits"}, model=SMALL, train=QUICK, threads=2,
                   resume="runs/a", run_dir="runs/b", weights_board="/dev/shm/vae-images-1-weights-y")
    server, worker = WORKERS.Pipe()
    server.send(spec)
    assert receive(worker, (JobSpec, type(None))) == spec  # what a spare waits for
    server.send(JobShape(SMALL, batch_size=64, threads=1))
    assert worker.recv() == JobShape(SMALL, 64, 1)


@pytest.mark.parametrize("message, expected", [
    (("update", {"steps": []}), REPORTS),  # a bare string kind, as the pipe carried before
    (Pause(), REPORTS),  # a command sent the wrong way
    (Update([], [], None, 1), COMMANDS),  # a report sent the wrong way
    (None, COMMANDS),
])
def test_a_message_of_a_kind_an_end_does_not_expect_is_refused_naming_the_known_kinds(message, expected):
    sender, receiver = WORKERS.Pipe()
    sender.send(message)
    with pytest.raises(ProtocolError, match="unknown message .*: expected one of " +
                                            ", ".join(kind.__name__ for kind in expected)):
        receive(receiver, expected)


def test_the_commands_and_reports_arrive_as_sent():
    sender, receiver = WORKERS.Pipe()
    for message in (SetLr(5e-4), Stop()):
        sender.send(message)
        assert receive(receiver, COMMANDS) == message
    sender.send(Done("failed", "diverged", ["could not save"], 1.5))
    assert receive(receiver, REPORTS) == Done("failed", "diverged", ["could not save"], 1.5)


class _Worker:
    """What the listener needs of a worker process that is still running."""
    exitcode = None

    def join(self, timeout=None):
        pass


def test_a_job_whose_worker_breaks_the_protocol_fails_with_the_reason_and_tells_it_to_stop(digits, monkeypatch):
    monkeypatch.setattr(SPARE, "refill", lambda shape=None: None)  # no spare started for the next job
    job = ProcessJob(digits, SMALL, QUICK, threads=1)
    job._conn, worker = WORKERS.Pipe()
    job._process, job._state = _Worker(), "running"  # as start() leaves them
    job._listener.start()
    worker.send(("done", {"state": "finished"}))  # not a Done
    assert job.join(timeout=30)
    assert job.state == "failed" and "protocol" in job.error
    assert "expected one of Ready, Update, Paused, Done" in job.error
    assert receive(worker, COMMANDS) == Stop()
