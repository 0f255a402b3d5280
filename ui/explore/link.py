"""A link that restores an Explore view: the run, the data, the projection and its settings, the colouring, z and the
open tab live in the URL's query parameters, so a copied address opens the same view in another session on the same
server — or says why it cannot (the run is gone, the data is another session's upload).

Nothing in a URL is trusted: a run is looked up by its name among the runs this server lists (never a path), a
dataset is rebuilt only from a source that reads no files, with each option inside the range the Data page offers,
and every value a widget takes is checked against that widget's options before it is used (a value that fails is
named in the page's note and the default stays)."""
from __future__ import annotations

import streamlit as st

from ui.explore.projection import colour_options, setting_key
from ui.explore.state import MAX_URL_DIMS, current_z, format_z, put
from ui.explore.views import TABS
from ui.server import BUNDLED_RUN, BUNDLED_SUFFIX, all_runs, same
from ui.sharing import note_active
from ui.state import set_active_dataset, set_active_run
from vae_core.data import Dataset
from vae_core.data.sources import SOURCES, source_entry
from vae_core.projections import methods_for, projection_method
from vae_core.runs import Run

RUN, DATA, METHOD, COLOUR, TAB, Z, SAMPLE = "run", "data", "method", "colour", "tab", "z", "sample"
SETTING = "p_"  # a projection setting: p_<name> (e.g. p_perplexity)
APPLIED = "explore_link_applied"  # this session has read its first URL (once: later changes are the user's)
NOTES = "explore_link_notes"  # what the link asked for that this session could not show, and why
WHY_NOT_DATA = "explore_link_data_refused"  # why the link's data could not be loaded here
SHOWN = "explore_link_notes_shown"  # the notes last shown, shown again on the background encoding's reruns
TAB_KEY, TAB_WIDGET = "explore_tab", "w_explore_tab"  # ui/explore/views.py's tabs (a plain copy, and the widget)


# --------------------------------------------------------------------------- what the URL says of a dataset

def data_word(dataset: Dataset) -> str:
    """The URL's name of a dataset: a source that reads no file with its options ("shapes:n=300,seed=0,size=32"),
    or "file:<name>" for data from files, which a link names but cannot bring along."""
    source = dataset.source if isinstance(dataset.source, dict) else {"kind": str(dataset.source)}
    kind = str(source.get("kind", ""))
    entry = SOURCES.get(kind)
    if entry is None or entry.reads_files:
        return f"file:{dataset.name}"
    options = ",".join(f"{o.name}={int(source.get(o.name, o.default))}" for o in sorted(entry.options,
                                                                                        key=lambda o: o.name))
    return f"{kind}:{options}" if options else kind


def source_from_word(word: str) -> dict:
    """The source dict a URL's data word names, or a ValueError saying why it cannot be rebuilt here."""
    kind, _, rest = word.partition(":")
    if kind == "file":
        raise ValueError(f"its data ({rest or 'a file'}) was loaded from a file in another session: load it on the "
                         "Data page")
    entry = source_entry(kind)  # an unknown kind: a ValueError listing the known ones
    if entry.reads_files:
        raise ValueError(f"its data source {kind!r} reads files, which a link cannot name")
    options = {o.name: o for o in entry.options}
    source: dict = {"kind": kind}
    for pair in filter(None, rest.split(",")):
        name, _, text = pair.partition("=")
        if name not in options:
            raise ValueError(f"data source {kind!r} has no option {name!r}")
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"data option {name}={text!r} is not a whole number") from None
        option = options[name]
        if not option.low <= value <= option.high:
            raise ValueError(f"data option {name}={value} is outside {option.low}..{option.high}")
        source[name] = value
    return source


# --------------------------------------------------------------------------- reading a link (once per session)

def restore_from_link() -> None:
    """On this session's first Explore run: make the link's run and data active and put its settings where the
    widgets read them. What cannot be restored is remembered, with why, for link_notes_ui."""
    if st.session_state.get(APPLIED):
        return
    st.session_state[APPLIED] = "fresh"  # link_notes_ui checks what the page then shows, once
    params = st.query_params
    notes: list[str] = []
    if params.get(RUN):
        notes += _restore_run(params[RUN])
    if params.get(DATA):
        try:
            set_active_dataset(source_from_word(params[DATA]))
        except ValueError as exc:  # said by link_notes_ui if the page then shows other data (a run's kept copy may fit)
            st.session_state[WHY_NOT_DATA] = str(exc)
    if params.get(METHOD):
        notes += _restore_projection(params[METHOD], params)
    if params.get(SAMPLE) in ("0", "1"):
        put("explore_sample", params[SAMPLE] == "1")
    if params.get(COLOUR):
        put("explore_colour", params[COLOUR])  # checked against this data's colourings when drawn
    if params.get(TAB) in TABS:
        st.session_state[TAB_KEY] = params[TAB]
        st.session_state.pop(TAB_WIDGET, None)  # the tabs read their plain copy (ui/explore/views.py)
    elif params.get(TAB):
        notes.append(f"The link's tab ({params[TAB]}) is not one of Explore's.")
    st.session_state[NOTES] = notes


def _restore_run(name: str) -> list[str]:
    runs = all_runs()
    summary = runs.get(name)
    if summary is None:
        return [f"The link's run **{name}** is not on this server (renamed or deleted): showing the active model."]
    if not same(st.session_state.get("active_run"), summary.path):
        try:
            set_active_run(summary.path)
        except ValueError as exc:
            return [f"The link's run **{name}** cannot be opened: {exc}"]
        note_active(summary.path)
    return []


def _restore_projection(method: str, params) -> list[str]:
    """The projection and its settings (each checked against what its widget offers)."""
    try:
        spec = projection_method(method)
    except ValueError:
        return []  # said by link_notes_ui, which knows the methods this model offers
    put("explore_method", spec.name)
    notes = []
    for p in spec.params:
        text = params.get(SETTING + p.name)
        if text is None:
            continue
        value = _axes(text) if p.kind == "axes" else _setting(p, text)
        if value is None:
            notes.append(f"The link's {p.label.split(' (')[0].lower()} ({text}) is not a value it takes.")
        elif p.kind == "axes":
            put("explore_x", value[0])
            put("explore_y", value[1])
        else:
            put(setting_key(spec.name, p.name), value)
    return notes


def _setting(p, text: str):
    """A projection setting from the URL, or None when it is not a value its widget offers."""
    if p.kind == "choice":
        match = [c for c in p.choices if str(c) == text]
        return match[0] if match else None
    try:
        value = float(text)
    except ValueError:
        return None
    if isinstance(p.default, int) and value.is_integer():
        value = int(value)
    if (p.low is not None and value < p.low) or (p.high is not None and value > p.high):
        return None
    return value


def _axes(text: str) -> list[int] | None:
    try:
        x, y = (int(v) for v in text.split(","))
    except ValueError:
        return None
    return [x, y] if x != y and min(x, y) >= 0 else None


def link_notes_ui(dataset: Dataset, latent_dim: int, again: bool = False) -> None:
    """Say what the link asked for that this view cannot show, and why (once: later views are the user's; again on a
    run the user did not ask for, the background encoding's, so that the map below does not move up)."""
    notes = list(st.session_state.pop(NOTES, None) or [])
    if not notes and st.session_state.get(APPLIED) != "fresh":
        shown = st.session_state[SHOWN] = st.session_state.get(SHOWN) if again else None
        if shown:
            st.warning(shown, icon=":material/link_off:")
        return
    st.session_state[APPLIED] = True
    params = st.query_params
    wanted, why = params.get(DATA), st.session_state.pop(WHY_NOT_DATA, None)
    if wanted and wanted != data_word(dataset):
        notes.append(f"The link showed other data ({wanted}){': ' + why if why else ''}; this view shows "
                     f"{dataset.name}.")
    methods = [m.name for m in methods_for(latent_dim)]
    if params.get(METHOD) and params[METHOD] not in methods:
        notes.append(f"The link's projection ({params[METHOD]}) is not offered for this model.")
    if params.get(COLOUR) and params[COLOUR] not in colour_options(dataset):
        notes.append(f"The link's colouring ({params[COLOUR]}) does not apply to this data.")
    st.session_state[SHOWN] = " ".join(notes)
    if notes:
        st.warning(st.session_state[SHOWN], icon=":material/link_off:")


# --------------------------------------------------------------------------- writing the link

def run_word(run: Run) -> str:
    """The URL's name of a run: its name in the Runs page's list (the bundled run's label has its suffix)."""
    return run.name + BUNDLED_SUFFIX if same(run.path, BUNDLED_RUN) else run.name


def sync_link(run: Run, dataset: Dataset, method: str) -> None:
    """Mirror the view in the URL (only the parameters that changed), so the address bar is always a link to it."""
    wanted = {RUN: run_word(run), DATA: data_word(dataset), METHOD: method,
              COLOUR: str(st.session_state.get("explore_colour", "")), TAB: str(st.session_state.get(TAB_KEY, "")),
              SAMPLE: "1" if st.session_state.get("explore_sample") else "0"}
    z = current_z()
    if len(z) <= MAX_URL_DIMS:
        wanted[Z] = format_z(z)
    for p in projection_method(method).params:
        if p.kind == "axes":
            value = [st.session_state.get("explore_x"), st.session_state.get("explore_y")]
            value = None if None in value else ",".join(str(int(v)) for v in value)
        else:
            value = st.session_state.get(setting_key(method, p.name))
        if value is not None:
            wanted[SETTING + p.name] = str(value)
    for name in [k for k in st.query_params if k.startswith(SETTING) and k not in wanted]:
        del st.query_params[name]  # another method's settings
    for name, value in wanted.items():
        if value and st.query_params.get(name) != value:
            st.query_params[name] = value
