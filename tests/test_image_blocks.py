"""The map's hover images on the server (ui/explore/image_blocks.py): a block is the dataset's own pixels for its
rows (round(255 x), uint8, row after row), blocks stay small, and a block is served only for a known token whose
session is connected and, on a password server, admitted. tests/e2e/test_explore.py hovers in Chromium and compares
the tooltip's image with the dataset."""
import numpy as np
import pytest

import ui.server
from ui.explore.image_blocks import BLOCK_BYTES, ImageBlocks, block_bytes, block_rows
from vae_core.data import Dataset, load_digits


def test_a_block_holds_its_rows_pixels():
    digits = load_digits()
    rows = block_rows(64)
    assert rows == 256 and block_rows(28 * 28) == 64
    block = np.frombuffer(block_bytes(digits, 3, rows), np.uint8).reshape(-1, 64)
    np.testing.assert_array_equal(block, np.round(digits.batch(np.arange(768, 1024)).reshape(-1, 64) * 255))
    last = np.frombuffer(block_bytes(digits, 7, rows), np.uint8)
    assert last.size == (1797 - 7 * 256) * 64  # the last block: what is left
    with pytest.raises(ValueError, match="outside"):
        block_bytes(digits, 8, rows)


@pytest.mark.parametrize("pixels", [64, 784, 3 * 64 * 64, 105 * 105, 3 * 256 * 256])
def test_blocks_stay_small(pixels):
    rows = block_rows(pixels)
    assert 4 <= rows <= 256 and (rows * pixels <= BLOCK_BYTES or rows == 4)


def test_a_block_is_served_only_to_its_admitted_session(monkeypatch):
    digits = Dataset((np.arange(40 * 16) % 256).astype(np.uint8).reshape(40, 1, 4, 4), name="tiny")
    table = ImageBlocks()
    token, rows = table.token_for("alice", digits)
    assert table.token_for("alice", digits)[0] == token  # the same while the session keeps its dataset
    assert table.serve(f"vxi-{token}-0.bin") == block_bytes(digits, 0, rows)
    for name in (f"vxi-{token}-9.bin", f"vxi-{token}-x.bin", "vxi-guess-0.bin", f"vxi-{token}.bin"):
        assert table.serve(name) is None
    monkeypatch.setenv("VAE_PASSWORD", "s3cret")
    ui.server.admissions.reset()
    assert table.serve(f"vxi-{token}-0.bin") is None  # a password server: not before alice entered it
    ui.server.admissions().admit("alice")
    assert table.serve(f"vxi-{token}-0.bin") == block_bytes(digits, 0, rows)
    other = Dataset(np.zeros((8, 1, 4, 4), np.uint8), name="other")
    assert table.token_for("alice", other)[0] != token and table.serve(f"vxi-{token}-0.bin") is None  # replaced
    ui.server.admissions.reset()
