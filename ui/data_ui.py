"""The Data page's pieces: the source chooser and each source's controls (the file options too: resize on load,
class folder levels), drawn from the engine's sources table (vae_core/data/sources.py), saving uploads, and the active
dataset's summary with what was inferred and the loader's note."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
from ui.warmup import settle

settle()  # the warm-up thread may be importing pandas right now (see ui/warmup.py)
import pandas as pd
import streamlit as st

from ui.images import to_uint8
from ui.server import dataset_for, uploads_root
from ui.sharing import note_upload, upload_in_use
from ui.state import set_active_dataset, upload_result
from ui.storage import check_upload, prune_uploads
from vae_core.data import (FILES_KIND, RESIZE, SOURCES, Dataset, DataSource, file_kind, file_options,
                           source_named, suggested_resize)
from vae_core.runs import sanitize_name

UPLOAD = "upload"  # the Source control's value for the source that reads files: the browser uploads them
N_SAMPLES = 32
LABELS_HINTS = ("label", "idx1")  # how an IDX labels file is told from its images file


def choice(source: DataSource) -> str:
    """A source's value in the Source control: its name, or UPLOAD for the source that reads files."""
    return UPLOAD if source.reads_files else source.name


CHOICES = {choice(source): source for source in SOURCES.values()}  # the Source control's options, in table order


def source_choice(source: str | dict) -> str:
    """The Source control's value for a session's dataset source (a name, a path or a source dict)."""
    kind = source.get("kind", FILES_KIND) if isinstance(source, dict) else source
    return kind if isinstance(kind, str) and source_named(kind) else UPLOAD


def source_choice_ui() -> str:
    """The Source control (one option per source of the table); returns the chosen value."""
    st.session_state.setdefault("data_kind", source_choice(st.session_state.dataset_source))
    return st.segmented_control("Source", list(CHOICES), format_func=lambda c: CHOICES[c].label, key="data_kind",
                                required=True, persist_state="session")


def activate(source: str | dict, what: str) -> str:
    """Make source the active dataset (ValueError: the previous one stays active); a message saying so."""
    dataset = set_active_dataset(source)
    return f"Active dataset: {what} ({dataset.n:,} images)"


def show(level: str, message: str) -> None:
    if level == "success":
        st.success(message, icon=":material/check_circle:")
    else:
        st.error(message, icon=":material/error:")


def activate_cb(source: str | dict, what: str) -> None:
    """Button callback (runs before the page, so the sidebar already shows the new dataset); keeps the outcome."""
    try:
        st.session_state.data_message = ("success", activate(source, what))
    except ValueError as exc:
        st.session_state.data_message = ("error", str(exc))


def message_ui() -> None:
    """The outcome of the last button, once."""
    if "data_message" in st.session_state:
        show(*st.session_state.pop("data_message"))


def options_source(source: DataSource) -> dict:
    """The source dict of a source at the options its form holds (widget keys {name}_{option})."""
    s = st.session_state
    return {"kind": source.name, **{o.name: int(s[f"{source.name}_{o.name}"]) for o in source.options}}


def source_ui(source: DataSource) -> None:
    """A source that reads no file: its caption, a form of its options (if any) and the button that loads it."""
    st.caption(source.description)
    what = source.label[:1].lower() + source.label[1:]  # "bundled digits", for the message
    if not source.options:
        st.button(source.action, key=f"data_use_{source.name}", type="primary", on_click=activate_cb,
                  args=(source.name, what))
        return
    with st.form(f"{source.name}_form", border=False):
        for column, o in zip(st.columns(len(source.options)), source.options):
            column.number_input(o.label, o.low, o.high, o.default, step=o.step, key=f"{source.name}_{o.name}",
                                persist_state="session")
        st.form_submit_button(source.action, key=f"data_use_{source.name}", type="primary",
                              on_click=lambda: activate_cb(options_source(source), what))


def file_options_ui(source: DataSource) -> dict:
    """The file options of the source that reads files (widget keys {name}_{option}); those set, for its dict."""
    for column, o in zip(st.columns(len(source.options)), source.options):
        column.number_input(o.label, o.low, o.high, o.default, step=o.step, key=f"{source.name}_{o.name}", help=o.help,
                            persist_state="session")
    return file_options({o.name: st.session_state[f"{source.name}_{o.name}"] for o in source.options})


def upload_ui(source: DataSource) -> None:
    """The source that reads files: its options and an uploader; a new set of files (or new options for them) is
    saved and becomes the active dataset."""
    st.caption(source.description)
    options = file_options_ui(source)
    files = st.file_uploader("Data files", accept_multiple_files=True, key="data_upload",
                             help="Any extension: the type is read from the file's first bytes")
    before = st.session_state.dataset_source
    key = "data_upload_result" + (json.dumps(options, sort_keys=True) if options else "")  # new options: load again
    result = upload_result(key, files,
                           lambda: activate(save_uploads(files, options), ", ".join(f.name for f in files)))
    if result is not None and st.session_state.dataset_source != before:
        st.rerun()  # redraw the sidebar with the new dataset; the message is remembered
    if result is not None:
        show(*result)


def save_uploads(files: list, options: dict | None = None) -> dict:
    """Write uploaded files to uploads_root()/<sha256 prefix>/<sanitized name> and describe them as a data source;
    their count and size are checked first, and old uploads nobody uses make room (ui/storage.py)."""
    size = check_upload(files)
    digest = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.name):
        digest.update(f.name.encode() + b"\0" + f.getvalue())
    folder = uploads_root() / digest.hexdigest()[:16]
    prune_uploads(uploads_root(), upload_in_use, incoming=0 if folder.is_dir() else size)
    folder.mkdir(parents=True, exist_ok=True)
    os.utime(folder)  # used now: the cleaner removes the least recently used first
    note_upload(folder)  # private to the sessions that uploaded it (ui/sharing.py)
    paths = [_write_once(folder / sanitize_name(f.name), f.getvalue()) for f in files]
    return upload_source(paths, options)


def _write_once(path: Path, data: bytes) -> Path:
    """Write data to path through a temporary file (content-addressed folder: an existing file is already right)."""
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    return path


def upload_source(paths: list[Path], options: dict | None = None) -> dict:
    """One data file, or an IDX images file with its labels file, as a source dict for load_source, with the file
    options its kind takes."""
    if len(paths) == 1:
        takes = file_kind(paths[0]).options
        return {"kind": FILES_KIND, "path": str(paths[0]), **{k: v for k, v in (options or {}).items() if k in takes}}
    labels = [p for p in paths if any(hint in p.name.lower() for hint in LABELS_HINTS)]
    if len(paths) == 2 and len(labels) == 1:
        images = next(p for p in paths if p != labels[0])
        return {"kind": FILES_KIND, "path": str(images), "labels_path": str(labels[0])}
    names = ", ".join(p.name for p in paths)
    raise ValueError(f"{names}: upload one data file (.npy, .npz, a .zip of images, an IDX file), or an IDX images "
                     "file together with its labels file (whose name contains 'labels' or 'idx1')")


@st.cache_data(max_entries=16, show_spinner="Summarising the dataset…")
def describe(source_json: str) -> dict:
    """Dataset.describe() of a source, once per source."""
    return dataset_for(json.loads(source_json)).describe()


def sample_captions(dataset: Dataset, idx: np.ndarray) -> list[str]:
    """Each sample's class name (or label, or row number when unlabelled)."""
    if dataset.labels is None:
        return [f"#{i}" for i in idx]
    names = dataset.class_names or []
    return [names[label] if label < len(names) else str(label) for label in dataset.labels[idx]]


def summary_ui(dataset: Dataset) -> None:
    """Counts, shape and range, a grid of samples with labels, and images per class."""
    info = describe(json.dumps(dataset.source, sort_keys=True))
    c, h, w = info["shape"]
    m = st.columns(4)
    m[0].metric("Images", f"{info['n']:,}")
    m[1].metric("Shape (C×H×W)", f"{c}×{h}×{w}")
    m[2].metric("Classes", info["n_classes"] or "unlabelled")
    m[3].metric("Value range", f"{info['min']:.2f} … {info['max']:.2f}")
    st.caption(f"Inferred: {dataset.summary()}")
    if dataset.note:
        st.info(dataset.note, icon=":material/info:")
    side = suggested_resize(dataset)
    if side:
        st.info(f"The images are {h}×{w} pixels: set **{RESIZE.label}** to {side} under Upload files (with the files "
                "uploaded) to train on fewer pixels, faster.", icon=":material/photo_size_select_large:")
    if dataset.factor_names:
        st.caption("Generating factors: " + ", ".join(dataset.factor_names))
    idx = np.sort(np.random.default_rng(0).choice(dataset.n, min(N_SAMPLES, dataset.n), replace=False))
    images = dataset.batch(idx)
    st.markdown("**Samples**")
    st.image([to_uint8(x, scale=max(1, 64 // h)) for x in images], caption=sample_captions(dataset, idx), width=64)
    if info["class_counts"]:
        st.markdown("**Images per class**")
        counts = pd.DataFrame({"class": list(info["class_counts"]), "images": list(info["class_counts"].values())})
        st.bar_chart(counts, x="class", y="images", sort=False, height=240)
