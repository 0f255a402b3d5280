"""Copy the e2e run's page screenshots (test-artifacts/screenshots) into docs/screenshots for the README: blank space
below the content trimmed, palette-quantised and optimised to stay under 300 KB each.

    .venv/bin/python -m pytest tests/e2e && .venv/bin/python -m tests.e2e.screenshots
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

from harness.browser import ARTIFACTS, ROOT

SOURCE = ARTIFACTS / "screenshots"
DEST = ROOT / "docs" / "screenshots"
CURATED = {  # screenshot taken by the e2e tests -> name in docs/screenshots
    "explore-selection.png": "explore.png",
    "train-finished.png": "train.png",
    "data-idx-upload.png": "data.png",
    "runs.png": "runs.png",
    "train-kl-heatmap.png": "train-kl-heatmap.png",  # tests/e2e/test_views.py
    "explore-ellipse.png": "explore-ellipse.png",
    "explore-posterior.png": "explore-posterior.png",
    "explore-attributes.png": "explore-attributes.png",
    "explore-compare.png": "explore-compare.png",
    "explore-umap.png": "explore-umap.png",
}
COPIED = {"explore-traversals.gif": "explore-traversals.gif"}  # downloads shown as they are (a GIF stays animated)
MAX_BYTES = 300_000


def trim_bottom(image: Image.Image, margin: int = 24) -> Image.Image:
    """Cut the rows below the last row that differs from the bottom row's colour (the page's empty tail)."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    main = pixels[:, pixels.shape[1] // 4:]  # ignore the sidebar (and its edge), which runs to the bottom
    differs = np.abs(main - main[-1:, :, :]).sum(axis=(1, 2)) > 0
    last = int(np.flatnonzero(differs)[-1]) if differs.any() else image.height - 1
    return image.crop((0, 0, image.width, min(image.height, last + margin)))


def compress(image: Image.Image, path: Path, colours: int = 256) -> int:
    """Save as an optimised palette PNG (fewer colours until it fits MAX_BYTES); the size in bytes."""
    while True:
        image.convert("RGB").quantize(colors=colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE) \
            .save(path, optimize=True)
        size = path.stat().st_size
        if size <= MAX_BYTES or colours <= 16:
            return size
        colours //= 2


def main() -> int:
    DEST.mkdir(parents=True, exist_ok=True)
    missing = [name for name in [*CURATED, *COPIED] if not (SOURCE / name).exists()]
    if missing:
        print(f"missing in {SOURCE}: {', '.join(missing)} — run the e2e tests first", file=sys.stderr)
        return 1
    for name, target in CURATED.items():
        size = compress(trim_bottom(Image.open(SOURCE / name)), DEST / target)
        print(f"{DEST / target}: {size / 1000:.0f} KB")
    for name, target in COPIED.items():
        data = (SOURCE / name).read_bytes()
        if len(data) > MAX_BYTES:
            print(f"{SOURCE / name} is {len(data) / 1000:.0f} KB, over {MAX_BYTES / 1000:.0f} KB: not copied",
                  file=sys.stderr)
            return 1
        (DEST / target).write_bytes(data)
        print(f"{DEST / target}: {len(data) / 1000:.0f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
