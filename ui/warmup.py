"""Once the first page is drawn, import in a background thread what the other pages need (pandas, plotly, the charts,
openTSNE's t-SNE), so a first visit to Train, Data or Runs does not wait for ~2 s of imports. The first page
itself imports none of them: that is what keeps the cold start short."""
from __future__ import annotations

import importlib
import threading

MODULES = ("pandas", "plotly.graph_objects", "ui.charts", "sklearn.manifold", "openTSNE")
_lock = threading.Lock()
_thread: threading.Thread | None = None


def warm_imports() -> threading.Thread:
    """Start the import thread once per server process; returns it (tests join it)."""
    global _thread
    with _lock:
        if _thread is None:
            _thread = threading.Thread(target=_import_all, name="vae-warm-imports", daemon=True)
            _thread.start()
        return _thread


def settle() -> None:
    """Wait until the import thread (if started) is done. Call it before importing these modules in a script run,
    and before Streamlit elements that import pandas themselves (charts, dataframes): two threads importing
    pandas and pyarrow in opposite orders meet CPython's import-deadlock check, and one of them gets a partially
    initialised module ("partially initialized module 'pandas'", seen on Explore's views right after a cold start).
    It costs nothing once the thread has finished, and no more than the import itself before."""
    thread = _thread
    if thread is not None and thread is not threading.current_thread():
        thread.join()


def _import_all() -> None:
    for name in MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a page that needs the module will raise the error where it is used
            pass
