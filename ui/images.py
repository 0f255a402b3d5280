"""Images at a readable size: the engine's nearest-neighbour grids (vae_core.media), as the pages import them."""
from vae_core.media import TARGET_PX, grid, scale_for, to_uint8  # noqa: F401
