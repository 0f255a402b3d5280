"""The views beyond the basics, as a user drives them through AppTest: KL per dimension over time on Train."""
from __future__ import annotations

import base64
import json

import numpy as np

from tests.test_app_pages import app, start_training  # noqa: F401  (the AppTest factory fixture)
from vae_core.kl_history import kl_over_time


def array(value) -> np.ndarray:
    """A plotly JSON array: a list, or a typed array {dtype, bdata (base64), shape}."""
    if isinstance(value, dict):
        shape = [int(n) for n in str(value.get("shape", "-1")).split(",")]
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]).reshape(shape)
    return np.asarray(value)


def heatmap(at) -> dict:
    """The KL-per-dimension heatmap trace as the browser receives it (x and z as arrays)."""
    traces = [t for chart in at.get("plotly_chart") for t in json.loads(chart.proto.spec)["data"]]
    trace = next(t for t in traces if t.get("type") == "heatmap")
    return trace | {"x": array(trace["x"]), "z": array(trace["z"])}


def test_train_shows_kl_per_dimension_over_steps_and_epochs(app):  # noqa: F811
    at = app("pages/train.py")
    job = start_training(at, tf_epochs=2, tf_latent=3)
    assert job.join(timeout=60) and job.state == "finished"
    at.run()
    assert not at.exception
    history = job.history()
    by_step = heatmap(at)
    reference = kl_over_time(history["steps"], history["epochs"], "step")
    assert by_step["y"] == ["z0", "z1", "z2"]
    np.testing.assert_allclose(by_step["z"], reference.kl)
    assert by_step["x"][-1] == history["steps"][-1]["step"]

    at.segmented_control(key="chart_x").set_value("epoch").run()
    by_epoch = heatmap(at)
    np.testing.assert_array_equal(by_epoch["x"], [1, 2])
    np.testing.assert_allclose(by_epoch["z"], np.array([e["val_kl_per_dim"] for e in history["epochs"]]).T)
