"""Datasets load with the right shapes and labels, and every broken file gets a clear error naming it."""
from __future__ import annotations

import gzip
import io
import struct
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vae_core import data


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    """An IDX file written from the spec: 0, 0, type code, ndim, big-endian uint32 dims, then the data."""
    header = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(">u1").tobytes()


def png_bytes(array: np.ndarray, mode: str | None = None) -> bytes:
    out = io.BytesIO()
    image = Image.fromarray(array)
    (image.convert(mode) if mode else image).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def mnist_like() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (12, 28, 28), dtype=np.uint8), rng.integers(0, 10, 12).astype(np.uint8)


def write_mnist(folder: Path, images: np.ndarray, labels: np.ndarray, gz: bool) -> Path:
    pack = gzip.compress if gz else bytes
    suffix = ".gz" if gz else ""
    (folder / f"train-labels-idx1-ubyte{suffix}").write_bytes(pack(idx_bytes(labels)))
    path = folder / f"train-images-idx3-ubyte{suffix}"
    path.write_bytes(pack(idx_bytes(images)))
    return path


# ---------------------------------------------------------------- built-in datasets

def test_digits_are_8x8_in_unit_range_with_ten_classes():
    ds = data.load_digits()
    assert ds.images.shape == (1797, 1, 8, 8) and ds.images.dtype == np.float32
    assert ds.images.min() == 0 and ds.images.max() == 1
    assert ds.labels.dtype == np.int64 and set(ds.labels.tolist()) == set(range(10))
    assert ds.class_names == [str(i) for i in range(10)]
    assert data.load_source(ds.source).n == ds.n


def test_digits_are_scikit_learns_digits_read_without_importing_it():
    """The file is read directly (a cold-start saving); the images and labels must be exactly scikit-learn's."""
    import subprocess
    import sys

    code = "import sys; from vae_core.data import load_digits; load_digits(); print('sklearn' in sys.modules)"
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert imported.strip() == "False"
    from sklearn.datasets import load_digits as reference

    ds, bunch = data.load_digits(), reference()
    assert np.array_equal(ds.images[:, 0], (bunch.images / 16.0).astype(np.float32))
    assert np.array_equal(ds.labels, bunch.target)


def test_shapes_same_seed_same_images_other_seed_differs():
    a, b, c = data.make_shapes(300, 32, seed=1), data.make_shapes(300, 32, seed=1), data.make_shapes(300, 32, seed=2)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.factors, b.factors)
    assert not np.array_equal(a.images, c.images)
    assert np.array_equal(data.load_source(a.source).images, a.images)


def test_shapes_factors_in_range_and_classes_balanced():
    ds = data.make_shapes(4000, 32, seed=0)
    assert ds.factor_names == ["shape", "scale", "rotation", "pos_x", "pos_y"]
    assert ds.factors.shape == (4000, 5) and ds.factors.dtype == np.float32
    shape, scale, rotation, pos = ds.factors[:, 0], ds.factors[:, 1], ds.factors[:, 2], ds.factors[:, 3:]
    assert np.array_equal(shape, ds.labels) and ds.class_names == ["square", "ellipse", "triangle", "heart"]
    assert 0.5 <= scale.min() and scale.max() <= 1 and 0 <= rotation.min() and rotation.max() < 2 * np.pi
    assert 0 <= pos.min() and pos.max() <= 1
    assert np.all(np.abs(np.bincount(ds.labels) - 1000) < 150)
    assert set(np.unique(ds.images).tolist()) <= {0.0, 1.0}
    assert ds.images.sum(axis=(1, 2, 3)).min() > 10  # every image shows its shape


def test_the_heart_is_tested_only_near_its_centre_with_the_same_pixels():
    """vae_core/data/builtin.py tests the heart's curve only where |u|, |v| <= 1.2 (its cubes of negative numbers are
    slow): over a fine grid well past that box, the pixels equal the curve tested everywhere."""
    from vae_core.data.builtin import _heart

    side = np.linspace(-3, 3, 1201, dtype=np.float32)
    u, v = np.meshgrid(side, side)
    x, y = 1.1 * u, 1.1 * (0.15 - v)
    everywhere = (x * x + y * y - 1) ** 3 <= x * x * y**3
    assert everywhere.sum() > 50_000  # the heart covers a good part of the grid
    np.testing.assert_array_equal(_heart(u, v), everywhere)


def test_shapes_follow_their_position_factor():
    ds = data.make_shapes(500, 32, seed=3)
    ys, xs = np.mgrid[0:32, 0:32]
    mass = ds.images[:, 0].sum(axis=(1, 2))
    centre_x = (ds.images[:, 0] * xs).sum(axis=(1, 2)) / mass
    assert np.corrcoef(centre_x, ds.factors[:, 3])[0, 1] > 0.95


@pytest.mark.parametrize("size", [4, 5, 8, 28, 32, 33, 64])
def test_shapes_drawn_in_their_square_equal_the_whole_image_test(size):
    """The rasteriser tests only the pixels of the square around each shape: every image is bit for bit the one that
    testing every pixel of the image gives (the same float32 arithmetic per pixel), at any size."""
    from vae_core.data.builtin import _SHAPE_TESTS

    ds = data.make_shapes(600, size, seed=size)
    f = ds.factors
    grid = (np.arange(size, dtype=np.float32) + 0.5) / size
    col = lambda j: f[:, j, None, None]  # noqa: E731
    dx, dy = grid[None, None, :] - (0.25 + 0.5 * col(3)), grid[None, :, None] - (0.25 + 0.5 * col(4))
    cos, sin, radius = np.cos(col(2)), np.sin(col(2)), 0.2 * col(1)
    u, v = (cos * dx + sin * dy) / radius, (cos * dy - sin * dx) / radius
    whole = np.zeros(u.shape, bool)
    for k, test in enumerate(_SHAPE_TESTS):
        whole[f[:, 0] == k] = test(u[f[:, 0] == k], v[f[:, 0] == k])
    assert whole.any(axis=(1, 2)).mean() > 0.7  # the reference draws shapes (at 4x4 some miss every pixel centre)
    np.testing.assert_array_equal(ds.images[:, 0], whole.astype(np.float32))


# ---------------------------------------------------------------- IDX

@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip_with_labels_found_by_name(tmp_path, mnist_like, gz):
    images, labels = mnist_like
    path = write_mnist(tmp_path, images, labels, gz)
    assert data.find_idx_labels(path) == tmp_path / ("train-labels-idx1-ubyte" + (".gz" if gz else ""))
    ds = data.load_path(path)
    assert ds.shape == (1, 28, 28) and ds.images.dtype == np.float32
    assert np.array_equal(np.round(ds.images[:, 0] * 255).astype(np.uint8), images)
    assert np.array_equal(ds.labels, labels) and ds.name == path.name
    assert np.array_equal(data.load_source(ds.source).labels, labels)


def test_idx_gzip_detected_by_magic_not_extension(tmp_path, mnist_like):
    path = tmp_path / "images.idx"
    path.write_bytes(gzip.compress(idx_bytes(mnist_like[0])))
    assert data.load_path(path).n == 12


def test_find_idx_labels_none_when_missing(tmp_path):
    assert data.find_idx_labels(tmp_path / "t10k-images-idx3-ubyte") is None
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"")
    assert data.find_idx_labels(tmp_path / "t10k-images-idx3-ubyte.gz") == tmp_path / "t10k-labels-idx1-ubyte"


def test_idx_wrong_magic(tmp_path, mnist_like):
    path = tmp_path / "x-images-idx3-ubyte"
    path.write_bytes(b"\x08\x03" + idx_bytes(mnist_like[0])[2:])
    with pytest.raises(ValueError, match="x-images-idx3-ubyte: wrong magic number"):
        data.load_idx(path)


def test_idx_truncated(tmp_path, mnist_like):
    path = tmp_path / "short.idx"
    path.write_bytes(idx_bytes(mnist_like[0])[:-10])
    with pytest.raises(ValueError, match=r"short.idx: header/size mismatch.*9,408 bytes of data, the file holds 9,398"):
        data.load_idx(path)
    gz = tmp_path / "short.idx.gz"
    gz.write_bytes(gzip.compress(idx_bytes(mnist_like[0]))[:-30])
    with pytest.raises(ValueError, match="short.idx.gz: "):
        data.load_idx(gz)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_header_claiming_a_billion_images_is_refused_without_allocating(tmp_path, gz):
    raw = struct.pack(">HBB3I", 0, 0x08, 3, 10**9, 28, 28) + bytes(784)
    path = tmp_path / "liar.idx"
    path.write_bytes(gzip.compress(raw) if gz else raw)
    tracemalloc.start()
    with pytest.raises(ValueError, match="liar.idx: (too large|header/size mismatch)"):
        data.load_idx(path, max_bytes=10**13)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 10**6


def test_idx_label_count_mismatch(tmp_path, mnist_like):
    images, labels = mnist_like
    path = write_mnist(tmp_path, images, labels[:-1], gz=False)
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte: label count mismatch: 11 labels for 12 images"):
        data.load_path(path)


def test_idx_colour_images_and_int32_labels(tmp_path):
    images = np.random.default_rng(8).integers(0, 256, (3, 5, 4, 3), dtype=np.uint8)
    (tmp_path / "rgb.idx").write_bytes(idx_bytes(images))
    labels = np.array([2, 0, 1], ">i4")
    (tmp_path / "rgb-labels.idx").write_bytes(struct.pack(">HBBI", 0, 0x0C, 1, 3) + labels.tobytes())
    ds = data.load_idx(tmp_path / "rgb.idx", tmp_path / "rgb-labels.idx")
    assert ds.shape == (3, 5, 4) and ds.labels.tolist() == [2, 0, 1] and ds.class_names == ["0", "1", "2"]
    np.testing.assert_allclose(ds.images, np.moveaxis(images, -1, 1) / 255, atol=1e-7)


def test_idx_unsupported_dtype(tmp_path):
    path = tmp_path / "floats.idx"
    path.write_bytes(struct.pack(">HBB3I", 0, 0x0D, 3, 1, 2, 2) + bytes(16))
    with pytest.raises(ValueError, match="floats.idx: unsupported IDX dtype 0x0d"):
        data.load_idx(path)


def test_idx_over_max_bytes_names_the_limit(tmp_path, mnist_like):
    path = write_mnist(tmp_path, *mnist_like, gz=False)
    with pytest.raises(ValueError, match="train-images-idx3-ubyte: too large.*limit of 1,000 bytes"):
        data.load_idx(path, max_bytes=1000)


def test_env_var_sets_the_default_limit(tmp_path, mnist_like, monkeypatch):
    path = write_mnist(tmp_path, *mnist_like, gz=False)
    monkeypatch.setenv("VAE_MAX_DATA_BYTES", "2000")
    with pytest.raises(ValueError, match="limit of 2,000 bytes"):
        data.load_path(path)


# ---------------------------------------------------------------- .npy / .npz

@pytest.mark.parametrize("layout", ["NHW", "NHWC1", "NHWC3", "NHWC4"])
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_npz_and_npy_layouts_and_dtypes(tmp_path, layout, dtype):
    rng = np.random.default_rng(1)
    channels = {"NHW": None, "NHWC1": 1, "NHWC3": 3, "NHWC4": 4}[layout]
    shape = (5, 6, 7) if channels is None else (5, 6, 7, channels)
    x = rng.integers(0, 256, shape).astype(np.uint8)
    stored = x if dtype == "uint8" else (x / 255).astype(np.float32)
    expected = (x if channels is None else np.moveaxis(x[..., :3], -1, 1)).reshape(5, -1, 6, 7) / 255
    np.savez(tmp_path / "a.npz", images=stored, labels=np.arange(5))
    np.save(tmp_path / "a.npy", stored)
    for path in (tmp_path / "a.npz", tmp_path / "a.npy"):
        ds = data.load_path(path)
        assert ds.images.dtype == np.float32 and ds.images.flags.c_contiguous
        np.testing.assert_allclose(ds.images, expected, atol=1e-6)
    assert data.load_path(tmp_path / "a.npz").labels.tolist() == [0, 1, 2, 3, 4]


def test_dataset_images_saved_as_npy_load_back(tmp_path):
    ds = data.make_shapes(20, 12, seed=0)
    np.save(tmp_path / "shapes.npy", ds.images)  # (N, C, H, W) float32
    assert np.array_equal(data.load_path(tmp_path / "shapes.npy").images, ds.images)


def test_npz_class_names_and_whole_number_floats(tmp_path):
    x = np.array([[[0.0, 255.0]], [[128.0, 3.0]]])
    np.savez(tmp_path / "named.npz", x=x, y=np.array([1, 0]), class_names=np.array(["cat", "dog"]))
    ds = data.load_array(tmp_path / "named.npz")
    assert ds.class_names == ["cat", "dog"] and ds.describe()["class_counts"] == {"cat": 1, "dog": 1}
    np.testing.assert_allclose(ds.images[:, 0, 0], x[:, 0] / 255, rtol=1e-6)


def test_npy_memmap_batches_equal_in_memory(tmp_path):
    x = np.random.default_rng(2).integers(0, 256, (40, 9, 9, 3), dtype=np.uint8)
    np.save(tmp_path / "big.npy", x)
    mapped, loaded = data.load_array(tmp_path / "big.npy", mmap=True), data.load_array(tmp_path / "big.npy", mmap=False)
    assert isinstance(mapped.images.base, np.memmap) or isinstance(mapped.images, np.memmap)
    idx = np.array([7, 3, 39, 0, 3])
    assert np.array_equal(mapped.batch(idx), loaded.batch(idx)) and mapped.batch(idx).flags.c_contiguous
    assert mapped.subset(idx).images.dtype == np.float32 and mapped.describe() == loaded.describe()


def test_npz_nan_is_refused(tmp_path):
    x = np.zeros((3, 4, 4), np.float32)
    x[1, 2, 2] = np.nan
    np.savez(tmp_path / "nan.npz", x=x)
    with pytest.raises(ValueError, match="nan.npz: contains NaN or infinite values"):
        data.load_array(tmp_path / "nan.npz")


def test_out_of_range_floats_are_refused(tmp_path):
    np.save(tmp_path / "range.npy", np.full((2, 3, 3), 1.5, np.float32))
    with pytest.raises(ValueError, match="range.npy: values out of range: found min 1.5, max 1.5"):
        data.load_array(tmp_path / "range.npy")


def test_object_array_npz_is_refused(tmp_path):
    np.savez(tmp_path / "obj.npz", x=np.array([np.zeros(3), "a"], dtype=object))
    with pytest.raises(ValueError, match="obj.npz:x: object arrays are not supported"):
        data.load_array(tmp_path / "obj.npz")


def test_npz_without_images_and_label_mismatch(tmp_path):
    np.savez(tmp_path / "keys.npz", pixels=np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match=r"keys.npz: no images.*\['pixels'\]"):
        data.load_array(tmp_path / "keys.npz")
    np.savez(tmp_path / "count.npz", x=np.zeros((2, 3, 3)), y=np.zeros(3))
    with pytest.raises(ValueError, match="count.npz:y: label count mismatch: 3 labels for 2 images"):
        data.load_array(tmp_path / "count.npz")


def test_truncated_npy(tmp_path):
    np.save(tmp_path / "cut.npy", np.zeros((4, 5, 5), np.uint8))
    (tmp_path / "cut.npy").write_bytes((tmp_path / "cut.npy").read_bytes()[:-7])
    with pytest.raises(ValueError, match="cut.npy: header/size mismatch.*100 bytes of data, the file holds 93"):
        data.load_array(tmp_path / "cut.npy")


# ---------------------------------------------------------------- images: zips and folders

def test_zip_of_pngs_in_class_folders(tmp_path):
    rng = np.random.default_rng(4)
    arrays = [rng.integers(0, 256, (10, 10), dtype=np.uint8) for _ in range(6)]
    with zipfile.ZipFile(tmp_path / "pets.zip", "w") as zf:
        for i, a in enumerate(arrays):
            zf.writestr(f"pets/{['dog', 'cat'][i % 2]}/{i}.png", png_bytes(a))
        zf.writestr("__MACOSX/pets/._0.png", b"resource fork")
        zf.writestr("pets/README.txt", "not an image")
    ds = data.load_path(tmp_path / "pets.zip")
    assert ds.shape == (1, 10, 10) and ds.class_names == ["cat", "dog"]
    assert ds.labels.tolist() == [1, 0, 1, 0, 1, 0]
    assert np.array_equal(np.round(ds.images[:, 0] * 255), np.stack(arrays))


def test_folder_of_mixed_images_is_rgb_at_the_common_size(tmp_path):
    rng = np.random.default_rng(5)
    for i, (cls, size) in enumerate([("a", 8), ("a", 8), ("b", 8), ("b", 12)]):
        (tmp_path / "imgs" / cls).mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / "imgs" / cls / f"{i}.jpg" if i == 3 else tmp_path / "imgs" / cls / f"{i}.png")
    ds = data.load_path(tmp_path / "imgs")
    assert ds.shape == (3, 8, 8) and ds.labels.tolist() == [0, 0, 1, 1] and ds.name == "imgs"
    assert 0 <= ds.images.min() and ds.images.max() <= 1
    assert data.load_images(tmp_path / "imgs", size=5).shape == (3, 5, 5)


def test_transparent_and_16_bit_images_are_converted(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0], rgba[:2, :, 3] = 200, 255  # red, top half opaque, bottom half transparent
    with zipfile.ZipFile(tmp_path / "modes.zip", "w") as zf:
        zf.writestr("rgba.png", png_bytes(rgba))
        zf.writestr("wide.png", png_bytes(np.full((4, 4), 65535, np.uint16)))
    ds = data.load_images(tmp_path / "modes.zip")
    assert ds.shape == (3, 4, 4) and ds.labels is None
    np.testing.assert_allclose(ds.images[1], 1.0)  # 16-bit white, scaled by 65535
    np.testing.assert_allclose(ds.images[0, 0, :2], 200 / 255, rtol=1e-6)
    assert ds.images[0, :, 2:].max() == 0  # transparent composited over black


def test_empty_zip(tmp_path):
    zipfile.ZipFile(tmp_path / "empty.zip", "w").close()
    with pytest.raises(ValueError, match="empty.zip: no images found"):
        data.load_path(tmp_path / "empty.zip")


def test_zip_with_a_non_image_png(tmp_path):
    with zipfile.ZipFile(tmp_path / "fake.zip", "w") as zf:
        zf.writestr("ok.png", png_bytes(np.zeros((3, 3), np.uint8)))
        zf.writestr("cls/bad.png", b"this is not a png")
    with pytest.raises(ValueError, match="fake.zip:cls/bad.png: unreadable or corrupt"):
        data.load_path(tmp_path / "fake.zip")


def test_zip_bomb_member_refused_before_reading(tmp_path):
    with zipfile.ZipFile(tmp_path / "bomb.zip", "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bmp", bytes(5 * 2**20))
    with pytest.raises(ValueError, match=r"bomb.zip:zeros.bmp: compression ratio .*x is over 200x"):
        data.load_path(tmp_path / "bomb.zip")
    with pytest.raises(ValueError, match="bomb.zip:zeros.bmp: too large.*limit of 1,000,000 bytes"):
        data.load_images(tmp_path / "bomb.zip", max_bytes=10**6)


def test_not_a_zip(tmp_path):
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04" + bytes(40))
    with pytest.raises(ValueError, match="broken.zip: not a zip archive"):
        data.load_images(tmp_path / "broken.zip")


# ---------------------------------------------------------------- dispatch and splits

@pytest.mark.parametrize("suffix", [".bin", ".npy", ".gz", ".zip"])
def test_random_bytes_give_a_clear_error(tmp_path, suffix):
    path = tmp_path / f"noise{suffix}"
    path.write_bytes(np.random.default_rng(6).integers(1, 256, 500, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match=f"noise{suffix}: "):
        data.load_path(path)


def test_missing_file_and_unknown_source(tmp_path):
    with pytest.raises(ValueError, match="nope.npz: no such file"):
        data.load_path(tmp_path / "nope.npz")
    with pytest.raises(ValueError, match="unknown dataset source"):
        data.load_source({"kind": "mnist"})


def test_describe_and_subset(tmp_path):
    ds = data.make_shapes(50, 16, seed=0)
    sub = ds.subset(np.array([4, 2]))
    assert sub.n == 2 and np.array_equal(sub.images, ds.images[[4, 2]]) and np.array_equal(sub.labels, ds.labels[[4, 2]])
    summary = ds.describe()
    assert summary["n"] == 50 and summary["shape"] == (1, 16, 16) and summary["n_classes"] == 4
    assert sum(summary["class_counts"].values()) == 50 and (summary["min"], summary["max"]) == (0.0, 1.0)


def test_split_indices_deterministic_disjoint_and_complete():
    train, val = data.split_indices(101, 0.1, seed=7)
    again_train, again_val = data.split_indices(101, 0.1, seed=7)
    assert np.array_equal(train, again_train) and np.array_equal(val, again_val)
    assert len(val) == 10 and len(train) == 91 and not set(train) & set(val)
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(101))
    assert np.all(np.diff(train) > 0) and not np.array_equal(data.split_indices(101, 0.1, seed=8)[1], val)
    assert len(data.split_indices(3, 0.01, seed=0)[1]) == 1


def test_split_indices_at_val_fraction_zero_keeps_every_row_for_training():
    train, val = data.split_indices(101, 0.0, seed=7)
    assert np.array_equal(train, np.arange(101)) and len(val) == 0
    assert data.preview_indices(101, 0.0, seed=7)[1] == "training"
    assert data.preview_indices(101, 0.1, seed=7)[1] == "validation"
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match=r"val_fraction must be in \[0, 1\)"):
            data.split_indices(101, bad, seed=7)


# ---------------------------------------------------------------- the sources table

def test_an_unknown_source_is_refused_at_the_table_with_the_known_names():
    with pytest.raises(ValueError, match="unknown dataset source 'mnist': known sources are digits, shapes, path"):
        data.source_entry("mnist")
    with pytest.raises(ValueError, match="unknown dataset source 'mnist': known sources are digits, shapes, path"):
        data.load_source({"kind": "mnist"})
    with pytest.raises(ValueError, match="'shapes' takes n, size, seed, got \\['colour'\\]"):
        data.load_source({"kind": "shapes", "colour": 1})
    with pytest.raises(ValueError, match="'path' takes path, labels_path"):
        data.load_source({"kind": "path"})


def one_file_of_each_kind(folder: Path, images: np.ndarray) -> dict[str, Path]:
    """A small data file (or folder) of every file kind, written from its format; 4 images of 6x6 each."""
    npy, npz = io.BytesIO(), io.BytesIO()
    np.save(npy, images)
    np.savez(npz, x=images)
    pngs = {f"set/{'ab'[i % 2]}/{i}.png": png_bytes(image) for i, image in enumerate(images)}
    with zipfile.ZipFile(folder / "pictures.zip", "w") as zf:
        for name, payload in pngs.items():
            zf.writestr(name, payload)
    for name, payload in pngs.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(payload)
    files = {"npy": npy.getvalue(), "npz": npz.getvalue(), "idx": idx_bytes(images), "idx.gz": gzip.compress(
        idx_bytes(images))}
    paths = {"folder": folder / "set", "zip": folder / "pictures.zip"}
    for kind, payload in files.items():  # named without their suffix where the first bytes tell them apart
        paths[kind] = folder / ("arrays.npz" if kind == "npz" else f"data-{kind.replace('.', '-')}")
        paths[kind].write_bytes(payload)
    return paths


def test_every_source_and_file_kind_in_the_table_loads_through_load_source(tmp_path):
    """Each source of the table loads by its source dict at its smallest options, and rebuilds from what it
    records; each file kind is recognised by its first bytes (and suffix) and read to the same images."""
    images = np.random.default_rng(3).integers(0, 256, (4, 6, 6), dtype=np.uint8)
    files = one_file_of_each_kind(tmp_path, images)
    for source in data.SOURCES.values():
        if source.reads_files:
            assert {k.name for k in source.file_kinds} == set(files), "a sample file for every kind"
            for kind in source.file_kinds:
                assert data.file_kind(files[kind.name]) is kind
                ds = data.load_source({"kind": source.name, "path": str(files[kind.name])})
                assert ds.source["kind"] == source.name and ds.shape == (1, 6, 6)
                assert np.allclose(np.sort(ds.batch(np.arange(4)).ravel()), np.sort(images.ravel() / 255), atol=1e-6)
            continue
        options = {o.name: o.low for o in source.options}
        ds = data.load_source({"kind": source.name, **options})
        assert ds.source == {"kind": source.name, **options} and ds.n >= 1
        assert np.array_equal(data.load_source(ds.source).images, ds.images)
        if not options:  # a source without options is also named by its bare name
            assert np.array_equal(data.load_source(source.name).images, ds.images)


def test_the_mean_image_of_rows_is_their_batchs_mean_for_float_and_uint8_images():
    """Dataset.mean_image (where a new model's output bias starts) sums the rows as stored, in chunks: the same mean
    as the rows read as float32 in [0, 1], in any order, uint8 included."""
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, (300, 3, 5, 4), dtype=np.uint8)
    rows = rng.permutation(300)[:250]
    for images in (raw, (raw / 255).astype(np.float32)):
        dataset = data.Dataset(images, name="x")
        np.testing.assert_allclose(dataset.mean_image(rows, chunk=64), dataset.batch(rows).astype(np.float64).mean(0),
                                   atol=1e-6)
