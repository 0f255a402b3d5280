"""The Explore page's parts: what it computes per model and dataset (data), the current z and its URL (state), the
latent sliders and nearest images (latent), the 2-D map (projection) with posterior ellipses (posterior), the
weak-model check above it (model_check), the views below it (views: traversals, manifold, interpolation, sampling,
with attributes, compare and posterior tabs), and the browser side (live: the JS component every live part mounts).
pages/explore.py puts them on the page."""
