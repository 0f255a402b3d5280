"""Run names: safe folder names, confined to the runs folder, and unique among the runs and this process's new ones."""
from __future__ import annotations

import os
import re
import threading
from pathlib import Path

_HANDED_OUT: set[tuple[str, str]] = set()  # (root, name) pairs unique_run_name has returned in this process
_NAMES_LOCK = threading.Lock()


def sanitize_name(name: str) -> str:
    """A safe folder name: letters, digits, '-', '_' and '.', no leading dot, at most 64 characters."""
    clean = re.sub(r"[^A-Za-z0-9._-]+", "-", str(name))[:64].strip(".-_")
    if not clean:
        raise ValueError(f"run name {name!r} has no usable characters (letters, digits, '-', '_', '.')")
    return clean


def resolve_run(root: str | Path, name: str) -> Path:
    """The folder of run `name` inside root; refuses anything that would leave root (../, absolute, symlinks)."""
    root = Path(root).resolve()
    if not isinstance(name, str) or name != sanitize_name(name):
        raise ValueError(f"run name {name!r} is not allowed (use letters, digits, '-', '_', '.')")
    path = root / name
    if path.is_symlink() or path.resolve().parent != root:
        raise ValueError(f"run {name!r} is outside the runs folder")
    return path


def unique_run_name(root: str | Path, base: str) -> str:
    """base, or base-2, base-3, ...: the first name neither taken in root nor handed out before by this process, so
    two sessions starting a run at once never share its folder (never longer than 64 characters)."""
    base, root_key = sanitize_name(base), os.path.abspath(root)
    with _NAMES_LOCK:
        name, i = base, 2
        while os.path.lexists(Path(root) / name) or (root_key, name) in _HANDED_OUT:
            suffix = f"-{i}"
            name, i = f"{base[:64 - len(suffix)].rstrip('.-_')}{suffix}", i + 1
        _HANDED_OUT.add((root_key, name))
    return name
