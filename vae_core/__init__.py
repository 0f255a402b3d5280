"""The engine: models, training, data, runs; never imports streamlit (see README "Layout")."""
from .openmp import limit_spin

limit_spin()  # before anything here loads torch (vae_core/openmp.py says why)
