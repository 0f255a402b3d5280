"""Training jobs: the in-thread TrainingJob (the CLI's), the worker-process ProcessJob (the app's), the JobPool that
limits them, and what they share."""
from .board import WeightsBoard
from .core import JobCore, build_model, default_threads, resolve_device
from .pool import JobPool, PoolFull
from .process import WORKERS, ProcessJob, warm_up
from .heap import keep_freed_heap, trim_freed_heap
from .progress import Progress, Snapshot
from .protocol import JobShape, JobSpec
from .training import TrainingJob
from .worker import rehearse

__all__ = ["JobCore", "JobPool", "JobShape", "JobSpec", "PoolFull", "ProcessJob", "Progress", "Snapshot", "TrainingJob", "WORKERS",
           "WeightsBoard", "build_model", "default_threads", "keep_freed_heap", "rehearse", "resolve_device",
           "trim_freed_heap", "warm_up"]
