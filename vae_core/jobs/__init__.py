"""Training jobs: TrainingJob trains in a thread of this process (the CLI, torchrun ranks), ProcessJob in a worker
process (the app); both share one core (core.py: setup, state machine, history). The JobPool limits them; what crosses
the pipe to a worker is declared in protocol.py."""
from .board import WeightsBoard
from .core import JobCore, build_model, default_threads, refuse_untrainable, resolve_device
from .fork_server import WORKERS, warm_up
from .heap import keep_freed_heap, trim_freed_heap
from .pool import JobPool, PoolFull
from .process import ProcessJob
from .progress import Progress, Snapshot
from .protocol import JobShape, JobSpec
from .training import TrainingJob
from .worker import rehearse

__all__ = ["JobCore", "JobPool", "JobShape", "JobSpec", "PoolFull", "ProcessJob", "Progress", "Snapshot",
           "TrainingJob", "WORKERS", "WeightsBoard", "build_model", "default_threads", "keep_freed_heap",
           "refuse_untrainable", "rehearse",
           "resolve_device", "trim_freed_heap", "warm_up"]
