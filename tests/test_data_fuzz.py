"""Fuzzing the loaders: any bytes give a valid Dataset or a ValueError, never another exception or a huge allocation."""
from __future__ import annotations

import gzip
import io
import struct
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from vae_core import data

pytestmark = pytest.mark.slow
FUZZ = settings(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
LIMIT = 8 * 2**20  # a small max_bytes so nothing fuzzed can allocate much


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def idx_bytes(array: np.ndarray) -> bytes:
    return struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def png_bytes(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG" if image.mode != "CMYK" else "JPEG")
    return out.getvalue()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, payload in members.items():
            zf.writestr(name, payload)
    return out.getvalue()


def valid_files() -> dict[str, bytes]:
    """One small valid file of each kind, the seeds for truncation and bit-flips."""
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (4, 6, 6), dtype=np.uint8), np.arange(4, dtype=np.uint8)
    npz = io.BytesIO()
    np.savez_compressed(npz, x=x, y=y)
    pngs = {f"set/{'ab'[i % 2]}/{i}.png": png_bytes(Image.fromarray(x[i])) for i in range(4)}
    return {"a.idx": idx_bytes(x), "a.idx.gz": gzip.compress(idx_bytes(x)), "a.npz": npz.getvalue(),
            "a.npy": _npy_bytes(x), "a.zip": zip_bytes(pngs)}


def _npy_bytes(x: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, x)
    return out.getvalue()


VALID = valid_files()


def load_or_value_error(path: Path, **kwargs) -> data.Dataset | None:
    """load_path's result, or None when it raised a ValueError naming the file; anything else fails the test."""
    try:
        ds = data.load_path(path, max_bytes=LIMIT, **kwargs)
    except ValueError as exc:
        assert path.name in str(exc), str(exc)
        return None
    assert isinstance(ds, data.Dataset) and ds.images.ndim == 4 and ds.n >= 1
    rows = ds.batch(np.arange(min(ds.n, 8)))
    assert rows.dtype == np.float32 and 0 <= rows.min() and rows.max() <= 1
    assert ds.labels is None or len(ds.labels) == ds.n
    return ds


@settings(FUZZ, max_examples=3500)
@given(payload=st.binary(max_size=600), suffix=st.sampled_from([".gz", ".idx", ".npz", ".npy", ".zip", ".png", ""]),
       prefix=st.sampled_from([b"", b"\x1f\x8b", b"\0\0\x08\x03", b"\x93NUMPY", b"PK\x03\x04"]))
def test_random_bytes(folder, payload, suffix, prefix):
    path = folder / f"random{suffix}"
    path.write_bytes(prefix + payload)
    load_or_value_error(path)


@settings(FUZZ, max_examples=1500)
@given(kind=st.sampled_from(sorted(VALID)), cut=st.floats(0, 1, exclude_max=True))
def test_truncated_files(folder, kind, cut):
    payload = VALID[kind]
    path = folder / f"cut-{kind}"
    path.write_bytes(payload[: int(cut * len(payload))])
    assert load_or_value_error(path) is None


@settings(FUZZ, max_examples=3500)
@given(kind=st.sampled_from(sorted(VALID)), flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True),
                                                                     st.integers(0, 7)), min_size=1, max_size=4))
def test_bit_flips(folder, kind, flips):
    payload = bytearray(VALID[kind])
    for where, bit in flips:
        payload[int(where * len(payload))] ^= 1 << bit
    path = folder / f"flip-{kind}"
    path.write_bytes(bytes(payload))
    load_or_value_error(path)


@settings(FUZZ, max_examples=1500)
@given(code=st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x00, 0xFF]), dims=st.lists(
    st.one_of(st.integers(0, 40), st.integers(0, 2**32 - 1)), min_size=0, max_size=6), extra=st.integers(0, 3000),
    gz=st.booleans())
def test_idx_headers_with_arbitrary_dims(folder, code, dims, extra, gz):
    raw = struct.pack(">HBB", 0, code, len(dims)) + struct.pack(f">{len(dims)}I", *dims) + bytes(extra)
    path = folder / "header.idx"
    path.write_bytes(gzip.compress(raw) if gz else raw)
    tracemalloc.start()
    try:
        load_or_value_error(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * LIMIT


def patched_zip(declared: int, compressed: int | None) -> bytes:
    """A zip whose one member's header and central directory claim `declared` uncompressed bytes."""
    payload = bytearray(zip_bytes({"cls/big.bmp": bytes(2000)}))
    for signature, size_at in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = payload.find(signature) + size_at
        payload[at:at + 4] = struct.pack("<I", declared)
        if compressed is not None:
            payload[at - 4:at] = struct.pack("<I", compressed)
    return bytes(payload)


@settings(FUZZ, max_examples=500)
@given(declared=st.integers(0, 2**32 - 2), compressed=st.one_of(st.none(), st.integers(0, 2**32 - 2)),
       limit=st.sampled_from([None, 2**20, 2**12]))
def test_zips_with_huge_declared_sizes(folder, declared, compressed, limit):
    path = folder / "declared.zip"
    path.write_bytes(patched_zip(declared, compressed))
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ValueError, match="declared.zip"):
            data.load_images(path, max_bytes=limit)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20 and time.perf_counter() - start < 2


MODES = ["P", "LA", "I;16", "CMYK", "RGBA", "1", "L", "RGB", "PA-like"]


def make_image(mode: str, size: tuple[int, int], seed: int) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 4), dtype=np.uint8)
    rgba = Image.fromarray(pixels)
    if mode == "I;16":
        return Image.fromarray(pixels[..., 0].astype(np.uint16) * 257)
    if mode == "PA-like":  # a palette image with a transparent index
        image = rgba.convert("RGB").convert("P")
        image.info["transparency"] = 0
        return image
    return rgba.convert(mode)


@settings(FUZZ, max_examples=500)
@given(modes=st.lists(st.sampled_from(MODES), min_size=1, max_size=4),
       sizes=st.lists(st.tuples(st.integers(1, 12), st.integers(1, 12)), min_size=1, max_size=4),
       seed=st.integers(0, 2**16), size=st.one_of(st.none(), st.integers(1, 10)))
def test_image_modes_inside_zips(folder, modes, sizes, seed, size):
    members = {f"c{i % 2}/{i}.{'jpg' if m == 'CMYK' else 'png'}": png_bytes(make_image(m, sizes[i % len(sizes)], seed + i))
               for i, m in enumerate(modes)}
    path = folder / "modes.zip"
    path.write_bytes(zip_bytes(members))
    ds = data.load_images(path, size=size, max_bytes=LIMIT)
    assert ds.n == len(modes) and ds.images.dtype == np.float32
    assert 0 <= ds.images.min() and ds.images.max() <= 1 and np.isfinite(ds.images).all()
    assert ds.shape[0] == (1 if set(modes) <= {"LA", "I;16", "1", "L"} else 3)
    if size is not None:
        assert ds.shape[1:] == (size, size)
    assert (ds.labels is None) == (len(modes) == 1)
