"""Data in a real browser: upload a real IDX images + labels pair (written here from the format) and it becomes the
active dataset; upload a broken file and the page shows the loader's error while the app keeps working."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from harness.browser import ARTIFACTS, goto, key, screenshot, wait_idle

pytestmark = pytest.mark.e2e

N, SIZE = 120, 16
ALERT = '[data-testid="stAlert"]'


def write_idx(path: Path, array: np.ndarray) -> Path:
    """An IDX file (LeCun's MNIST format): 0, 0, type 0x08 (unsigned byte), ndim; big-endian int32 dims; the data."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())
    return path


def bar_images(n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """n images of a bright vertical bar whose column encodes the class (10 classes), with the labels."""
    labels = np.arange(n) % 10
    images = np.zeros((n, size, size), np.uint8)
    for i, label in enumerate(labels):
        column = 1 + label * (size - 2) // 10
        images[i, 2:-2, column:column + 2] = 255
    return images, labels.astype(np.uint8)


def sidebar(page) -> str:
    return page.locator('[data-testid="stSidebar"]').inner_text()


def choose_upload(page) -> None:
    goto(page, "Data")
    page.locator(key("data_kind")).get_by_text("Upload files").click()
    page.locator(f"{key('data_upload')} input[type=file]").wait_for(state="attached")


def test_upload_an_idx_pair_makes_it_the_active_dataset(app, tmp_path):
    images, labels = bar_images(N, SIZE)
    files = [write_idx(tmp_path / "bars-images-idx3-ubyte", images),
             write_idx(tmp_path / "bars-labels-idx1-ubyte", labels)]
    choose_upload(app)
    app.locator(f"{key('data_upload')} input[type=file]").set_input_files([str(f) for f in files])

    app.locator(ALERT, has_text="Active dataset").wait_for()
    wait_idle(app)
    assert f"{N} images · 1×{SIZE}×{SIZE}" in sidebar(app)
    metrics = " ".join(app.locator('[data-testid="stMetric"]').all_inner_texts())
    assert str(N) in metrics and f"1×{SIZE}×{SIZE}" in metrics and "10" in metrics
    assert app.locator('[data-testid="stImage"] img').count() >= 32, "a grid of sample images"
    screenshot(app, ARTIFACTS / "screenshots" / "data-idx-upload.png")


def test_a_broken_upload_shows_an_error_and_the_app_keeps_working(app, tmp_path):
    broken = tmp_path / "broken-images-idx3-ubyte"
    broken.write_bytes(bytes([0, 0, 0x08, 3]) + struct.pack(">3i", 1000, 28, 28) + b"\x00" * 100)  # truncated
    choose_upload(app)
    app.locator(f"{key('data_upload')} input[type=file]").set_input_files(str(broken))

    error = app.locator(ALERT, has_text=broken.name)
    error.wait_for()
    wait_idle(app)
    assert "digits · 1,797 images · 1×8×8" in sidebar(app), "the previous dataset stays active"
    goto(app, "Explore")
    caption = app.locator('[data-testid="stMain"] [data-testid="stCaptionContainer"]').first.inner_text()
    assert caption.startswith("digits-default"), caption
