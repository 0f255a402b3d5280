"""Folders and zips of images as a user brings them (every file made here): nested class folders keep equal leaf
names apart, resize on load keeps the aspect, images that inflate at decode time are refused from their headers
before decoding, folder names that are not UTF-8 become valid text, and skipped zip entries are counted."""
from __future__ import annotations

import io
import json
import os
import struct
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vae_core import data


def png_bytes(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG")
    return out.getvalue()


def huge_png(width: int, height: int) -> bytes:
    """A valid black 1-bit PNG of width×height written row by row from the format (never held decoded): a few KB."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    row, deflate = bytes(1 + (width + 7) // 8), zlib.compressobj(9)  # filter byte 0, then the packed bits
    idat = b"".join(deflate.compress(row) for _ in range(height)) + deflate.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # bit depth 1, grayscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, payload in members.items():
            zf.writestr(name, payload)
    return path


def glyph(seed: int, size: tuple[int, int] = (6, 6)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size[::-1], dtype=np.uint8)


ALPHABETS = {"Greek": 3, "Latin": 2}  # alphabet -> characters, each character01... in every alphabet


def alphabet_tree() -> dict[str, np.ndarray]:
    """omniglot's layout: background/ALPHABET/characterNN/K.png, two images per character."""
    return {f"background/{alphabet}/character{c:02d}/{k}.png": glyph(100 * c + k + len(alphabet))
            for alphabet, n in ALPHABETS.items() for c in range(1, n + 1) for k in range(2)}


@pytest.mark.parametrize("container", ["folder", "zip"])
def test_nested_class_folders_keep_equal_leaf_names_apart(tmp_path, container):
    tree = alphabet_tree()
    if container == "zip":
        path = write_zip(tmp_path / "omniglot.zip", {name: png_bytes(a) for name, a in tree.items()})
    else:
        path = tmp_path / "omniglot"
        for name, array in tree.items():
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(array).save(path / name)
    ds = data.load_path(path)
    characters = sorted({str(Path(name).parent.relative_to("background")) for name in tree})
    assert ds.class_names == characters == ["Greek/character01", "Greek/character02", "Greek/character03",
                                            "Latin/character01", "Latin/character02"]  # not 3 merged "characterNN"
    for i, name in enumerate(sorted(tree)):  # each image keeps its own character and pixels
        assert ds.class_names[ds.labels[i]] == str(Path(name).parent.relative_to("background"))
        assert np.array_equal(np.round(ds.images[i, 0] * 255), tree[name])
    assert ds.summary() == ("10 images, 1×6×6, 5 classes (Greek/character01, Greek/character02, Greek/character03, "
                            "…, Latin/character02)")

    top = data.load_source({"kind": "path", "path": str(path), "class_levels": 1})  # the user picks the level
    assert top.class_names == ["Greek", "Latin"] and top.labels.tolist() == [0] * 6 + [1] * 4
    assert top.source["class_levels"] == 1 and data.load_source(top.source).class_names == ["Greek", "Latin"]
    assert top.summary() == "10 images, 1×6×6, 2 classes (Greek, Latin)"


def test_resize_on_load_keeps_the_aspect_and_is_suggested_for_large_images(tmp_path):
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (70, 105), dtype=np.uint8) for _ in range(3)]  # 105 wide, 70 high
    path = write_zip(tmp_path / "wide.zip", {f"{'ab'[i % 2]}/{i}.png": png_bytes(a) for i, a in enumerate(arrays)})
    full = data.load_path(path)
    assert full.shape == (1, 70, 105) and data.suggested_resize(full) == 64 and full.source.get("resize") is None

    small = data.load_source({"kind": "path", "path": str(path), "resize": 64})
    assert small.shape == (1, 43, 64) and small.source["resize"] == 64  # 70 × 64/105 = 42.7
    reference = [np.asarray(Image.fromarray(a.astype(np.float32) / 255).resize((64, 43), Image.Resampling.BILINEAR))
                 for a in arrays]  # Pillow's bilinear resize of each image
    np.testing.assert_allclose(small.images[:, 0], np.clip(np.stack(reference), 0, 1), atol=1e-6)
    assert data.suggested_resize(small) is None and data.load_source(small.source).shape == (1, 43, 64)

    np.save(tmp_path / "wide.npy", np.stack(arrays))  # an array cannot be resized on load: not suggested, refused
    array = data.load_path(tmp_path / "wide.npy")
    assert array.shape == (1, 70, 105) and data.suggested_resize(array) is None
    with pytest.raises(ValueError, match="wide.npy: resize is only used with a folder of images or a .zip of images"):
        data.load_path(tmp_path / "wide.npy", resize=64)
    assert data.suggested_resize(data.load_digits()) is None


def test_a_zip_of_huge_but_tiny_pngs_is_refused_from_the_headers_before_decoding(tmp_path):
    """issue 23's probe: eight valid 9000×9000 PNGs (a few KB each) beside nine small images, 17 in all."""
    huge = huge_png(9000, 9000)
    assert len(huge) < 20_000 and Image.open(io.BytesIO(huge)).size == (9000, 9000)
    members = {f"small/{i}.png": png_bytes(glyph(i, (8, 8))) for i in range(9)}
    members |= {f"huge/{i}.png": huge for i in range(8)}
    path = write_zip(tmp_path / "bombs.zip", members)
    assert path.stat().st_size < 700_000
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"^bombs.zip:huge/0.png: too large to decode: this 9000×9000 image would "
                                         r"decode 81,000,000 pixels, over the limit of 16,777,216"):
        data.load_path(path)
    assert time.perf_counter() - start < 2.0  # decoding one of them alone takes longer


def test_the_dataset_pixel_budget_counts_every_image_before_decoding(tmp_path, monkeypatch):
    n = data.MAX_DATASET_PIXELS // (4000 * 4000) + 1  # each under the per-image budget, together over
    path = write_zip(tmp_path / "many.zip", {f"{i}.png": huge_png(4000, 4000) for i in range(n)})
    start = time.perf_counter()
    with pytest.raises(ValueError, match=rf"^many.zip: too large to decode: its {n} images \(VAE_MAX_DATA_PIXELS\) "
                                         rf"would decode {n * 16_000_000:,} pixels, over the limit of "
                                         rf"{data.MAX_DATASET_PIXELS:,}"):
        data.load_path(path)
    assert time.perf_counter() - start < 2.0

    members = {f"{c}/{i}.png": png_bytes(glyph(i, (10, 10))) for i, c in enumerate("ab")}
    small = write_zip(tmp_path / "small.zip", members)
    monkeypatch.setenv("VAE_MAX_DATA_PIXELS", "199")  # a server's own budget: 2 images of 100 pixels are over it
    with pytest.raises(ValueError, match="small.zip: too large to decode: its 2 images .* 200 pixels, over .* 199"):
        data.load_path(small)
    monkeypatch.setenv("VAE_MAX_DATA_PIXELS", "200")
    assert data.load_path(small).n == 2
    monkeypatch.setenv("VAE_MAX_DATA_PIXELS", "lots")
    with pytest.raises(ValueError, match="VAE_MAX_DATA_PIXELS must be a whole number of pixels, got 'lots'"):
        data.load_path(small)


def test_a_large_jpeg_is_decoded_reduced_when_resized_on_load(tmp_path):
    side = 4200  # 17.6 M pixels: over the per-image budget when decoded whole
    gradient = np.tile(np.linspace(0, 255, side).astype(np.uint8), (side, 1))
    out = io.BytesIO()
    Image.fromarray(gradient).save(out, format="JPEG", quality=95)
    path = write_zip(tmp_path / "photo.zip", {"photo.jpg": out.getvalue()})
    with pytest.raises(ValueError, match="photo.zip:photo.jpg: too large to decode: this 4200×4200 image"):
        data.load_path(path)
    ds = data.load_path(path, resize=64)  # Pillow's draft decodes it at 1/8 (525×525), then it is resized
    assert ds.shape == (1, 64, 64)
    expected = (np.arange(64) + 0.5) / 64  # the gradient at each column's centre
    np.testing.assert_allclose(ds.images[0, 0, 32], expected, atol=0.03)


def test_class_folders_that_are_not_utf8_become_valid_text(tmp_path):
    root = os.fsencode(tmp_path) + b"/caf\xe9"  # the folder too: Latin-1 bytes, not UTF-8
    for i, folder in enumerate([b"caf\xe9", b"plain", b"na\xefve\xff"]):
        os.makedirs(os.path.join(root, folder))
        Image.fromarray(glyph(i)).save(os.fsdecode(os.path.join(root, folder, b"0.png")))
    ds = data.load_path(os.fsdecode(root))
    assert ds.class_names == ["caf\ufffd", "na\ufffdve\ufffd", "plain"] and ds.name == "caf\ufffd"
    text = json.dumps({"name": ds.name, "classes": ds.class_names, "summary": ds.summary()}, ensure_ascii=False)
    assert "\ufffd" in text.encode("utf-8").decode("utf-8")  # encodes: what the Explore caption could not do
    assert data.load_source(ds.source).class_names == ds.class_names  # the source still names the real folder


def test_skipped_zip_entries_are_counted_in_the_note(tmp_path):
    members = {f"{c}/{i}.png": png_bytes(glyph(i)) for i, c in enumerate("abab")}
    members |= {"../escape.png": png_bytes(glyph(9)), "/abs/0.png": png_bytes(glyph(8)),
                "a/../../up.png": png_bytes(glyph(7)), "__MACOSX/a/._0.png": b"fork", ".hidden.png": b"x",
                "a/README.txt": b"notes"}
    ds = data.load_path(write_zip(tmp_path / "mixed.zip", members))
    assert ds.n == 4 and ds.class_names == ["a", "b"]
    assert ds.note == ("skipped 6 of 10 entries: 3 outside the archive ('..', an absolute path or a link), "
                       "2 hidden or macOS metadata, 1 not images")
    assert ds.subset(np.array([0])).note == ds.note
    clean = data.load_path(write_zip(tmp_path / "clean.zip", {k: members[k] for k in ("a/0.png", "b/1.png")}))
    assert clean.n == 2 and clean.note == ""
    with pytest.raises(ValueError, match=r"only.zip: no images found .*; skipped 1 of 1 entries: 1 outside"):
        data.load_path(write_zip(tmp_path / "only.zip", {"../escape.png": png_bytes(glyph(9))}))
