"""Run storage: a run is one folder of safetensors + JSON, saved atomically and read back as untrusted input.

folder.py saves, loads, lists, renames and deletes run folders; checks.py reads every file of a run as untrusted
input; budget.py prices a run's work in memory before it is done; archive.py exports a run as a zip and imports an
uploaded one; kept_data.py keeps a run's training data read from files (content-addressed, shared by runs on the same
data, checked when read back). Below them all, names.py makes run names safe
and unique, and files.py holds the file operations they share (bounded reads, atomic writes, a staged folder moved
in). This module re-exports the public API.
"""
from .archive import export_zip, import_zip
from .checks import MODEL_FILE, OPTIMIZER_FILE, RUN_FILES, empty_history, load_config, model_skeleton
from .folder import (Run, RunSummary, default_runs_root, delete_run, list_runs, load_run, optimizer_to_tensors,
                     read_run_config, recover_runs, rename_run, save_run, tensors_to_optimizer_state)
from .names import resolve_run, sanitize_name, unique_run_name

__all__ = ["MODEL_FILE", "OPTIMIZER_FILE", "RUN_FILES", "Run", "RunSummary", "default_runs_root", "delete_run",
           "empty_history", "export_zip", "import_zip", "list_runs", "load_config", "load_run", "model_skeleton",
           "optimizer_to_tensors", "read_run_config", "recover_runs", "rename_run", "resolve_run", "sanitize_name",
           "save_run", "tensors_to_optimizer_state", "unique_run_name"]
