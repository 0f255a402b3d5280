"""Benchmarks that print each figure beside a baseline measured in the same run (`python -m bench`)."""
import vae_core  # noqa: F401  (first: torch's OpenMP settings as the app and the CLI train, vae_core/openmp.py)
