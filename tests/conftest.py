"""Fixtures shared by the unit tests."""
import pytest

from vae_core.data import Dataset, load_digits


@pytest.fixture(scope="session")
def digits() -> Dataset:
    """scikit-learn's bundled 8x8 digits (loaded once; never modify its arrays)."""
    return load_digits()
