"""The live Explore view: one st.components.v2 component (inline HTML/CSS and the JS files of this folder joined in
order, no build step) mounted as several parts of one instrument in the browser: "panel" (latent sliders, image,
traversal strip), "map" (the projection), "pad" (draw to encode), "grid" (traversals and the manifold, the views below) and "server" (an image decoded on
the server); a second, tiny component, the relay, hands
them a z the server moved in a fragment of their own (the server sliders'). Everything that moves with z runs there; Python
learns the final z when a gesture ends.

Each mount's data is a bundle: b"VAE1", the header's length (uint32 LE), a JSON header {view, assets}, then the
assets' arrays. An asset (a model, a map, a colouring) is named by its content hash and travels once per browser
tab: later mounts name it in view["assets"] and leave it out; a tab that lost one asks for it again ("need").
In the page's DOM (isolate_styles=False): `div.vx-root[data-role][data-state="ready"]`; window.__vaeExplore holds
the test hooks (decode, encode, timing, star, pointOnScreen)."""
from __future__ import annotations

import functools
import hashlib
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import streamlit as st

HERE = Path(__file__).resolve().parent
JS_FILES = ("gemm.js", "network.js", "explorer.js", "grid.js", "panel.js", "map_place.js", "map_index.js",
            "map_images.js", "map_draw.js", "map_gestures.js", "map.js", "pad.js", "attribute.js", "compare.js",
            "main.js")  # in load order
SENT = "explore_live_sent"  # hashes of the assets this session's browser holds
MAGIC = b"VAE1"
DTYPES = {np.dtype(np.float32): "f4", np.dtype(np.int32): "i4", np.dtype(np.int16): "i2",
          np.dtype(np.uint16): "u2", np.dtype(np.uint8): "u1"}
CODES = {code: dtype for dtype, code in DTYPES.items()}


@dataclass(frozen=True, eq=False)
class Asset:
    """Data the browser keeps by content hash: meta (JSON) and named arrays (float32, int32/16, uint16/8)."""

    kind: str
    meta: dict
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    @functools.cached_property
    def hash(self) -> str:
        digest = hashlib.sha1(self.kind.encode() + json.dumps(self.meta, sort_keys=True).encode())
        for name in sorted(self.arrays):
            digest.update(name.encode() + np.ascontiguousarray(self.arrays[name]).tobytes())
        return digest.hexdigest()[:16]

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays.values())


def bundle(view: dict, assets: list[Asset]) -> bytes:
    """One mount's data: the view and the assets' arrays (each 8-byte aligned within its asset)."""
    header: dict = {"view": view, "assets": {}}
    blobs: list[bytes] = []
    offset = 0
    for asset in assets:
        table, local = {}, 0
        for name, array in asset.arrays.items():
            array = np.ascontiguousarray(array)
            if array.dtype not in DTYPES:
                raise ValueError(f"asset array {name!r} has dtype {array.dtype}, not one of {sorted(CODES)}")
            raw = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
            raw += b"\0" * (-len(raw) % 8)
            table[name] = [DTYPES[array.dtype], local, int(array.size)]
            blobs.append(raw)
            local += len(raw)
        header["assets"][asset.hash] = {"kind": asset.kind, "meta": asset.meta, "arrays": table, "offset": offset,
                                        "length": local}
        offset += local
    head = json.dumps(header, separators=(",", ":")).encode()
    return MAGIC + struct.pack("<I", len(head)) + head + b"".join(blobs)


def parse_bundle(data: bytes) -> tuple[dict, dict[str, Asset]]:
    """The inverse of bundle (what the browser reads): (view, {hash: asset})."""
    if data[:4] != MAGIC:
        raise ValueError("not an Explore bundle")
    (length,) = struct.unpack("<I", data[4:8])
    header = json.loads(data[8:8 + length])
    base, assets = 8 + length, {}
    for digest, entry in header["assets"].items():
        start = base + entry["offset"]
        arrays = {name: np.frombuffer(data, CODES[code].newbyteorder("<"), count, start + at)
                  for name, (code, at, count) in entry["arrays"].items()}
        assets[digest] = Asset(entry["kind"], entry["meta"], arrays)
    return header["view"], assets


@functools.cache
def _component():
    read = lambda name: (HERE / name).read_text(encoding="utf-8")  # noqa: E731
    js = "\n".join(f"// ---- {name}\n{read(name)}" for name in JS_FILES)
    return st.components.v2.component("vae_explore", html=read("explore.html"), css=read("explore.css"), js=js,
                                      isolate_styles=False)


@functools.cache
def _relay_component():
    return st.components.v2.component("vae_explore_relay", js=(HERE / "relay.js").read_text(encoding="utf-8"))


def relay(key: str, view: dict) -> None:
    """Hand the live parts of the page (in another fragment) the z the server moved, and the image it decoded there
    if any: view has group, z, z_version, image (None or server_image's dict)."""
    _relay_component()(key=key, data={name: view.get(name) for name in ("group", "z", "z_version", "image")}, height=0)


@functools.cache
def _reveal_component():
    return st.components.v2.component("vae_explore_reveal", html='<div class="vx-reveal"></div>',
                                      js=(HERE / "reveal.js").read_text(encoding="utf-8"))


def reveal(key: str, on_seen: Callable[[], None]) -> None:
    """A marker that calls on_seen (and reruns its fragment) once the browser has it on screen or nearly (reveal.js)."""
    _reveal_component()(key=key, on_seen_change=on_seen)


def mount(role: str, key: str, view: dict, assets: dict[str, Asset], on_z: Callable[[dict], None],
          on_select: Callable[[dict], None] | None = None) -> None:
    """Mount one part. view: what it shows now (z, z_version, group and the role's own fields); assets: name ->
    Asset, sent only if this browser does not hold them. on_z / on_select get the browser's event payloads."""
    sent = st.session_state.setdefault(SENT, set())
    fresh = [a for a in assets.values() if a.hash not in sent]
    sent.update(a.hash for a in fresh)
    data = bundle({**view, "role": role, "assets": {name: a.hash for name, a in assets.items()}}, fresh)
    callbacks = {"on_z_change": functools.partial(_event, key, "z", on_z),
                 "on_need_change": functools.partial(_event, key, "need", _forget),
                 "on_follow_change": functools.partial(_event, key, "follow", _follow)}
    if on_select is not None:
        callbacks["on_select_change"] = functools.partial(_event, key, "select", on_select)
    _component()(key=key, data=data, **callbacks)


def _event(key: str, name: str, handle: Callable[[dict], None]) -> None:
    payload = (st.session_state.get(key) or {}).get(name)
    if isinstance(payload, dict):
        handle(payload)


def _follow(payload: dict) -> None:
    """A part whose fragment did not rerun saw the server move z (a server slider's own fragment): the rerun this
    event causes brings the rest of its fragment up to date. Nothing else to do."""


def _forget(payload: dict) -> None:
    """The browser lost some assets (or never got them): send them with the next mount that names them."""
    st.session_state.setdefault(SENT, set()).difference_update(str(h) for h in payload.get("hashes") or [])
