"""What the server keeps on disk for sessions: uploaded data files and imported runs. An upload's file count and size
are checked before anything is written; both stores are cleaned by age and total size before each new upload or
import, never touching what a connected session or a training job uses (ui/sharing.py says what is in use)."""
from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

from vae_core.runs.files import write_atomic

MAX_UPLOAD_FILES = 2  # one data file, or an IDX images file with its labels file
IMPORTED_LEDGER = ".imported.json"  # in the runs folder: run name -> when it was imported (unix time)
_LOCK = threading.Lock()  # one cleaner or ledger writer at a time in this server


def _env_bytes(name: str, default: int) -> int:
    return int(float(os.environ.get(name) or default))


def max_upload_bytes() -> int:
    """The largest one upload may be, all its files together (env VAE_MAX_UPLOAD_BYTES, default 1 GiB)."""
    return _env_bytes("VAE_MAX_UPLOAD_BYTES", 2**30)


def uploads_max_bytes() -> int:
    """The uploads store's size (env VAE_UPLOADS_MAX_BYTES, default 4 GiB)."""
    return _env_bytes("VAE_UPLOADS_MAX_BYTES", 4 * 2**30)


def imported_max_bytes() -> int:
    """The imported runs' total size (env VAE_IMPORTED_MAX_BYTES, default 2 GiB)."""
    return _env_bytes("VAE_IMPORTED_MAX_BYTES", 2 * 2**30)


def max_age_s() -> float:
    """How long an upload or an imported run is kept when nobody uses it (env VAE_KEEP_DAYS, default 7 days)."""
    return float(os.environ.get("VAE_KEEP_DAYS") or 7) * 86400


def folder_bytes(path: Path) -> int:
    return sum(p.lstat().st_size for p in path.rglob("*") if not p.is_symlink() and p.is_file())


def check_upload(files: list) -> int:
    """Refuse an upload of too many files or too many bytes, before anything is written; its size in bytes."""
    names = ", ".join(f.name for f in files)
    if len(files) > MAX_UPLOAD_FILES:
        raise ValueError(f"{names}: {len(files)} files; upload one data file, or an IDX images file with its labels "
                         f"file ({MAX_UPLOAD_FILES} at most)")
    size = sum(int(f.size) for f in files)
    if size > max_upload_bytes():
        raise ValueError(f"{names}: {size / 2**20:,.0f} MB together is more than this server accepts in one upload "
                         f"({max_upload_bytes() / 2**20:,.0f} MB, VAE_MAX_UPLOAD_BYTES)")
    return size


def make_room(items: list[tuple[Path, float, int]], in_use, budget: int, incoming: int, what: str) -> list[Path]:
    """Remove items (path, time, bytes) older than max_age_s(), then the oldest, until the rest and incoming bytes
    fit in budget; in_use(path) ones are never removed. ValueError when even that leaves no room. The removed."""
    now, removed = time.time(), []
    total = sum(size for _, _, size in items)
    for path, when, size in sorted(items, key=lambda item: item[1]):
        if in_use(path) or (now - when < max_age_s() and total + incoming <= budget):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
        total -= size
    if total + incoming > budget:
        raise ValueError(f"this server's space for {what} is full: {total / 2**20:,.0f} MB are in use by connected "
                         f"sessions and {incoming / 2**20:,.0f} MB more would pass its {budget / 2**20:,.0f} MB; try "
                         "again later or ask whoever runs the server")
    return removed


def prune_uploads(root: Path, in_use, incoming: int = 0) -> list[Path]:
    """Make room in the uploads store (one folder per upload) for incoming bytes; the removed folders."""
    with _LOCK:
        items = [(p, p.stat().st_mtime, folder_bytes(p)) for p in root.iterdir()
                 if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")]
        return make_room(items, in_use, uploads_max_bytes(), incoming, "uploaded data")


def note_imported(root: Path, name: str) -> None:
    """Record that run `name` was imported now (an imported run that is renamed leaves the ledger: it is kept)."""
    with _LOCK:
        ledger = _ledger(root)
        ledger[name] = time.time()
        write_atomic(root / IMPORTED_LEDGER, json.dumps(ledger).encode())


def forget_imported(root: Path, name: str) -> None:
    with _LOCK:
        ledger = _ledger(root)
        if ledger.pop(name, None) is not None:
            write_atomic(root / IMPORTED_LEDGER, json.dumps(ledger).encode())


def prune_imported(root: Path, in_use, incoming: int = 0) -> list[Path]:
    """Make room among imported runs for incoming bytes; the removed run folders."""
    with _LOCK:
        ledger = _ledger(root)
        items = [(root / name, when, folder_bytes(root / name)) for name, when in ledger.items()
                 if (root / name).is_dir() and not (root / name).is_symlink()]
        removed = make_room(items, in_use, imported_max_bytes(), incoming, "imported runs")
        kept = {name: when for name, when in ledger.items() if (root / name).is_dir()}
        if kept != ledger:
            write_atomic(root / IMPORTED_LEDGER, json.dumps(kept).encode())
        return removed


def _ledger(root: Path) -> dict[str, float]:
    try:
        ledger = json.loads((root / IMPORTED_LEDGER).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): float(v) for k, v in ledger.items() if isinstance(v, (int, float))} if isinstance(ledger, dict) \
        else {}
