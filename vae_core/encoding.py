"""A dataset's codes for Explore, encoded in blocks: a seeded first block at once (what the map draws first, within a
second), the rest in a background thread, and every code kept on disk (runs/codes_cache.py) so that the next open —
another session, or the server restarted — reads them back instead of encoding again.

Rows are encoded in a seeded random order, so the codes done at any moment are a uniform sample of the data: a map,
slider ranges or KL from them are estimates of the whole set's. A Snapshot names exactly which rows it holds.
"""
from __future__ import annotations

import queue
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .data import Dataset
from .latent import encode, reconstruction_error
from .model import VAE
from .runs.codes_cache import Codes, CodesCache

FIRST_BLOCK_VALUES = 2**20  # pixel values encoded before the page draws: 1,024 images of 32x32, 500 of 64x64 RGB
FIRST_BLOCK_MIN, FIRST_BLOCK_MAX = 500, 2000  # images in the first block (all of them when there are fewer)
BLOCK_VALUES = 2**22  # pixel values per background block (4,096 images of 32x32): progress every second or so


def first_block_size(n: int, pixels: int) -> int:
    """How many images are encoded before Explore draws: about FIRST_BLOCK_VALUES pixel values' worth, within
    [FIRST_BLOCK_MIN, FIRST_BLOCK_MAX], and at most n."""
    return min(n, int(np.clip(FIRST_BLOCK_VALUES // max(1, pixels), FIRST_BLOCK_MIN, FIRST_BLOCK_MAX)))


def encoding_order(n: int, seed: int = 0) -> np.ndarray:
    """The seeded order rows are encoded in: any prefix of it is a uniform sample of the dataset."""
    return np.random.default_rng(seed).permutation(n)


@dataclass
class Snapshot:
    """The codes of one moment: rows order[:done] have mu and logvar, order[:with_error] also recon_error."""
    rows: np.ndarray  # (M,) dataset rows with codes, sorted
    mu: np.ndarray  # (N, D), NaN in rows not encoded yet
    logvar: np.ndarray  # (N, D), likewise
    recon_error: np.ndarray  # (N,), NaN where not computed yet
    version: str  # "done:with_error": names the snapshot (a cache key)
    complete: bool
    from_cache: bool
    seconds: float  # to the first block (or to read the kept codes)
    total_seconds: float | None  # to the last code, once complete


class Encoding:
    """One model's codes on one dataset. The constructor reads them from the cache or encodes the first block (in
    the caller's thread); encode_rest() does the remaining rows (a background thread's job) and keeps them.

    data is the images' content hash, or a function computing it: then it is computed only where needed — at once
    when the cache holds codes of these weights, else by encode_rest before keeping the codes (hashing 491 MB of
    64x64 RGB images is not the first open's work)."""

    def __init__(self, model: VAE, dataset: Dataset, cache: CodesCache | None = None, weights: str = "",
                 data: str | Callable[[], str] = "", seed: int = 0):
        start = time.perf_counter()
        self.model, self.dataset, self.cache, self.weights, self._data = model, dataset, cache, weights, data
        n, d = dataset.n, model.config.latent_dim
        self.n, self.order = n, encoding_order(n, seed)
        self.mu, self.logvar = np.full((n, d), np.nan, np.float32), np.full((n, d), np.nan, np.float32)
        self.recon_error = np.full(n, np.nan, np.float32)
        self.error: str | None = None
        self._lock = threading.Lock()  # guards done / with_error
        self._rest = threading.Lock()  # one encode_rest at a time: a second caller waits for the first
        kept = cache.load(weights, self.data_hash(), n, d) if cache is not None and cache.holds(weights) else None
        self.from_cache = kept is not None
        if kept is not None:
            self.mu[:], self.logvar[:], self.recon_error[:] = kept.mu, kept.logvar, kept.recon_error
            self.done = self.with_error = n
        else:
            self.done = self.with_error = 0
            self._encode(first_block_size(n, int(np.prod(dataset.shape))), errors=False)
            if self.done == n:  # small data: all at once, as before
                self._errors(n)
        self.seconds = time.perf_counter() - start
        self.total_seconds = self.seconds if self.complete else None
        self._started = start
        if self.complete:
            self._release()

    @property
    def complete(self) -> bool:
        return self.with_error == self.n

    def progress(self) -> tuple[int, int]:
        """(rows encoded, all rows)."""
        return self.done, self.n

    def encode_rest(self, block_values: int = BLOCK_VALUES) -> None:
        """Encode every remaining row in blocks, reconstruction errors included, then keep the codes on disk."""
        with self._rest:
            if self.complete:
                return
            self._errors(self.done)  # the first block's reconstruction errors
            block = max(1, block_values // max(1, int(np.prod(self.dataset.shape))))
            while self.done < self.n:
                self._encode(min(self.n, self.done + block) - self.done, errors=True)
            self.total_seconds = time.perf_counter() - self._started
            self.keep()
            self._release()

    def _release(self) -> None:
        """Let go of the model and the images once every code is in: the server's run and dataset caches bound
        those, and an encoding kept for its codes must not keep a dataset they dropped alive."""
        self.model = self.dataset = None

    def data_hash(self) -> str:
        """The images' content hash (computed once, on first need)."""
        if callable(self._data):
            self._data = self._data()
        return self._data

    def keep(self) -> None:
        """Write the complete codes to the cache (a no-op without one)."""
        if self.cache is not None and self.complete and not self.from_cache:
            self.cache.save(self.weights, self.data_hash(), Codes(self.mu, self.logvar, self.recon_error))

    def holds(self, version: str | None) -> bool:
        """Whether the codes a version names are encoded (a version of another encoding may name more)."""
        if not version:
            return False
        done, with_error = (int(v) for v in version.split(":"))
        with self._lock:
            return done <= self.done and with_error <= self.with_error

    def snapshot(self, version: str | None = None) -> Snapshot:
        """The codes as of `version` (default: now). Complete codes are shared (they no longer change); partial
        ones are copies holding exactly the rows the version names."""
        with self._lock:
            done, with_error = (int(v) for v in (version or f"{self.done}:{self.with_error}").split(":"))
        if done > self.done or with_error > self.with_error:
            raise ValueError(f"codes {done}:{with_error} are not encoded yet ({self.done}:{self.with_error})")
        complete = with_error == self.n
        rows = np.sort(self.order[:done])
        mu, logvar, errors = self.mu, self.logvar, self.recon_error
        if not complete:
            mu, logvar, errors = (np.full_like(a, np.nan) for a in (mu, logvar, errors))
            mu[rows], logvar[rows] = self.mu[rows], self.logvar[rows]
            errors[self.order[:with_error]] = self.recon_error[self.order[:with_error]]
        return Snapshot(rows, mu, logvar, errors, f"{done}:{with_error}", complete, self.from_cache, self.seconds,
                        self.total_seconds if complete else None)

    def _encode(self, count: int, errors: bool) -> None:
        rows = np.sort(self.order[self.done:self.done + count])
        _, mu, logvar = encode(self.model, self.dataset.batch(rows))
        self.mu[rows], self.logvar[rows] = mu, logvar
        if errors:
            self.recon_error[rows] = reconstruction_error(self.model, self.dataset.batch(rows), mu)
        with self._lock:
            self.done += count
            if errors:
                self.with_error = self.done

    def _errors(self, upto: int) -> None:
        rows = np.sort(self.order[self.with_error:upto])
        if len(rows):
            self.recon_error[rows] = reconstruction_error(self.model, self.dataset.batch(rows), self.mu[rows])
        with self._lock:
            self.with_error = upto


class EncodingPool:
    """A server's encodings, one per key (model file and data), at most max_entries kept (the oldest complete ones
    go first); the rest of each is encoded by one worker thread, one encoding at a time, off every script thread."""

    def __init__(self, max_entries: int = 8):
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, Encoding] = OrderedDict()
        self._queue: queue.Queue[Encoding] = queue.Queue()
        self._worker: threading.Thread | None = None

    def has(self, key: str) -> bool:
        with self._lock:
            return key in self._entries

    def get(self, key: str, make: Callable[[], Encoding]) -> Encoding:
        """The encoding for key, made by make() (its first block, in this thread) when there is none yet."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            encoding = make()  # under the lock: two sessions opening the same model encode it once
            self._entries[key] = encoding
            for old in [k for k, e in self._entries.items() if e.complete][:max(0, len(self._entries) -
                                                                              self.max_entries)]:
                del self._entries[old]
            if not encoding.complete:
                self._queue.put(encoding)
                if self._worker is None:
                    self._worker = threading.Thread(target=self._work, name="vae-encoding", daemon=True)
                    self._worker.start()
            return encoding

    def _work(self) -> None:
        while True:
            encoding = self._queue.get()
            try:
                encoding.encode_rest()
            except Exception as exc:  # noqa: BLE001 - reported on the page instead of killing the worker
                encoding.error = f"{type(exc).__name__}: {exc}"
