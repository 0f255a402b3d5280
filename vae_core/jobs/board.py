"""A model's weights passed from a job's worker process to the server through shared memory, not the pipe.

Sent over the pipe, each epoch's weights were pickled, written in socket-buffer-sized pieces (a wake-up of the other
process for each), reassembled, unpickled and parsed: ~12 ms of CPU per 2-epoch job for the 2.6 MB 784-400-20 MLP
(~1% of the job), ~100 ms an epoch for a 40 MB convolutional model. Through a board both processes map, it is one
copy in and one copy out.

The board has one slot, and the pipe orders its use: the worker writes a version, then says so over the pipe; the
server copies it out, then answers "read". The worker writes again only after that answer; a version published
while the server has not answered yet goes over the pipe instead (as does everything when there is no board: no
room in /dev/shm, or a model the board was not made for). Writes never race reads, with no lock across processes.
"""
from __future__ import annotations

import mmap
import os
import tempfile

import numpy as np
import torch

ALIGN = 64  # each tensor starts on a cache line


def layout(state: dict[str, torch.Tensor]) -> tuple[dict[str, tuple[int, int]], int]:
    """Each tensor's (offset, bytes) on the board, and the board's size, from a state dict's order and sizes."""
    offsets, end = {}, 0
    for key, tensor in state.items():
        nbytes = tensor.numel() * tensor.element_size()
        offsets[key] = (end, nbytes)
        end += -(-nbytes // ALIGN) * ALIGN
    return offsets, max(end, ALIGN)


class WeightsBoard:
    """One slot of shared memory for a model's state dict, mapped by the server (create) and the worker (open)."""

    def __init__(self, path: str, state: dict[str, torch.Tensor]):
        offsets, size = layout(state)
        fd = os.open(path, os.O_RDWR)
        try:
            if os.fstat(fd).st_size != size:
                raise ValueError(f"{path}: {os.fstat(fd).st_size} bytes, not the {size} this model needs")
            self._map = mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            os.close(fd)
        self.path = path
        self._views = {key: torch.frombuffer(self._map, dtype=state[key].dtype, count=state[key].numel(),
                                             offset=offset).view(state[key].shape)
                       for key, (offset, _) in offsets.items() if state[key].numel()}

    @classmethod
    def create(cls, folder: str, prefix: str, state: dict[str, torch.Tensor]) -> "WeightsBoard":
        """A new board file in folder, its space reserved (OSError if there is none: writing to an unreserved page
        of a full tmpfs would kill the process with SIGBUS)."""
        fd, path = tempfile.mkstemp(prefix=prefix, dir=folder)
        try:
            os.posix_fallocate(fd, 0, layout(state)[1])
        except OSError:
            os.close(fd)
            os.unlink(path)
            raise
        os.close(fd)
        try:
            return cls(path, state)
        except (OSError, ValueError):
            os.unlink(path)
            raise

    def write(self, state: dict[str, torch.Tensor]) -> None:
        for key, view in self._views.items():
            _copy(view, state[key])

    def read_into(self, state: dict[str, torch.Tensor]) -> None:
        for key, view in self._views.items():
            _copy(state[key], view)


def _copy(dst: torch.Tensor, src: torch.Tensor) -> None:
    """A plain memory copy (numpy's), not torch's copy_: the board is written and read by threads that do not train
    (the worker's streaming thread, the server's listener), and a torch op in such a thread starts an OpenMP team of
    its own (libgomp keeps one per calling thread) whose threads take the cores from the training thread's team. The
    app's MLP recipe on real MNIST 5k, 2 threads, trained in 4.4-4.8 s against the CLI's 2.6-3.0 s that way, and in
    2.84-2.91 s against 2.76-2.83 s with this copy (bench/bench_app_path.py)."""
    try:
        np.copyto(dst.detach().numpy(), src.detach().numpy())
    except TypeError:  # a dtype numpy does not have (bfloat16)
        with torch.no_grad():
            dst.copy_(src)
