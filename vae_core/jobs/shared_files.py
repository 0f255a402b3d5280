"""The files a server shares with its job workers, in /dev/shm where there is one (memory, not disk): the training
images, copied once and mapped by both processes (the copy of the last in-memory dataset kept for the next job on the
same array), and each job's weights board; the sweep of the files a killed server left behind."""
from __future__ import annotations

import atexit
import os
import tempfile
import threading
import weakref

import numpy as np

from .board import WeightsBoard
from .protocol import SharedImages

PREFIX = "vae-images-"  # then the server's pid: what the sweep reads


def scratch_folder() -> str:
    return "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()


def share_images(images: np.ndarray) -> tuple[SharedImages, str | None, str | None]:
    """How a worker finds these images: a memory-mapped file by its path, else one shared copy in a file that both
    processes map. With it, the names the job lets go of once its worker has mapped the file (each may be None): its
    own copy (unlink it) and the kept copy held for it (release_images it)."""
    if isinstance(images, np.memmap) and images.filename and images.flags.c_contiguous:
        mapped = SharedImages(str(images.filename), images.offset, images.dtype.str, images.shape, mode="r")
        if _same_view(images, mapped):
            return mapped, None, None
    own, held = None, _KEPT.get(images)
    path = held
    if path is None:
        folder = scratch_folder()
        _sweep(folder)
        fd, path = tempfile.mkstemp(prefix=f"{PREFIX}{os.getpid()}-", dir=folder)
        os.close(fd)
        shared = np.memmap(path, dtype=images.dtype, mode="w+", shape=images.shape)
        shared[:] = images
        shared.flush()
        del shared
        if _KEPT.keep(images, path):
            held = path
        else:
            own = path  # this job's own copy: unlinked once the worker has mapped it
    return SharedImages(path, 0, images.dtype.str, images.shape, mode="c"), own, held


def release_images(path: str) -> None:
    """The worker of a job that held path (share_images) has mapped it, or will not."""
    _KEPT.release(path)


def new_board(state: dict) -> WeightsBoard | None:
    """A weights board for a job, or None where there is no room for it."""
    try:
        return WeightsBoard.create(scratch_folder(), f"{PREFIX}{os.getpid()}-weights-", state)
    except (OSError, ValueError):
        return None


class _KeptCopy:
    """The shared file of the last in-memory dataset a job trained on, kept for the next job on the same array (one
    file: a copy of one dataset at most, removed when another replaces it, its array is freed or the server exits).
    Arrays over MAX_BYTES are copied per job, as the copy is then small beside the job and memory is not.

    A job that was handed the path holds it until its worker has mapped the file (release()): a file replaced or
    freed meanwhile is removed only then, so two sessions starting jobs on different data at once both start."""

    MAX_BYTES = 256 * 2**20

    def __init__(self):
        self._lock = threading.Lock()
        self._key = self._path = self._finalizer = None
        self._holders: dict[str, int] = {}  # path -> jobs whose worker has not mapped it yet
        self._retired: set[str] = set()  # paths no longer kept, removed when their last holder releases them

    def get(self, images: np.ndarray) -> str | None:
        """The kept copy of these images, held for the caller (release it once mapped), or None."""
        with self._lock:
            if self._key != _images_key(images):
                return None
            if not os.path.exists(self._path):  # removed behind our back (a /dev/shm clean-up): copy again
                self._key = self._path = self._finalizer = None
                return None
            self._holders[self._path] = self._holders.get(self._path, 0) + 1
            return self._path

    def keep(self, images: np.ndarray, path: str) -> bool:
        """Keep path as images' shared copy, held for the caller (True), or leave it to the caller (False: too large,
        or not weak-referable)."""
        if images.nbytes > self.MAX_BYTES:
            return False
        try:
            finalizer = weakref.finalize(images, self._forget, _images_key(images), path)
        except TypeError:
            return False
        with self._lock:
            old, self._key, self._path, self._finalizer = self._finalizer, _images_key(images), path, finalizer
            self._holders[path] = self._holders.get(path, 0) + 1
        if old is not None:
            old()  # the previous dataset's file goes (workers that map it keep their mapping)
        return True

    def release(self, path: str) -> None:
        """A holder's worker has mapped path (or will not): a retired file goes with its last holder."""
        with self._lock:
            left = self._holders.get(path, 0) - 1
            if left > 0:
                self._holders[path] = left
                return
            self._holders.pop(path, None)
            gone = path in self._retired
            self._retired.discard(path)
        if gone:
            unlink(path)

    def _forget(self, key: tuple, path: str) -> None:
        with self._lock:
            if self._key == key:
                self._key = self._path = self._finalizer = None
            if self._holders.get(path):
                self._retired.add(path)
                return
        unlink(path)

    def close(self) -> None:
        """At exit: every file this server made goes, held or not (its workers are ending with it)."""
        with self._lock:
            paths = {self._path, *self._holders, *self._retired} - {None}
            self._key = self._path = None
            self._holders.clear()
            self._retired.clear()
        for path in paths:
            unlink(path)


_KEPT = _KeptCopy()
atexit.register(_KEPT.close)


def _images_key(images: np.ndarray) -> tuple:
    return id(images), images.__array_interface__["data"][0], images.shape, images.dtype.str


def _same_view(images: np.ndarray, mapped: SharedImages) -> bool:
    """Whether mapping that file region gives these images (a view that transposed or sliced the file would not)."""
    try:
        again = np.memmap(mapped.path, dtype=np.dtype(mapped.dtype), mode="r", offset=mapped.offset,
                          shape=mapped.shape)
        return bool(np.array_equal(again[[0, -1]], images[[0, -1]]))
    except (OSError, ValueError):
        return False


PREFIX = "vae-images-"


def _sweep(folder: str) -> None:
    """Remove the shared copies left by servers that were killed (the file name carries the server's pid)."""
    try:
        names = [n for n in os.listdir(folder) if n.startswith(PREFIX)]
    except OSError:
        return
    for name in names:
        pid = name[len(PREFIX):].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            unlink(os.path.join(folder, name))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive, and not ours to clean
        return True
    return True


def unlink(path: str | None) -> None:
    """Remove path's name if it is there (a worker that mapped it keeps its mapping)."""
    if path:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
