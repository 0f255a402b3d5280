"""The views beyond the basics, in a real browser: Train's KL-per-dimension heatmap read from the drawn plotly graph
against the saved run's history."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from tests.e2e.harness import goto, key, wait_idle
from tests.e2e.test_train import progress_text, start_training
from tests.helpers import wait_until
from vae_core.kl_history import kl_over_time

pytestmark = pytest.mark.e2e

_HEATMAP_JS = """selector => {
  const gd = document.querySelector(selector + ' .js-plotly-plot');
  const t = gd && gd._fullData && gd._fullData.find(t => t.type === 'heatmap');
  return t ? {x: Array.from(t.x), y: Array.from(t.y), z: Array.from(t.z, row => Array.from(row))} : null;
}"""


def drawn_heatmap(page, last_x=None) -> dict:
    """The heatmap plotly drew (x, y and z as the page holds them), once it is there (and ends at last_x if given)."""
    return page.wait_for_function(f"s => {{ const h = ({_HEATMAP_JS})(s); return h && "
                                  f"({'true' if last_x is None else f'h.x[h.x.length - 1] == {last_x}'}) && h; }}",
                                  arg=key("kl_heatmap"), polling=100, timeout=30_000).json_value()


def test_train_draws_kl_per_dimension_over_time(app, runs_dir, new_runs_removed):
    goto(app, "Train")
    start_training(app, epochs=3, tf_latent=3)
    wait_until(lambda: progress_text(app).startswith("finished"), "the 3-epoch job to finish", timeout=90)
    name = wait_until(lambda: re.search(r"(digits-mlp-z3-\d{8}-\d{6})", app.locator('[data-testid="stSidebar"]')
                                        .inner_text()), "the run to become the active model", timeout=30).group(1)
    wait_idle(app)
    history = json.loads((runs_dir / name / "history.json").read_text())

    by_step = kl_over_time(history["steps"], history["epochs"], "step")
    drawn = drawn_heatmap(app, last_x=int(by_step.x[-1]))
    assert drawn["y"] == ["z0", "z1", "z2"]
    np.testing.assert_array_equal(drawn["x"], by_step.x)
    np.testing.assert_allclose(drawn["z"], by_step.kl, rtol=1e-6)

    app.locator(f"{key('chart_x')} button", has_text="epoch").click()
    drawn = drawn_heatmap(app, last_x=3)
    np.testing.assert_array_equal(drawn["x"], [1, 2, 3])
    np.testing.assert_allclose(drawn["z"], np.array([e["val_kl_per_dim"] for e in history["epochs"]]).T, rtol=1e-6)
