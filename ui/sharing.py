"""What one browser session may change on a server that several share (the README's "Sharing a server").

- Every run is readable by every session: list, compare, download, make active, explore.
- A run can be renamed or deleted only by the session that created it (trained or imported it here), and never while
  any session trains into it or has it as its active model. A run without a living creator (its session ended, or it
  was there before this server started) can be changed on a loopback server (one person), not on a shared one.
- The bundled run is read-only.
- Uploaded data files belong to the sessions that uploaded them: a run trained on another session's upload opens with
  the viewer's own data instead, unless the run kept a copy of its data (vae_core/runs/kept_data.py): the copy is
  part of the run, readable wherever the run is (ui/state.py run_own_dataset).

The registry lives in the server's memory (ui/server.py, where no client message can clear it): a restart forgets
creators, which the rule above covers. Session liveness is Streamlit's own (ui.server.session_is_alive)."""
from __future__ import annotations

from pathlib import Path

from ui.access import serves_beyond_loopback
from ui.server import BUNDLED_RUN, job_pool, registry, session_id, session_is_alive, uploads_root


MAX_REMEMBERED = 256  # active runs remembered before those of ended sessions are forgotten


def _key(path: str | Path) -> str:
    return str(Path(path).resolve())


def note_created(path: str | Path, sid: str | None = None) -> None:
    reg = registry()
    with reg.lock:
        reg.creators[_key(path)] = sid or session_id()


def note_active(path: str | Path | None, sid: str | None = None) -> None:
    reg = registry()
    with reg.lock:
        if path:
            reg.active[sid or session_id()] = _key(path)
        else:
            reg.active.pop(sid or session_id(), None)
        if len(reg.active) > MAX_REMEMBERED:  # forget sessions that have ended
            reg.active = {s: p for s, p in reg.active.items() if session_is_alive(s)}


def note_renamed(old: str | Path, new: str | Path) -> None:
    reg = registry()
    old_key, new_key = _key(old), _key(new)
    with reg.lock:
        if old_key in reg.creators:
            reg.creators[new_key] = reg.creators.pop(old_key)
        for sid, path in reg.active.items():
            if path == old_key:
                reg.active[sid] = new_key


def note_deleted(path: str | Path) -> None:
    reg = registry()
    with reg.lock:
        reg.creators.pop(_key(path), None)


def note_upload(folder: str | Path, sid: str | None = None) -> None:
    reg = registry()
    with reg.lock:
        reg.uploaders.setdefault(_key(folder), set()).add(sid or session_id())


def created_elsewhere(path: str | Path, sid: str | None = None) -> bool:
    """Whether another session that is still connected created this run."""
    reg = registry()
    with reg.lock:
        creator = reg.creators.get(_key(path))
    return creator is not None and creator != (sid or session_id()) and session_is_alive(creator)


def why_not_change(path: str | Path, sid: str | None = None) -> str | None:
    """None when this session may rename or delete the run at path, else the reason, in words for the Runs page."""
    sid, key, reg = sid or session_id(), _key(path), registry()
    if key == _key(BUNDLED_RUN):
        return "The bundled run ships with the app: it cannot be renamed or deleted."
    for owner, job in job_pool().running().items():
        if job.run_dir is not None and _key(job.run_dir) == key:
            who = "this session" if owner == sid else "another session"
            return f"This run is being trained by {who}: stop the job to rename or delete it."
    with reg.lock:
        creator = reg.creators.get(key)
        users = [s for s, p in reg.active.items() if p == key and s != sid]
    if any(session_is_alive(s) for s in users):
        return "Another session has this run as its active model: it cannot be renamed or deleted while in use."
    if creator == sid:
        return None
    if creator is not None and session_is_alive(creator):
        return "Another session created this run: only that session can rename or delete it."
    if serves_beyond_loopback():
        return ("This run was not created by this session (its session has ended, or it was here before the server "
                "started): on a shared server, remove it from the runs folder on disk.")
    return None


def run_in_use(path: str | Path) -> bool:
    """Whether a job trains into this run, a connected session has it active, or its creator is still connected."""
    key, reg = _key(path), registry()
    if any(job.run_dir is not None and _key(job.run_dir) == key for job in job_pool().running().values()):
        return True
    with reg.lock:
        sessions = [s for s, p in reg.active.items() if p == key] + [reg.creators.get(key)] * (key in reg.creators)
    return any(session_is_alive(s) for s in sessions)


def upload_in_use(folder: str | Path) -> bool:
    """Whether a connected session uploaded this folder's files or a training job reads them."""
    key, reg = _key(folder), registry()
    for job in job_pool().running().values():
        source = job.dataset.source
        if isinstance(source, dict) and any(_key(Path(source[k]).parent) == key
                                            for k in ("path", "labels_path") if source.get(k)):
            return True
    with reg.lock:
        sessions = list(reg.uploaders.get(key, ()))
    return any(session_is_alive(s) for s in sessions)


def upload_visible(source: str | dict, sid: str | None = None) -> bool:
    """Whether this session may read a data source: anything but another session's upload."""
    if not isinstance(source, dict) or "path" not in source:
        return True
    root = _key(uploads_root())
    folders = {_key(Path(source[k]).parent) for k in ("path", "labels_path") if source.get(k)}
    mine, reg = sid or session_id(), registry()
    with reg.lock:
        return all(mine in reg.uploaders.get(f, ()) for f in folders if f.startswith(root + "/"))
