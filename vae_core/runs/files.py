"""The file operations under run storage: bounded reads, atomic writes, a staged folder written and moved in.

Both the run folder (folder.py) and the zip import (archive.py) build on these, and so does the UI's ledger of
imported runs (ui/storage.py). A save writes every file through write_atomic, so a fault injected there (the tests do)
reaches each file of it.
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
from pathlib import Path

from .names import resolve_run, unique_run_name


def read_file(path: Path, limit: int) -> bytes:
    """A regular file's bytes, refusing symlinks, FIFOs and devices, and anything past limit bytes."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise ValueError(f"{path.name}: missing from run folder {path.parent.name!r}") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ValueError(f"{path.name}: is a symbolic link; run files must be plain files in the run folder") \
                from None
        raise ValueError(f"{path.name}: cannot be read ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path.name}: not a regular file")
        if info.st_size > limit:
            raise ValueError(f"{path.name}: {info.st_size} bytes is larger than the {limit}-byte limit")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{path.name}: larger than the {limit}-byte limit")
    return data


def write_atomic(path: Path, data: bytes) -> None:
    """Write a file through a temporary file and a rename, so a reader never sees half of it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fsync_dir(path: Path) -> None:
    """Make renames inside path durable (best effort: not every platform can open a folder)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def stage_folder(target: Path, files: dict[str, bytes]) -> Path:
    """A new hidden folder beside target (.name.new-XXXXXXXX) holding files, each written atomically and synced; it
    is removed again if any write fails. recover_runs drops one left behind by a crash after an hour."""
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.new-"))
    try:
        staging.chmod(0o755)
        for name, data in files.items():
            write_atomic(staging / name, data)
        fsync_dir(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging


def rename_to_free(src: Path, dst: Path) -> bool:
    """Rename src to dst unless dst exists (False): mkdir claims the name atomically, so two movers never share it."""
    try:
        os.mkdir(dst)
    except FileExistsError:
        return False
    try:
        os.rename(src, dst)  # replaces our own empty folder
    except BaseException:
        os.rmdir(dst)
        raise
    return True


def move_in(src: Path, root: Path, base: str) -> Path:
    """Rename folder src into root under a free name derived from base; a concurrent mover never gets the same name."""
    while True:
        dst = resolve_run(root, unique_run_name(root, base))
        if rename_to_free(src, dst):
            return dst
