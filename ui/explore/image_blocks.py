"""The map's hover images: every original image, sent on demand in blocks of dataset rows (uint8, C x H x W each),
not in the map's bundle. The browser fetches a block when a hovered point's block is missing
(ui/explore/live/map_images.js) and keeps it by the dataset's identity and the block's index.

How the bytes travel: Streamlit 1.67 serves /media/<file> from its media storage to any client that names a file,
with no rerun; the map's view names `<media>/vxi-<token>-<block>.bin`, and the storage's get_file is wrapped once per
process (like ui/access.py wraps Streamlit's upload check) to make such a block when asked. The token is random per
session and dataset; a block is made only while that session is connected and, on a password server, admitted
(ui/access.py): a client that never entered the password gets 404, as for any unknown file."""
from __future__ import annotations

import hashlib
import json
import secrets
import threading
from dataclasses import dataclass, field

import numpy as np

from ui.server import admissions, server_wide, session_is_alive
from vae_core.data import Dataset

BLOCK_BYTES = 64 * 2**10  # a block at most (but MIN_ROWS): fetched in 25 ms on a loaded machine, 200 KB in 42
MIN_ROWS, MAX_ROWS = 4, 256
PREFIX = "vxi-"
MIMETYPE = "application/octet-stream"


def block_rows(pixels: int) -> int:
    """Images per block: the largest power of two in [MIN_ROWS, MAX_ROWS] whose block fits BLOCK_BYTES."""
    rows = MAX_ROWS
    while rows > MIN_ROWS and rows * pixels > BLOCK_BYTES:
        rows //= 2
    return rows


def block_bytes(dataset: Dataset, block: int, rows: int) -> bytes:
    """Dataset rows [block * rows, (block + 1) * rows) as uint8 (round(255 x)), C x H x W each, row after row."""
    start, stop = block * rows, min(dataset.n, (block + 1) * rows)
    if block < 0 or start >= stop:
        raise ValueError(f"block {block} of {rows} rows is outside a dataset of {dataset.n} images")
    images = dataset.batch(np.arange(start, stop))
    return (np.clip(images, 0, 1) * 255).round().astype(np.uint8).tobytes()


def dataset_key(dataset: Dataset) -> str:
    """The dataset's identity (its source, size and image shape): the browser keeps blocks under it."""
    facts = {"source": dataset.source, "n": dataset.n, "shape": list(dataset.shape)}
    return hashlib.sha1(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class _Entry:
    session: str
    dataset: Dataset
    rows: int


@dataclass
class ImageBlocks:
    """Who may fetch which dataset's blocks: token -> (session, dataset, rows per block); one entry per session."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    entries: dict[str, _Entry] = field(default_factory=dict)

    def token_for(self, session: str, dataset: Dataset) -> tuple[str, int]:
        """The session's token for this dataset (a new one when its dataset changed) and the rows per block."""
        with self.lock:
            for token, entry in list(self.entries.items()):
                if entry.session == session and entry.dataset is dataset:
                    return token, entry.rows
                if entry.session == session or not session_is_alive(entry.session):
                    del self.entries[token]  # the session moved to another dataset, or left
            token = secrets.token_hex(16)
            self.entries[token] = _Entry(session, dataset, block_rows(int(np.prod(dataset.shape))))
            return token, self.entries[token].rows

    def serve(self, name: str) -> bytes | None:
        """The bytes of a file named `vxi-<token>-<block>.bin`, or None (unknown, malformed, or not allowed)."""
        from ui.access import password_is_set

        token, _, block = name.removeprefix(PREFIX).removesuffix(".bin").partition("-")
        with self.lock:
            entry = self.entries.get(token)
        if entry is None or not block.isdigit() or not session_is_alive(entry.session):
            return None
        if password_is_set() and not admissions().admitted(entry.session):
            return None
        try:
            return block_bytes(entry.dataset, int(block), entry.rows)
        except ValueError:
            return None


@server_wide
def image_blocks() -> ImageBlocks:
    """The one table of this server's image-block tokens."""
    return ImageBlocks()


@server_wide
def serve_from_media() -> bool:
    """Make Streamlit's media route answer `vxi-` files with image blocks, once per process (False without a
    runtime, e.g. AppTest: the map then has no hover images, and says so)."""
    from streamlit import runtime
    from streamlit.runtime.media_file_storage import MediaFileKind, MediaFileStorageError
    from streamlit.runtime.memory_media_file_storage import MemoryFile

    if not runtime.exists():
        return False
    storage = runtime.get_instance().media_file_mgr._storage  # the object the /media route reads
    get_file = storage.get_file

    def get_file_or_block(filename: str):
        if not filename.startswith(PREFIX):
            return get_file(filename)
        content = image_blocks().serve(filename)
        if content is None:
            raise MediaFileStorageError(f"no image block {filename!r}")
        return MemoryFile(content=content, mimetype=MIMETYPE, kind=MediaFileKind.MEDIA, filename=None)

    storage.get_file = get_file_or_block
    return True


def images_view(session: str, dataset: Dataset) -> dict | None:
    """What the map's view needs to fetch blocks: the URL before the block's index, rows per block, the dataset's
    key and image shape; None where blocks cannot be served (no runtime)."""
    from streamlit import config

    if not serve_from_media():
        return None
    token, rows = image_blocks().token_for(session, dataset)
    base = str(config.get_option("server.baseUrlPath") or "").strip("/")
    return {"url": f"{'/' + base if base else ''}/media/{PREFIX}{token}-", "rows": rows, "key": dataset_key(dataset),
            "n": dataset.n, "shape": list(dataset.shape)}
