"""The Runs page's pieces: the table of runs, the selected run's actions (make active, download, rename, delete) and
its latent map epoch by epoch, the curves of several runs in one chart, the upload of a run zip, and the import of a
VAE from two ONNX files. Rename and delete ask ui/sharing.py first."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import streamlit as st

from ui.charts import OVERLAY_METRICS, overlay_figure
from ui.epoch_map_ui import epoch_map_ui
from ui.server import BUNDLED_RUN, BUNDLED_SUFFIX, job_pool, run_for, runs_root, same
from ui.sharing import note_created, note_deleted, note_renamed, run_in_use, why_not_change
from ui.state import active_dataset, run_dataset, set_active_run, upload_result
from ui.storage import forget_imported, note_imported, prune_imported
from vae_core.data import split_indices
from vae_core.epoch_maps import map_rows
from vae_core.imports import IMPORT_LIKELIHOODS
from vae_core.runs import RunSummary, delete_run, export_zip, import_zip, load_config, rename_run
from vae_core.runs.archive import unpacked_bytes
from vae_core.runs.kept_data import describe_kept, kept_digest, release

# --------------------------------------------------------------------------- what the buttons do


def say(level: str, message: str) -> None:
    """Leave a message ("success" or "error") for the next run of the page: a callback runs before the page draws."""
    st.session_state.runs_message = (level, message)


def message_ui() -> None:
    """The message the last action left, once."""
    if "runs_message" in st.session_state:
        level, message = st.session_state.pop("runs_message")
        (st.success if level == "success" else st.error)(message)


def activate_cb(label: str, path: Path) -> None:
    """Make the run this session's active model."""
    try:
        set_active_run(path)
        say("success", f"{label} is the active model")
    except ValueError as exc:
        say("error", str(exc))


def rename_cb(label: str, path: Path) -> None:
    """Rename (the name is sanitized; nothing can leave the runs folder) and keep it selected and active."""
    refused = why_not_change(path)  # checked again here: the page may be older than another session's action
    if refused:
        say("error", f"{label} was not renamed. {refused}")
        return
    try:
        new = rename_run(runs_root(), path.name, st.session_state.get("runs_new_name", ""))
    except (ValueError, OSError) as exc:
        say("error", str(exc))
        return
    note_renamed(path, new)
    forget_imported(runs_root(), path.name)  # a renamed import is kept like any other run
    if same(st.session_state.get("active_run"), path):
        st.session_state.active_run = str(new)
    st.session_state.runs_pick, st.session_state.runs_new_name = new.name, ""
    say("success", f"{label} renamed to {new.name}")


def jobs_kept_data() -> set[str]:
    """The kept copies the server's running jobs train on (their runs may not be saved yet): never removed."""
    return {d for job in job_pool().running().values() if (d := kept_digest(job.dataset.source)) is not None}


def delete_cb(label: str, path: Path) -> None:
    """Delete the run from disk; the bundled run becomes active if this one was."""
    refused = why_not_change(path)
    if refused:
        say("error", f"{label} was not deleted. {refused}")
        return
    try:
        delete_run(runs_root(), path.name, in_use=jobs_kept_data())
    except (ValueError, OSError) as exc:
        say("error", str(exc))
        return
    note_deleted(path)
    if same(st.session_state.get("active_run"), path):
        bundled = (BUNDLED_RUN / "model.safetensors").exists()
        st.session_state.active_run = str(BUNDLED_RUN) if bundled else None
    st.session_state.runs_confirm_delete = False
    st.session_state.pop("runs_pick", None)
    say("success", f"{label} deleted")


# --------------------------------------------------------------------------- the page's parts


TABLE_WIDTHS = {"active": 28, "run": 300, "dataset": 110, "arch": 56, "latent": 56, "epochs": 60, "val −ELBO": 80,
                "active units": 90, "saved": 132}  # px: 912 in all, within the main column at a 1400 px window


def table_ui(runs: dict[str, RunSummary]) -> None:
    """Every run in one table; ● marks the active model. Column widths are set (content-sized columns ran past the
    right edge at 1400 px); a longer name ends in … and shows whole on hover."""
    active = st.session_state.get("active_run")
    rows = [{"active": "●" if same(r.path, active) else "", "run": label, "dataset": r.dataset, "arch": r.arch,
             "latent": r.latent_dim, "epochs": r.epochs, "val −ELBO": r.val_neg_elbo, "active units": r.active_units,
             "saved": datetime.fromtimestamp(r.modified)} for label, r in runs.items()]
    config = {name: st.column_config.Column(width=px) for name, px in TABLE_WIDTHS.items()}
    config |= {
        "active": st.column_config.TextColumn("", width=TABLE_WIDTHS["active"]),
        "val −ELBO": st.column_config.NumberColumn(format="%.2f", width=TABLE_WIDTHS["val −ELBO"],
                                                    help="validation negative ELBO, nats per image (empty for a run "
                                                         "trained without a validation split)"),
        "saved": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm", width=TABLE_WIDTHS["saved"])}
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="runs_table", column_config=config)


def pick_ui(runs: dict[str, RunSummary]) -> str:
    """The selected run's label (a pick renamed or deleted since falls back to the first run)."""
    if st.session_state.get("runs_pick") not in runs:
        st.session_state.pop("runs_pick", None)
    return st.selectbox("Run", list(runs), key="runs_pick")


def actions_ui(label: str, run: RunSummary) -> None:
    """Make active, download; rename and delete where this session may (ui/sharing.py), else why not."""
    c1, c2 = st.columns(2)
    c1.button("Make active model", key="runs_activate", type="primary", icon=":material/check:",
              on_click=activate_cb, args=(label, run.path), width="stretch")
    c2.download_button("Download zip (safetensors + JSON)", lambda: export_zip(run.path), file_name=f"{run.name}.zip",
                       mime="application/zip", key="runs_download", on_click="ignore", icon=":material/download:",
                       width="stretch")
    kept_ui(run)
    refused = why_not_change(run.path)
    if label.endswith(BUNDLED_SUFFIX):
        st.caption(refused)
        return
    busy = refused is not None
    if busy:
        st.caption(f":material/lock: {refused}")
    r1, r2 = st.columns([3, 1], vertical_alignment="bottom")
    r1.text_input("New name", key="runs_new_name", placeholder=run.name, disabled=busy,
                  help="Letters, digits, '-', '_' and '.'; anything else becomes '-'")
    r2.button("Rename", key="runs_rename", on_click=rename_cb, args=(label, run.path), width="stretch",
              disabled=busy or not st.session_state.get("runs_new_name"))
    d1, d2 = st.columns([3, 1], vertical_alignment="bottom")
    confirm = d1.checkbox(f"Yes, delete {run.name} from disk", key="runs_confirm_delete", disabled=busy)
    d2.button("Delete", key="runs_delete", icon=":material/delete:", on_click=delete_cb, args=(label, run.path),
              disabled=busy or not confirm, width="stretch")


def kept_ui(run: RunSummary) -> None:
    """Whether the run keeps the data it was trained on from files (vae_core/runs/kept_data.py), and if not, why."""
    try:
        line = describe_kept(load_config(run.path).dataset, runs_root())
    except (ValueError, OSError):
        return
    if line:
        st.caption(f":material/inventory_2: {line}")


def latent_map_replay_ui(run: RunSummary) -> None:
    """The selected run's latent map epoch by epoch (ui/epoch_map_ui.py: a scrubber, GIF and PNG), if it kept one."""
    try:
        loaded = run_for(run.path)
        dataset = run_dataset(loaded)
        train = loaded.config.train
        rows = map_rows(split_indices(dataset.n, train.val_fraction, train.seed)[1], train.seed)
    except (ValueError, OSError) as exc:
        st.caption(f"Latent map per epoch: {exc}")
        return
    same_data = dataset.shape == loaded.config.model.input_shape  # else its classes are not the map's
    epoch_map_ui(loaded.history.get("epochs", []), dataset if same_data else None, rows, key="runs_epoch_map",
                 live=False, name=loaded.name)


def overlay_ui(runs: dict[str, RunSummary]) -> None:
    """One metric of several runs in one chart."""
    if "runs_overlay" in st.session_state:  # runs renamed or deleted since
        st.session_state.runs_overlay = [label for label in st.session_state.runs_overlay if label in runs]
    c1, c2, c3 = st.columns([3.5, 2, 1.5], vertical_alignment="bottom")  # room for both x-axis buttons at 1400 px
    labels = c1.multiselect("Runs", list(runs), default=list(runs)[:3], key="runs_overlay", persist_state="session")
    metric = c2.selectbox("Metric", list(OVERLAY_METRICS), key="runs_overlay_metric", persist_state="session")
    x_axis = c3.segmented_control("x axis", ["epoch", "step"], default="epoch", key="runs_overlay_x", required=True,
                                  persist_state="session")
    histories = {}
    for label in labels:
        try:
            histories[label] = run_for(runs[label].path).history
        except (ValueError, OSError) as exc:
            st.warning(f"{label}: {exc}")
    if histories:
        st.plotly_chart(overlay_figure(histories, metric, x_axis or "epoch"), key="runs_overlay_chart")
    table, key = OVERLAY_METRICS[metric]
    missing = [label for label, h in histories.items() if not any(r.get(key) is not None for r in h.get(table, []))]
    if missing:
        st.caption(f"No {metric} for {', '.join(missing)}: trained without a validation split, or no epoch done yet.")


def import_upload(upload) -> str:
    """Import an uploaded run zip; this session created it (it may rename and delete it). Its new name."""
    # old imports nobody uses make room for what the zip unpacks to (its JSON compresses well)
    if prune_imported(runs_root(), run_in_use, incoming=unpacked_bytes(upload.getvalue())):
        release(runs_root(), jobs_kept_data())  # with the kept data no run names any more
    path = import_zip(upload.getvalue(), runs_root(), zip_name=upload.name)
    note_created(path)
    note_imported(runs_root(), path.name)
    return path.name


def upload_ui() -> None:
    """The uploader of a run zip, and what became of the last upload."""
    upload = st.file_uploader("A run zip exported by this app", type=["zip"], key="runs_upload",
                              help="Only safetensors + JSON are accepted; pickled checkpoints are refused")
    result = upload_result("runs_upload_result", [upload] if upload else [], lambda: "Imported as " + import_upload(upload))
    if result is not None:
        (st.success if result[0] == "success" else st.error)(result[1])


# --------------------------------------------------------------------------- a VAE trained elsewhere, from ONNX


def onnx_import(encoder, decoder, shape: tuple[int, int, int], likelihood_name: str) -> str:
    """Import two uploaded ONNX files as a new run of the runs folder (vae_core/imports/), recorded with the active
    dataset when its images have the model's shape; this session created it. Its new name."""
    from vae_core.imports.onnx_run import import_onnx_uploads  # here: onnx takes seconds to import

    try:
        data = active_dataset()
        dataset = data.source | {"name": data.name} if tuple(data.shape) == shape else None
    except ValueError:
        dataset = None
    incoming = len(encoder.getvalue()) + len(decoder.getvalue())
    prune_imported(runs_root(), run_in_use, incoming=incoming)  # old imports nobody uses make room
    path = import_onnx_uploads((encoder.name, encoder.getvalue()), (decoder.name, decoder.getvalue()), shape,
                               likelihood_name, runs_root(), dataset)
    note_created(path)
    note_imported(runs_root(), path.name)
    return path.name


def onnx_import_ui() -> None:
    """The form that imports a VAE exported elsewhere as two ONNX files (python -m vae_core.import_onnx's fields)."""
    with st.form("runs_onnx_form", border=False):
        c1, c2 = st.columns(2)
        encoder = c1.file_uploader("Encoder (.onnx): x → μ, log σ²", type=["onnx"], key="runs_onnx_encoder")
        decoder = c2.file_uploader("Decoder (.onnx): z → logits or mean", type=["onnx"], key="runs_onnx_decoder")
        cols = st.columns(4)
        shape = tuple(int(col.number_input(label, 1, 4096, value, key=f"runs_onnx_{label.lower()}"))
                      for col, label, value in zip(cols, ("Channels", "Height", "Width"), (1, 28, 28)))
        likelihood_name = cols[3].selectbox("Likelihood", IMPORT_LIKELIHOODS, key="runs_onnx_likelihood",
                                            help="bernoulli: the decoder gives logits (a final Sigmoid is taken "
                                                 "off); gaussian: it gives the mean")
        submitted = st.form_submit_button(
            "Import", key="runs_onnx_import", icon=":material/upload:",
            help="Files exported with torch.onnx.export (no external data). Linear, convolution and transposed "
                 "convolution layers with ReLU, LeakyReLU, Sigmoid or Tanh are explored in the browser like this "
                 "app's own runs; any other op is refused by name. An imported model is explored, never trained here.")
    if not submitted:
        return
    if encoder is None or decoder is None:
        st.error("Upload both the encoder and the decoder")
        return
    try:
        st.success(f"Imported as {onnx_import(encoder, decoder, shape, likelihood_name)}")
    except ValueError as exc:
        st.error(str(exc))
