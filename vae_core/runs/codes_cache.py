"""Latent codes kept on disk with a run, so Explore opens a model it has seen before without encoding its data again.

One safetensors file per (weights, data) pair, named by both content hashes: new weights (the run saved again) or other
images (another dataset, or the same name with other content) miss and are encoded afresh. A file is read back as
untrusted input, like every run file (checks.py): bounded read, exactly the tensors mu, logvar and recon_error, float32,
the shapes the model and data imply, all finite; anything else is refused, removed and recomputed. The folder is
bounded: past cap_bytes, the oldest files go first.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save as st_save

from ..model import VAE
from .checks import read_tensors
from .files import write_atomic

CODES_FOLDER = "codes"  # inside a run folder (save_run replaces the whole folder: new weights drop their old codes)
CODES_SUFFIX = ".safetensors"
DEFAULT_CAP_BYTES = 256 * 2**20  # per folder: 70,000 images of a 64-d model take 36 MB
CODES_TENSORS = ("mu", "logvar", "recon_error")
_HASH_CHUNK = 64 * 2**20  # bytes hashed at a time (a memory-mapped dataset is never read whole)
_NAME = re.compile(r"[0-9a-f]{64}-[0-9a-f]{64}" + re.escape(CODES_SUFFIX))  # only such files are ever removed


@dataclass
class Codes:
    """Every image's posterior and its reconstruction error at the posterior mean."""
    mu: np.ndarray  # (N, D) float32
    logvar: np.ndarray  # (N, D) float32
    recon_error: np.ndarray  # (N,) float32, -log p(x | z = mu), nats

    def finite(self) -> bool:
        return all(np.isfinite(a).all() for a in (self.mu, self.logvar, self.recon_error))


# --------------------------------------------------------------------------- content hashes


def weights_hash(model: VAE) -> str:
    """SHA-256 of a model's weights: every tensor's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def data_hash(images: np.ndarray) -> str:
    """SHA-256 of a dataset's images as stored (dtype, shape, bytes): what its codes are computed from."""
    h = hashlib.sha256(f"{images.dtype.str}:{tuple(images.shape)};".encode())
    flat = images.reshape(len(images), -1) if len(images) else images
    rows = max(1, _HASH_CHUNK // max(1, flat[0].nbytes if len(flat) else 1))
    for start in range(0, len(flat), rows):
        h.update(memoryview(np.ascontiguousarray(flat[start:start + rows])).cast("B"))
    return h.hexdigest()


# --------------------------------------------------------------------------- the cache folder


class CodesCache:
    """A folder of codes files, <weights hash>-<data hash>.safetensors, at most cap_bytes together."""

    def __init__(self, folder: str | Path, cap_bytes: int = DEFAULT_CAP_BYTES):
        self.folder, self.cap_bytes = Path(folder), int(cap_bytes)

    def path(self, weights: str, data: str) -> Path:
        return self.folder / f"{weights}-{data}{CODES_SUFFIX}"

    def usable(self) -> bool:
        """A folder that is not a symbolic link (a run folder may come from anyone: never write or evict through
        a link into somewhere else)."""
        return not self.folder.is_symlink()

    def holds(self, weights: str) -> bool:
        """Whether any codes of these weights are kept (on another dataset, maybe): no data hash is needed to
        know a miss when none are."""
        return any(p.name.startswith(f"{weights}-") for p in self.files())

    def load(self, weights: str, data: str, n: int, latent_dim: int) -> Codes | None:
        """The codes kept for these hashes, or None: none kept, or a file that fails its checks (then removed)."""
        path = self.path(weights, data)
        if not self.usable() or not os.path.lexists(path):
            return None
        try:
            return check_codes(read_tensors(path), n, latent_dim, path.name)
        except ValueError:
            path.unlink(missing_ok=True)
            return None

    def save(self, weights: str, data: str, codes: Codes) -> Path | None:
        """Keep codes for these hashes (atomically), then drop the oldest files past the cap; None when not kept
        (non-finite codes, a file over the cap on its own, or a folder that cannot be written)."""
        tensors = {name: torch.from_numpy(np.ascontiguousarray(getattr(codes, name), np.float32))
                   for name in CODES_TENSORS}
        blob = st_save(tensors)
        if not codes.finite() or len(blob) > self.cap_bytes or not self.usable():
            return None
        path = self.path(weights, data)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_atomic(path, blob)
        except OSError:
            return None
        self.evict(keep=path)
        return path

    def files(self) -> list[Path]:
        """The codes files, oldest first."""
        if not self.usable() or not self.folder.is_dir():
            return []
        found = [p for p in self.folder.iterdir() if _NAME.fullmatch(p.name) and p.is_file() and not p.is_symlink()]
        return sorted(found, key=lambda p: p.stat().st_mtime)

    def evict(self, keep: Path | None = None) -> None:
        """Remove the oldest files until the folder holds at most cap_bytes (never `keep`, the one just written)."""
        files = self.files()
        total = sum(p.stat().st_size for p in files)
        for p in files:
            if total <= self.cap_bytes:
                break
            if p == keep:
                continue
            total -= p.stat().st_size
            p.unlink(missing_ok=True)


def check_codes(tensors: dict[str, torch.Tensor], n: int, latent_dim: int, name: str) -> Codes:
    """A codes file's tensors must be exactly mu, logvar (n, D) and recon_error (n,), float32 and finite."""
    if sorted(tensors) != sorted(CODES_TENSORS):
        raise ValueError(f"{name}: expected tensors {list(CODES_TENSORS)}, got {sorted(tensors)[:5]}")
    shapes = {"mu": (n, latent_dim), "logvar": (n, latent_dim), "recon_error": (n,)}
    for key, shape in shapes.items():
        t = tensors[key]
        if t.dtype != torch.float32 or tuple(t.shape) != shape:
            raise ValueError(f"{name}: {key} is {t.dtype} {tuple(t.shape)}, expected float32 {shape}")
        if not torch.isfinite(t).all():
            raise ValueError(f"{name}: {key} holds NaN or inf")
    return Codes(*(tensors[k].numpy() for k in CODES_TENSORS))
