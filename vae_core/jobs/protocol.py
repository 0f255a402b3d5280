"""What crosses the pipe between the server (jobs/process.py) and a job's worker process (jobs/worker.py), declared
once: the JobSpec that starts a job, the commands the server sends and the reports the worker sends back.

Each end receives through receive(), which refuses anything but the kinds it expects. The pipe carries only what our
own processes send (multiprocessing pickles it); nothing a user supplies crosses it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..config import ModelConfig, TrainConfig
from .progress import Progress


@dataclass(frozen=True)
class SharedImages:
    """Where the worker maps the training images: a region of a file both processes can open."""

    path: str
    offset: int
    dtype: str  # numpy's dtype.str, e.g. "<f4"
    shape: tuple[int, ...]
    mode: str  # "r": a memory-mapped .npy of the user's, read-only; "c": the server's shared copy, copy-on-write


@dataclass(frozen=True)
class JobShape:
    """The model, batch size and threads of a job: what a spare worker rehearses with (worker.rehearse)."""

    model: ModelConfig
    batch_size: int
    threads: int


@dataclass(frozen=True)
class JobSpec:
    """Everything a worker needs to build its TrainingJob."""

    images: SharedImages
    name: str  # the dataset's
    source: dict  # the dataset's source (data.Dataset.source), saved with the run
    model: ModelConfig
    train: TrainConfig
    threads: int
    resume: str | None = None  # the run folder the job continues
    run_dir: str | None = None  # where the worker saves the run
    weights_board: str | None = None  # the board's file (board.py), or None: the weights go over the pipe


# ---------------------------------------------------------------- commands: server -> worker

@dataclass(frozen=True)
class Pause:
    pass


@dataclass(frozen=True)
class Resume:
    pass


@dataclass(frozen=True)
class Stop:
    pass


@dataclass(frozen=True)
class SetLr:
    lr: float  # the peak learning rate


@dataclass(frozen=True)
class SetBeta:
    beta: float


@dataclass(frozen=True)
class WeightsRead:
    """The server has copied the weights off the board: the worker may write it again."""


COMMANDS = (Pause, Resume, Stop, SetLr, SetBeta, WeightsRead)


# ---------------------------------------------------------------- reports: worker -> server

@dataclass(frozen=True)
class Ready:
    """The worker has mapped the images and the board: their names can go."""


@dataclass(frozen=True)
class Update:
    """What is new since the last update."""

    steps: list[dict]  # step rows after the last one sent
    epochs: list[dict]  # epoch rows after the last one sent
    progress: Progress
    stride: int  # the history's stride (core.JobCore._thin_to): the server's mirror thins alike
    weights: bytes | None = None  # a new version of the weights as safetensors bytes, when not on the board
    weights_on_board: bool = False  # a new version is on the board: the server reads it, then sends WeightsRead


@dataclass(frozen=True)
class Paused:
    """The job has paused; the steps it took before came in the update just sent."""


@dataclass(frozen=True)
class Done:
    """The job's last word: how it ended."""

    state: str  # finished, stopped or failed
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    cpu_s: float = 0.0  # the worker's CPU seconds on the job


REPORTS = (Ready, Update, Paused, Done)


class ProtocolError(ValueError):
    """A message of a kind this end does not expect."""


def receive(conn, kinds: tuple[type, ...]):
    """The next message on conn, one of kinds (COMMANDS, REPORTS, or what a spare waits for: a JobSpec or None);
    ProtocolError for anything else, naming the kinds expected; EOFError or OSError once the other end has gone."""
    message = conn.recv()
    if not isinstance(message, kinds):
        known = ", ".join(kind.__name__ for kind in kinds)
        raise ProtocolError(f"unknown message {message!r}: expected one of {known}")
    return message
